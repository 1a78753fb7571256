"""Booth configuration: a TOML file (on the boot partition in the image) plus flags.

Every setting is declared once, on a strict pydantic dataclass (unknown keys refused, no number
from a string or a boolean), with the refusal a technician reads when it is wrong
(:class:`Refusal`). A configuration built in code is checked as the file is, with the same
messages: each names the setting (``video.fps: expected a whole number from 5 to 60``).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import tomllib
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, ValidationError, model_validator
from pydantic.dataclasses import dataclass

from kiosk.errors import BoothError


class BoothConfigError(BoothError, ValueError):
    """The booth configuration cannot be used; the message names the setting."""


@dataclasses.dataclass(frozen=True)
class Refusal:
    """What a setting's refusal says: ``message`` (``{input!r}`` stands for the value given),
    or ``wrong_type`` when the value is not even of the right kind."""

    message: str
    wrong_type: str | None = None


_STRICT = ConfigDict(strict=True, extra="forbid")
#: Paths and enumerations are read from the file's strings; everything else is taken as given.
_FROM_TEXT = Field(strict=False)
_Settings = TypeVar("_Settings")


def _refusing(cls: type[_Settings]) -> type[_Settings]:
    """Turn a settings class's validation errors into one :class:`BoothConfigError`."""
    init = cls.__init__

    @functools.wraps(init)
    def checked_init(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except ValidationError as exc:
            raise _refusal(cls, exc) from None

    setattr(cls, "__init__", checked_init)  # noqa: B010 - replaced after the class is made
    return cls


def _refusal(cls: type[Any], exc: ValidationError) -> BoothConfigError:
    section: str = getattr(cls, "SECTION")  # noqa: B009 - every settings class has one
    errors = exc.errors()
    unknown = sorted(
        str(e["loc"][0])
        for e in errors
        if e["type"] in ("unexpected_keyword_argument", "extra_forbidden")
    )
    if unknown:
        where = f" in [{section}]" if section else ""
        return BoothConfigError(f"unknown setting(s){where}: {', '.join(unknown)}")
    error = errors[0]
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, BoothConfigError):  # a check of several settings together
        return cause
    name = str(error["loc"][0]) if error["loc"] else ""
    field = cls.__pydantic_fields__.get(name)
    refusal = next((m for m in field.metadata if isinstance(m, Refusal)), None) if field else None
    if refusal is None:
        text = error["msg"]
    elif refusal.wrong_type is not None and _wrong_type(error["type"], error.get("input")):
        text = refusal.wrong_type
    else:
        text = refusal.message.format(input=error.get("input"))
    return BoothConfigError(f"{section}.{name}: {text}" if section else f"{name}: {text}")


def _wrong_type(kind: str, value: object) -> bool:
    return kind.endswith("_type") or (kind == "enum" and not isinstance(value, str))


def _setting(message: str, wrong_type: str | None = None) -> Refusal:
    return Refusal(message, wrong_type)


class DisplayMode(StrEnum):
    AUTO = "auto"  # a window where a display exists, headless otherwise
    WINDOW = "window"  # a 1024x600 window (development)
    FULLSCREEN = "fullscreen"  # the booth: the panel's own resolution
    HEADLESS = "headless"


class VideoReceiver(StrEnum):
    """When a frame of the video the booth receives goes to its decoder."""

    MARKER = "marker"  # as soon as its last packet is in (kiosk/media/receiver.py)
    AIORTC = "aiortc"  # aiortc's own: when the next frame's first packet arrives, a frame later


_Width = Annotated[
    int, Field(ge=160, le=3840), _setting("expected a whole number from 160 to 3840")
]
_Height = Annotated[
    int, Field(ge=120, le=2160), _setting("expected a whole number from 120 to 2160")
]
_Bitrate = Annotated[
    int,
    Field(ge=100_000, le=10_000_000),
    _setting("expected a whole number from 100000 to 10000000"),
]


