"""Booth configuration: a TOML file (on the boot partition in the image) plus flags."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kiosk.errors import BoothError


class BoothConfigError(BoothError, ValueError):
    """The booth configuration cannot be used; the message names the setting."""


class DisplayMode(StrEnum):
    AUTO = "auto"  # a window where a display exists, headless otherwise
    WINDOW = "window"  # a 1024x600 window (development)
    FULLSCREEN = "fullscreen"  # the booth: the panel's own resolution
    HEADLESS = "headless"


@dataclass(frozen=True)
class VideoConfig:
    width: int = 640
    height: int = 480
    fps: int = 30
    bitrate: int = 1_000_000
    #: Bounds of the rate controller (bit/s).
    min_bitrate: int = 300_000
    max_bitrate: int = 2_500_000


@dataclass(frozen=True)
class CameraConfig:
    #: "auto" (picamera2, then a V4L2 webcam, then the test pattern if allowed), "picamera2",
    #: "v4l2" or "test-pattern".
    kind: str = "auto"
    device: str = "/dev/video0"
    #: The webcam's format, e.g. "mjpeg" or "yuyv422"; None lets the driver choose.
    input_format: str | None = None
    #: Whether "auto" may end at the synthetic test pattern (development, demos, smoke boots).
    allow_test_pattern: bool = False


@dataclass(frozen=True)
class AudioConfig:
    #: "tone" (a test signal), "wav:<path>" (a file, looped), or an ALSA capture device such as
    #: "default" or PipeWire's "echo-cancel-source".
    capture: str = "tone"
    #: "none" (received audio is consumed and dropped) or an ALSA playback device.
    playback: str = "none"
    volume: float = 1.0
    #: Most received audio the booth holds before playing it; beyond that it drops.
    max_latency_ms: float = 60.0


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

#: The [hardware] settings that name a pin, in the order they are reported.
_PIN_SETTINGS = (
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


@dataclass(frozen=True)
class HardwareConfig:
    """The booth's buttons, lights and presence sensor on GPIO (BCM numbers).

    A pin that is not set is not wired: that part does nothing and the touch screen still
    works. With no pin set at all the booth does not touch GPIO.
    """

    call_button: int | None = None
    #: The lamp inside the (illuminated) call button.
    call_button_led: int | None = None
    end_button: int | None = None
    end_button_led: int | None = None
    #: Lit exactly while the camera streams (privacy: the user can see it).
    camera_led: int | None = None
    status_led: int | None = None
    presence: PresenceKind = PresenceKind.NONE
    #: The PIR sensor's output.
    presence_pin: int | None = None
    #: The distance sensor's pins.
    presence_trigger_pin: int | None = None
    presence_echo_pin: int | None = None
    #: Someone nearer than this to the distance sensor is present (metres).
    presence_distance_m: float = 1.0
    #: Presses closer together than this are one press (contact bounce); 0: no debouncing.
    bounce_ms: int = 30
    #: Below 1 the LEDs are dimmed with PWM (an illuminated button glares in a dim booth).
    led_brightness: float = 1.0
    #: The pin driver: "auto" (lgpio, then rpigpio, then native; each fallback logged), or one
    #: of them, which is then that driver or an error.
    pin_factory: PinFactoryKind = PinFactoryKind.AUTO
    #: The gpiochip lgpio opens; None: gpiozero's choice (4 on a Pi 5 that has it, else 0). On a
    #: board that is not a Raspberry Pi it must be set: pins are then the chip's line offsets.
    gpio_chip: int | None = None

    def __post_init__(self) -> None:
        self._check_pins()
        self._check_presence()
        try:
            object.__setattr__(self, "pin_factory", PinFactoryKind(self.pin_factory))
        except ValueError:
            allowed = ", ".join(k.value for k in PinFactoryKind)
            raise BoothConfigError(f"hardware.pin_factory: must be one of {allowed}") from None
        chip = self.gpio_chip
        if chip is not None and (
            not isinstance(chip, int) or isinstance(chip, bool) or not 0 <= chip <= 63
        ):
            raise BoothConfigError("hardware.gpio_chip: expected a gpiochip number from 0 to 63")
        distance = self.presence_distance_m
        if not _is_number(distance) or not 0.1 <= distance <= 4.0:
            raise BoothConfigError(
                "hardware.presence_distance_m: expected a number of metres from 0.1 to 4"
            )
        bounce = self.bounce_ms
        if not isinstance(bounce, int) or isinstance(bounce, bool) or not 0 <= bounce <= 500:
            raise BoothConfigError("hardware.bounce_ms: expected a whole number from 0 to 500")
        brightness = self.led_brightness
        if not _is_number(brightness) or not 0.05 <= brightness <= 1:
            raise BoothConfigError("hardware.led_brightness: expected a number from 0.05 to 1")
        object.__setattr__(self, "presence_distance_m", float(distance))
        object.__setattr__(self, "led_brightness", float(brightness))

    def _check_pins(self) -> None:
        for name in _PIN_SETTINGS:
            pin = getattr(self, name)
            if pin is not None and (
                not isinstance(pin, int) or isinstance(pin, bool) or pin not in GPIO_PINS
            ):
                raise BoothConfigError(
                    f"hardware.{name}: expected a BCM GPIO number from 0 to 27, got {pin!r}"
                )
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

    def _check_presence(self) -> None:
        try:
            presence = PresenceKind(self.presence)
        except ValueError:
            allowed = ", ".join(k.value for k in PresenceKind)
            raise BoothConfigError(f"hardware.presence: must be one of {allowed}") from None
        object.__setattr__(self, "presence", presence)
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

    @property
    def pins(self) -> dict[str, int]:
        """The wired parts: setting name -> BCM pin."""
        return {name: pin for name in _PIN_SETTINGS if (pin := getattr(self, name)) is not None}

    @property
    def configured(self) -> bool:
        """Whether any part is wired at all."""
        return bool(self.pins)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class BoothConfig:
    """What a booth needs to run; see the README's booth configuration section."""

    server_url: str
    #: Development option: ``<booth id>.<secret>`` as printed by ``videobooth-server booth
    #: add``. Without it the booth enrols and logs in with its key (kiosk/identity.py).
    credential: str | None = field(default=None, repr=False)
    #: The one-time enrolment token (from the provisioning tool); deleted once spent.
    enrolment_token: str | None = field(default=None, repr=False)
    #: Where the booth keeps its key and identity (the persistent data partition).
    identity_dir: Path = Path("/data/videobooth")
    #: The organisation's CA certificate (PEM), or the server certificate's SHA-256
    #: fingerprint, for checking the server; neither: the system's trust store.
    server_ca_file: Path | None = None
    server_fingerprint: str | None = None
    #: The branch the technician provisioned the card for (shown in technician mode).
    branch: str | None = None
    #: The file this configuration came from (the spent token is deleted from it).
    source: Path | None = None
    video: VideoConfig = VideoConfig()
    camera: CameraConfig = CameraConfig()
    audio: AudioConfig = AudioConfig()
    hardware: HardwareConfig = HardwareConfig()
    display: DisplayMode = DisplayMode.AUTO
    #: Ask for an advisor as soon as the booth is connected (no touchscreen flow yet).
    call_on_start: bool = False
    #: Ask again after each call ends (demo and soak runs).
    repeat_calls: bool = False
    #: Where to write the booth's live status as JSON (diagnostics, tests); None: nowhere.
    status_file: Path | None = None
    heartbeat_seconds: float = 5.0
    reconnect_max_seconds: float = 30.0
    #: A call whose connection (to the server or to the others) stays broken this long ends
    #: with a clear message; until then the booth reconnects by itself.
    reconnect_limit_seconds: float = 60.0
    #: How often call statistics go to the server (and the advisor's call view).
    stats_seconds: float = 5.0
    #: SHA-256 digest of the technician PIN (``videobooth-booth --pin-digest``); None: the
    #: technician screen stays closed.
    technician_pin_digest: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
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

    @property
    def websocket_url(self) -> str:
        parts = urlsplit(self.server_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return f"{scheme}://{parts.netloc}/api/v1/ws"

    def with_overrides(self, **changes: Any) -> BoothConfig:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


_KEYS = {
    "server_url",
    "credential",
    "video",
    "camera",
    "audio",
    "hardware",
    "display",
    "call_on_start",
    "repeat_calls",
    "status_file",
    "heartbeat_seconds",
    "reconnect_max_seconds",
    "reconnect_limit_seconds",
    "stats_seconds",
    "technician_pin_digest",
    "enrolment_token",
    "identity_dir",
    "server_ca_file",
    "server_fingerprint",
    "branch",
}


def _video(data: Any) -> VideoConfig:
    if not isinstance(data, dict):
        raise BoothConfigError("[video] must be a table")
    unknown = sorted(
        set(data) - {"width", "height", "fps", "bitrate", "min_bitrate", "max_bitrate"}
    )
    if unknown:
        raise BoothConfigError(f"unknown setting(s) in [video]: {', '.join(unknown)}")
    for key, low, high in (
        ("width", 160, 3840),
        ("height", 120, 2160),
        ("fps", 5, 60),
        ("bitrate", 100_000, 10_000_000),
        ("min_bitrate", 100_000, 10_000_000),
        ("max_bitrate", 100_000, 10_000_000),
    ):
        value = data.get(key)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high
        ):
            raise BoothConfigError(f"video.{key}: expected a whole number from {low} to {high}")
    video = VideoConfig(**data)
    if video.width % 2 or video.height % 2:
        raise BoothConfigError("video.width and video.height must be even (H.264 4:2:0)")
    if not video.min_bitrate <= video.bitrate <= video.max_bitrate:
        raise BoothConfigError("video: need min_bitrate <= bitrate <= max_bitrate")
    return video