@_refusing
@dataclass(frozen=True, config=_STRICT)
class VideoConfig:
    SECTION: ClassVar[str] = "video"

    width: _Width = 640
    height: _Height = 480
    fps: Annotated[int, Field(ge=5, le=60), _setting("expected a whole number from 5 to 60")] = 30
    bitrate: _Bitrate = 1_000_000
    #: Bounds of the rate controller (bit/s).
    min_bitrate: _Bitrate = 300_000
    max_bitrate: _Bitrate = 2_500_000
    #: The received video's frames: decoded at once (the default), or as aiortc does.
    receiver: Annotated[
        VideoReceiver,
        _FROM_TEXT,
        _setting(
            f"must be one of {', '.join(k.value for k in VideoReceiver)}",
            wrong_type="expected a string",
        ),
    ] = VideoReceiver.MARKER
    #: Ask the other side's browser to show the booth's video within ``max_playout_delay_ms``
    #: (the playout-delay RTP header extension, kiosk/media/playout.py); 0, the default: as
    #: soon as decoded. A branch whose line delivers irregularly can allow some buffering.
    playout_delay: Annotated[bool, _setting("expected true or false")] = True
    max_playout_delay_ms: Annotated[
        int, Field(ge=0, le=4000), _setting("expected a whole number of ms from 0 to 4000")
    ] = 0

    @model_validator(mode="after")
    def _consistent(self) -> VideoConfig:
        if self.width % 2 or self.height % 2:
            raise BoothConfigError("video.width and video.height must be even (H.264 4:2:0)")
        if not self.min_bitrate <= self.bitrate <= self.max_bitrate:
            raise BoothConfigError("video: need min_bitrate <= bitrate <= max_bitrate")
        return self


_CAMERA_KINDS = ("auto", "picamera2", "v4l2", "test-pattern")


@_refusing
@dataclass(frozen=True, config=_STRICT)
class CameraConfig:
    SECTION: ClassVar[str] = "camera"

    #: "auto" (picamera2, then a V4L2 webcam, then the test pattern if allowed), "picamera2",
    #: "v4l2" or "test-pattern".
    kind: Annotated[
        Literal["auto", "picamera2", "v4l2", "test-pattern"],
        _setting(f"must be one of {', '.join(_CAMERA_KINDS)}"),
    ] = "auto"
    device: Annotated[str, Field(min_length=1), _setting("expected a string")] = "/dev/video0"
    #: The webcam's format, e.g. "mjpeg" or "yuyv422"; None lets the driver choose.
    input_format: Annotated[str | None, Field(min_length=1), _setting("expected a string")] = None
    #: Whether "auto" may end at the synthetic test pattern (development, demos, smoke boots).
    allow_test_pattern: Annotated[bool, _setting("expected true or false")] = False


@_refusing
@dataclass(frozen=True, config=_STRICT)
class AudioConfig:
    SECTION: ClassVar[str] = "audio"

    #: "tone" (a test signal), "wav:<path>" (a file, looped), or an ALSA capture device such as
    #: "default" or PipeWire's "echo-cancel-source".
    capture: Annotated[str, Field(min_length=1), _setting("expected a device name")] = "tone"
    #: "none" (received audio is consumed and dropped) or an ALSA playback device.
    playback: Annotated[str, Field(min_length=1), _setting("expected a device name")] = "none"
    volume: Annotated[float, Field(ge=0, le=1), _setting("expected a number from 0 to 1")] = 1.0
    #: Most received audio the booth holds before playing it; beyond that it drops.
    max_latency_ms: Annotated[
        float, Field(ge=20, le=500), _setting("expected a number from 20 to 500")
    ] = 60.0


class PinFactoryKind(StrEnum):
    """Which gpiozero pin driver drives the pins; ``auto`` takes the first that works."""

    AUTO = "auto"
    LGPIO = "lgpio"  # /dev/gpiochip* through lgpio: every Pi, PWM; the only one on a Pi 5
    RPIGPIO = "rpigpio"  # RPi.GPIO: Pi 4 and older, software PWM
    NATIVE = "native"  # gpiozero's own register access: Pi 4 and older, no PWM
    MOCK = "mock"  # gpiozero's mock pins (demos, a booth without GPIO that must say so)


class PresenceKind(StrEnum):
    """What tells the booth that someone stands in front of it."""

    NONE = "none"
    PIR = "pir"  # a passive infra-red motion sensor on one pin
    DISTANCE = "distance"  # an HC-SR04 ultrasonic sensor: trigger and echo pins


#: BCM numbers of the GPIO pins every 40-pin Raspberry Pi has.
GPIO_PINS = range(28)

_Pin = Annotated[
    int | None,
    Field(ge=GPIO_PINS.start, le=GPIO_PINS.stop - 1),
    _setting("expected a BCM GPIO number from 0 to 27, got {input!r}"),
]


@_refusing
@dataclass(frozen=True, config=_STRICT)
class HardwareConfig:
    """The booth's buttons, lights and presence sensor on GPIO (BCM numbers).

    A pin that is not set is not wired: that part does nothing and the touch screen still
    works. With no pin set at all the booth does not touch GPIO.
    """

    SECTION: ClassVar[str] = "hardware"
    #: The settings that name a pin, in the order they are reported.
    PIN_SETTINGS: ClassVar[tuple[str, ...]] = (
        "call_button",
        "call_button_led",
        "end_button",
        "end_button_led",
        "camera_led",
        "status_led",
        "presence_pin",
        "presence_trigger_pin",
        "presence_echo_pin",
    )

    call_button: _Pin = None
    #: The lamp inside the (illuminated) call button.
    call_button_led: _Pin = None
    end_button: _Pin = None
    end_button_led: _Pin = None
    #: Lit exactly while the camera streams (privacy: the user can see it).
    camera_led: _Pin = None
    status_led: _Pin = None
    presence: Annotated[
        PresenceKind,
        _FROM_TEXT,
        _setting(
            f"must be one of {', '.join(k.value for k in PresenceKind)}",
            wrong_type="expected a string",
        ),
    ] = PresenceKind.NONE
    #: The PIR sensor's output.
    presence_pin: _Pin = None
    #: The distance sensor's pins.
    presence_trigger_pin: _Pin = None
    presence_echo_pin: _Pin = None
    #: Someone nearer than this to the distance sensor is present (metres).
    presence_distance_m: Annotated[
        float, Field(ge=0.1, le=4.0), _setting("expected a number of metres from 0.1 to 4")
    ] = 1.0
    #: Holding the call button this long (seconds) turns the accessibility mode on, and in
    #: the mode says the screen's prompt again (gpiozero's hold_time).
    hold_seconds: Annotated[
        float, Field(ge=0.5, le=10), _setting("expected a number of seconds from 0.5 to 10")
    ] = 2.0
    #: Presses closer together than this are one press (contact bounce); 0: no debouncing.
    bounce_ms: Annotated[
        int, Field(ge=0, le=500), _setting("expected a whole number from 0 to 500")
    ] = 30
    #: Below 1 the LEDs are dimmed with PWM (an illuminated button glares in a dim booth).
    led_brightness: Annotated[
        float, Field(ge=0.05, le=1), _setting("expected a number from 0.05 to 1")
    ] = 1.0
    #: The pin driver: "auto" (lgpio, then rpigpio, then native; each fallback logged), or one
    #: of them, which is then that driver or an error.
    pin_factory: Annotated[
        PinFactoryKind,
        _FROM_TEXT,
        _setting(
            f"must be one of {', '.join(k.value for k in PinFactoryKind)}",
            wrong_type="expected a string",
        ),
    ] = PinFactoryKind.AUTO
    #: The gpiochip lgpio opens; None: gpiozero's choice (4 on a Pi 5 that has it, else 0). On a
    #: board that is not a Raspberry Pi it must be set: pins are then the chip's line offsets.
    gpio_chip: Annotated[
        int | None, Field(ge=0, le=63), _setting("expected a gpiochip number from 0 to 63")
    ] = None

    @model_validator(mode="after")
    def _consistent(self) -> HardwareConfig:
        users: dict[int, list[str]] = {}
        for name, pin in self.pins.items():
            users.setdefault(pin, []).append(name)
        for pin, names in users.items():
            if len(names) > 1:
                raise BoothConfigError(
                    f"hardware: GPIO{pin} is set for more than one part: {' and '.join(names)}"
                )
        for button in ("call_button", "end_button"):
            if getattr(self, f"{button}_led") is not None and getattr(self, button) is None:
                raise BoothConfigError(
                    f"hardware.{button}_led: the lamp is inside the button; set {button} too"
                )
        presence = self.presence
        needs = {
            PresenceKind.NONE: (),
            PresenceKind.PIR: ("presence_pin",),
            PresenceKind.DISTANCE: ("presence_trigger_pin", "presence_echo_pin"),
        }[presence]
        for name in ("presence_pin", "presence_trigger_pin", "presence_echo_pin"):
            if name in needs and getattr(self, name) is None:
                raise BoothConfigError(f"hardware.{name}: required with presence = '{presence}'")
            if name not in needs and getattr(self, name) is not None:
                raise BoothConfigError(
                    f"hardware.{name}: not used with presence = '{presence}'; remove it"
                )
        return self

    @property
    def pins(self) -> dict[str, int]:
        """The wired parts: setting name -> BCM pin."""
        return {name: pin for name in self.PIN_SETTINGS if (pin := getattr(self, name)) is not None}

    @property
    def configured(self) -> bool:
        """Whether any part is wired at all."""
        return bool(self.pins)