_CAMERA_KINDS = ("auto", "picamera2", "v4l2", "test-pattern")


def _camera(data: Any) -> CameraConfig:
    if not isinstance(data, dict):
        raise BoothConfigError("[camera] must be a table")
    unknown = sorted(set(data) - {"kind", "device", "input_format", "allow_test_pattern"})
    if unknown:
        raise BoothConfigError(f"unknown setting(s) in [camera]: {', '.join(unknown)}")
    kind = data.get("kind", "auto")
    if kind not in _CAMERA_KINDS:
        raise BoothConfigError(f"camera.kind: must be one of {', '.join(_CAMERA_KINDS)}")
    for key in ("device", "input_format"):
        if key in data and (not isinstance(data[key], str) or not data[key]):
            raise BoothConfigError(f"camera.{key}: expected a string")
    allow = data.get("allow_test_pattern", False)
    if not isinstance(allow, bool):
        raise BoothConfigError("camera.allow_test_pattern: expected true or false")
    return CameraConfig(
        kind=kind,
        device=data.get("device", "/dev/video0"),
        input_format=data.get("input_format"),
        allow_test_pattern=allow,
    )


def _audio(data: Any) -> AudioConfig:
    if not isinstance(data, dict):
        raise BoothConfigError("[audio] must be a table")
    unknown = sorted(set(data) - {"capture", "playback", "volume", "max_latency_ms"})
    if unknown:
        raise BoothConfigError(f"unknown setting(s) in [audio]: {', '.join(unknown)}")
    for key in ("capture", "playback"):
        if key in data and (not isinstance(data[key], str) or not data[key]):
            raise BoothConfigError(f"audio.{key}: expected a device name")
    volume = data.get("volume", 1.0)
    if not isinstance(volume, int | float) or isinstance(volume, bool) or not 0 <= volume <= 1:
        raise BoothConfigError("audio.volume: expected a number from 0 to 1")
    latency = data.get("max_latency_ms", 60.0)
    if (
        not isinstance(latency, int | float)
        or isinstance(latency, bool)
        or not 20 <= latency <= 500
    ):
        raise BoothConfigError("audio.max_latency_ms: expected a number from 20 to 500")
    return AudioConfig(
        capture=data.get("capture", "tone"),
        playback=data.get("playback", "none"),
        volume=float(volume),
        max_latency_ms=float(latency),
    )