class SpeechKind(StrEnum):
    """What speaks the accessibility mode's prompts."""

    AUTO = "auto"  # espeak-ng where it is installed; otherwise none, said once in the log
    ESPEAK_NG = "espeak-ng"  # espeak-ng, or an error in the log when it is missing
    OFF = "off"


@_refusing
@dataclass(frozen=True, config=_STRICT)
class AccessibilityConfig:
    """The accessibility mode: large text, high contrast, longer timeouts, spoken prompts."""

    SECTION: ClassVar[str] = "accessibility"

    #: Every screen's timeout is this many times as long in the mode.
    timeout_factor: Annotated[
        float, Field(ge=1, le=10), _setting("expected a number from 1 to 10")
    ] = 3.0
    speech: Annotated[
        SpeechKind,
        _FROM_TEXT,
        _setting(
            f"must be one of {', '.join(k.value for k in SpeechKind)}",
            wrong_type="expected a string",
        ),
    ] = SpeechKind.AUTO
    #: How fast the prompts are spoken, in words per minute (espeak-ng's default is 175).
    speech_rate: Annotated[
        int, Field(ge=80, le=300), _setting("expected a whole number from 80 to 300")
    ] = 150


_Seconds = Annotated[float, Field(gt=0), _setting("expected a positive number of seconds")]
_MaybeSeconds = Annotated[
    float | None, Field(gt=0), _setting("expected a positive number of seconds")
]
_Text = Annotated[str | None, _setting("expected a string")]
_PathSetting = Annotated[Path, _FROM_TEXT, _setting("expected a path")]
_Flag = Annotated[bool, _setting("expected true or false")]


@_refusing
@dataclass(frozen=True, config=_STRICT)
class BoothConfig:
    """What a booth needs to run; see the README's booth configuration section."""

    SECTION: ClassVar[str] = ""

    server_url: Annotated[str, _setting("required, as a string")]
    #: Development option: ``<booth id>.<secret>`` as printed by ``videobooth-server booth
    #: add``. Without it the booth enrols and logs in with its key (kiosk/identity.py).
    credential: _Text = Field(default=None, repr=False)
    #: The one-time enrolment token (from the provisioning tool); deleted once spent.
    enrolment_token: _Text = Field(default=None, repr=False)
    #: Where the booth keeps its key and identity (the persistent data partition).
    identity_dir: _PathSetting = Path("/data/videobooth")
    #: The organisation's CA certificate (PEM), or the server certificate's SHA-256
    #: fingerprint, for checking the server; neither: the system's trust store.
    server_ca_file: _PathSetting | None = None
    server_fingerprint: _Text = None
    #: The branch the technician provisioned the card for (shown in technician mode).
    branch: _Text = None
    #: The file this configuration came from (the spent token is deleted from it); not a
    #: setting of the file.
    source: Path | None = None
    video: Annotated[VideoConfig, _setting("must be a table")] = Field(default_factory=VideoConfig)
    camera: Annotated[CameraConfig, _setting("must be a table")] = Field(
        default_factory=CameraConfig
    )
    audio: Annotated[AudioConfig, _setting("must be a table")] = Field(default_factory=AudioConfig)
    hardware: Annotated[HardwareConfig, _setting("must be a table")] = Field(
        default_factory=HardwareConfig
    )
    accessibility: Annotated[AccessibilityConfig, _setting("must be a table")] = Field(
        default_factory=AccessibilityConfig
    )
    display: Annotated[
        DisplayMode,
        _FROM_TEXT,
        _setting("must be 'auto', 'window', 'fullscreen' or 'headless'"),
    ] = DisplayMode.AUTO
    #: Ask for an advisor as soon as the booth is connected (no touchscreen flow yet).
    call_on_start: _Flag = False
    #: Ask again after each call ends (demo and soak runs).
    repeat_calls: _Flag = False
    #: Where to write the booth's live status as JSON (diagnostics, tests); None: nowhere.
    status_file: _PathSetting | None = None
    #: How often the booth reports itself; None (the default): as often as the server asks in
    #: its welcome (its ``heartbeat_seconds``, 15 s unless configured), which is what its
    #: offline judgement and its capacity assume.
    heartbeat_seconds: _MaybeSeconds = None
    reconnect_max_seconds: _Seconds = 30.0
    #: A call whose connection (to the server or to the others) stays broken this long ends
    #: with a clear message; until then the booth reconnects by itself.
    reconnect_limit_seconds: _Seconds = 60.0
    #: How often call statistics go to the server (and the advisor's call view).
    stats_seconds: _Seconds = 5.0
    #: How the booth installs updates: "rauc" (A/B root slots), "fake" (tests and demos:
    #: installs nothing), "off", or "auto": RAUC where /etc/rauc/system.conf exists, else off.
    updates: Annotated[
        Literal["auto", "rauc", "fake", "off"],
        _setting("must be 'auto', 'rauc', 'fake' or 'off'"),
    ] = "auto"
    #: Where downloaded update bundles go (default: updates/ in identity_dir, on /data).
    update_dir: _PathSetting | None = None
    #: SHA-256 digest of the technician PIN (``videobooth-booth --pin-digest``); None: the
    #: technician screen stays closed.
    technician_pin_digest: Annotated[
        str | None,
        Field(pattern=r"^[0-9a-f]{64}$"),
        _setting("expected 64 hex digits as printed by 'videobooth-booth --pin-digest'"),
    ] = Field(default=None, repr=False)

    @model_validator(mode="after")
    def _consistent(self) -> BoothConfig:
        parts = urlsplit(self.server_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BoothConfigError(
                f"server_url: {self.server_url!r} must be an http:// or https:// URL"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            # An address copied from a browser (…/advisor/): every request would be a 404.
            raise BoothConfigError(
                f"server_url: {self.server_url!r}: give the server's address without a path, "
                f"e.g. {parts.scheme}://{parts.netloc}"
            )
        if self.credential is not None:
            booth_id, dot, secret = self.credential.partition(".")
            if not booth_id or not dot or not secret:
                raise BoothConfigError(
                    "credential: expected '<booth id>.<secret>' as printed by "
                    "'videobooth-server booth add'"
                )
        if self.enrolment_token is not None and not re.fullmatch(
            r"vbe_[A-Za-z0-9_-]{32,64}", self.enrolment_token
        ):
            raise BoothConfigError("enrolment_token: not an enrolment token (vbe_...)")
        if self.server_ca_file is not None and self.server_fingerprint is not None:
            raise BoothConfigError("set server_ca_file or server_fingerprint, not both")
        if self.server_fingerprint is not None and not re.fullmatch(
            r"sha256:([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}", self.server_fingerprint
        ):
            raise BoothConfigError(
                "server_fingerprint: expected sha256: and 32 colon-separated hex bytes"
            )
        return self

    @property
    def websocket_url(self) -> str:
        parts = urlsplit(self.server_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return f"{scheme}://{parts.netloc}/api/v1/ws"

    def with_overrides(self, **changes: Any) -> BoothConfig:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


#: The booth.toml settings that are tables, and the class of each.
SECTIONS: dict[str, type[Any]] = {
    "video": VideoConfig,
    "camera": CameraConfig,
    "audio": AudioConfig,
    "hardware": HardwareConfig,
    "accessibility": AccessibilityConfig,
}
#: The settings a booth.toml may hold: every field but where the file itself is.
_FILE_SETTINGS = frozenset(f.name for f in dataclasses.fields(BoothConfig)) - {"source"}


def _section(kind: type[_Settings], data: Any) -> _Settings:
    if not isinstance(data, dict):
        section = getattr(kind, "SECTION")  # noqa: B009 - every settings class has one
        raise BoothConfigError(f"[{section}] must be a table")
    return kind(**data)


def _video(data: Any) -> VideoConfig:
    return _section(VideoConfig, data)


def _camera(data: Any) -> CameraConfig:
    return _section(CameraConfig, data)


def _audio(data: Any) -> AudioConfig:
    return _section(AudioConfig, data)


def _hardware(data: Any) -> HardwareConfig:
    return _section(HardwareConfig, data)


def config_from_mapping(data: dict[str, Any]) -> BoothConfig:
    """The configuration a booth.toml's settings describe; every problem one clear message."""
    unknown = sorted(set(data) - _FILE_SETTINGS)
    if unknown:
        raise BoothConfigError(f"unknown setting(s): {', '.join(unknown)}")
    settings = {
        key: _section(SECTIONS[key], value) if key in SECTIONS else value
        for key, value in data.items()
    }
    return BoothConfig(**settings)


def load_config(path: Path) -> BoothConfig:
    """Read the booth's TOML configuration; every problem is one clear message."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise BoothConfigError(f"configuration file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise BoothConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        config = config_from_mapping(data)
    except BoothConfigError as exc:
        raise BoothConfigError(f"{path}: {exc}") from exc
    # A CA file named relative to booth.toml lives next to it (on the boot partition).
    ca = config.server_ca_file
    if ca is not None and not ca.is_absolute():
        ca = path.parent / ca
    return replace(config, source=path, server_ca_file=ca)