def _hardware(data: Any) -> HardwareConfig:
    if not isinstance(data, dict):
        raise BoothConfigError("[hardware] must be a table")
    known = {
        *_PIN_SETTINGS,
        "presence",
        "presence_distance_m",
        "bounce_ms",
        "led_brightness",
        "pin_factory",
        "gpio_chip",
    }
    unknown = sorted(set(data) - known)
    if unknown:
        raise BoothConfigError(f"unknown setting(s) in [hardware]: {', '.join(unknown)}")
    for key in ("presence", "pin_factory"):
        if key in data and not isinstance(data[key], str):
            raise BoothConfigError(f"hardware.{key}: expected a string")
    # Ranges, duplicate pins and the presence sensor's pins are checked by the dataclass, so a
    # configuration built in code gets the same messages.
    return HardwareConfig(**data)


def config_from_mapping(data: dict[str, Any]) -> BoothConfig:
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise BoothConfigError(f"unknown setting(s): {', '.join(unknown)}")
    if not isinstance(data.get("server_url"), str):
        raise BoothConfigError("server_url: required, as a string")
    kwargs: dict[str, Any] = {"server_url": data["server_url"]}
    for key in ("credential", "enrolment_token", "server_fingerprint", "branch"):
        if key in data:
            if not isinstance(data[key], str):
                raise BoothConfigError(f"{key}: expected a string")
            kwargs[key] = data[key]
    for key in ("identity_dir", "server_ca_file"):
        if key in data:
            if not isinstance(data[key], str):
                raise BoothConfigError(f"{key}: expected a path")
            kwargs[key] = Path(data[key])
    if "video" in data:
        kwargs["video"] = _video(data["video"])
    if "camera" in data:
        kwargs["camera"] = _camera(data["camera"])
    if "audio" in data:
        kwargs["audio"] = _audio(data["audio"])
    if "hardware" in data:
        kwargs["hardware"] = _hardware(data["hardware"])
    if "display" in data:
        try:
            kwargs["display"] = DisplayMode(data["display"])
        except ValueError:
            raise BoothConfigError(
                "display: must be 'auto', 'window', 'fullscreen' or 'headless'"
            ) from None
    for key in ("call_on_start", "repeat_calls"):
        if key in data:
            if not isinstance(data[key], bool):
                raise BoothConfigError(f"{key}: expected true or false")
            kwargs[key] = data[key]
    if "status_file" in data:
        if not isinstance(data["status_file"], str):
            raise BoothConfigError("status_file: expected a path")
        kwargs["status_file"] = Path(data["status_file"])
    if "technician_pin_digest" in data:
        digest = data["technician_pin_digest"]
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise BoothConfigError(
                "technician_pin_digest: expected 64 hex digits as printed by "
                "'videobooth-booth --pin-digest'"
            )
        kwargs["technician_pin_digest"] = digest
    for key in (
        "heartbeat_seconds",
        "reconnect_max_seconds",
        "reconnect_limit_seconds",
        "stats_seconds",
    ):
        if key in data:
            value = data[key]
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise BoothConfigError(f"{key}: expected a positive number of seconds")
            kwargs[key] = float(value)
    return BoothConfig(**kwargs)


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
