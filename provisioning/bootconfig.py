"""The boot partition's ``booth.toml``: parsed, checked and written by the technician's tool.

The booth reads the same file at every start (:func:`kiosk.config.load_config`); this module
holds a card to the stricter rules of the field::

    server_url = "https://video.example.org"   # https (http only to 127.0.0.1), no path
    server_ca_file = "videobooth-ca.pem"       # the organisation's CA (PEM) next to booth.toml,
    # server_fingerprint = "sha256:AB:CD:..."  # or the server certificate's SHA-256 (one of them)
    branch = "Branch 12"                       # 1 to 100 printable characters
    enrolment_token = "vbe_..."                # optional; the booth deletes it once enrolled
    [camera] [audio] [hardware] [video]        # optional, checked by the booth's own parsers

The CA certificate gets a structural check only (PEM, base64, the three parts of an X.509
certificate in DER): the tool must run on a technician's laptop without a crypto library, and
the booth's TLS stack does the real check.

Its length: every rule the field holds a card to is here, one beside the other, so a technician's
question ("why was my card refused?") is answered by reading one file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from kiosk.config import (
    AudioConfig,
    BoothConfigError,
    CameraConfig,
    HardwareConfig,
    VideoConfig,
    _audio,
    _camera,
    _hardware,
    _video,
)
from provisioning.errors import BootConfigError

log = logging.getLogger(__name__)

CONFIG_NAME = "booth.toml"
#: The commented example the image ships on its boot partition: how a target is recognised.
TEMPLATE_NAME = "booth.toml.template"
#: The name the tool gives the CA certificate it copies onto the card.
CA_NAME = "videobooth-ca.pem"

LOCAL_HOSTS = ("127.0.0.1", "localhost")
MAX_BRANCH = 100
MAX_URL = 2000
#: A CA certificate is a few KiB; a bundle of a handful stays far below this.
MAX_CA_BYTES = 1024 * 1024
TOKEN_PATTERN = re.compile(r"vbe_[A-Za-z0-9_-]{32,64}")
_TOKEN_PREFIX = "vbe_"  # noqa: S105 - a prefix, not a secret
_CA_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HEX_BYTE = re.compile(r"[0-9A-Fa-f]{2}")
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)(?:-----END \1-----|\Z)", re.DOTALL)

_KEYS = (
    "server_url",
    "server_ca_file",
    "server_fingerprint",
    "branch",
    "enrolment_token",
    "technician_pin_digest",
)
#: The optional device sections, in the order they are written, with the booth's parsers.
_DEVICE_PARSERS: dict[str, Callable[[Any], object]] = {
    "camera": _camera,
    "audio": _audio,
    "hardware": _hardware,
    "video": _video,
}
DEVICE_SECTIONS = tuple(_DEVICE_PARSERS)


# --- single settings ---------------------------------------------------------------------------


def check_server_url(url: str) -> str:
    """``url`` if a booth in the field may use it: https, or http to this machine only."""
    if not isinstance(url, str) or not url:
        raise BootConfigError("expected the server's address, https://...", setting="server_url")
    if len(url) > MAX_URL or not url.isprintable() or any(c.isspace() for c in url):
        raise BootConfigError(
            "not an address (spaces, control characters or too long)", setting="server_url"
        )
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        raise BootConfigError(f"{url!r} has an invalid port", setting="server_url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BootConfigError(f"{url!r} is not an https:// address", setting="server_url")
    if parts.username is not None or parts.password is not None:
        raise BootConfigError("must not contain a user name or password", setting="server_url")
    if parts.query or parts.fragment:
        raise BootConfigError(
            f"{url!r}: give the server's address only, without ?... or #...", setting="server_url"
        )
    if parts.path not in ("", "/"):
        # Copied from a browser (…/advisor/): the booth would find no API there (HTTP 404).
        raise BootConfigError(
            f"{url!r}: give the server's address without a path, e.g. "
            f"{parts.scheme}://{parts.netloc}",
            setting="server_url",
        )
    if parts.scheme == "http" and parts.hostname not in LOCAL_HOSTS:
        raise BootConfigError(
            f"{url!r} must use https:// (plain http only to 127.0.0.1 or localhost, for "
            "development)",
            setting="server_url",
        )
    return url


def normalize_fingerprint(text: str) -> str:
    """``sha256:AB:CD:...`` (upper case) from what a technician may paste: that form, the
    ``sha256 Fingerprint=AB:CD:...`` line of ``openssl x509 -fingerprint -sha256``, or the hex
    bytes alone."""
    value = text.strip()
    for prefix in ("sha256 fingerprint=", "sha256:"):
        if value.lower().startswith(prefix):
            value = value[len(prefix) :]
            break
    return check_fingerprint("sha256:" + value)


def check_fingerprint(value: str) -> str:
    """``value`` as ``sha256:`` and 32 colon-separated hex bytes, in upper case."""
    if not isinstance(value, str):
        raise BootConfigError("expected a string", setting="server_fingerprint")
    if not value.lower().startswith("sha256:"):
        raise BootConfigError(
            "must start with sha256: (the SHA-256 fingerprint of the server's certificate)",
            setting="server_fingerprint",
        )
    parts = value[len("sha256:") :].split(":")
    for part in parts:
        if not _HEX_BYTE.fullmatch(part):
            shown = part if part.isprintable() and len(part) <= 8 else part[:8] + "…"
            raise BootConfigError(
                f"{shown!r} is not a hex byte; expected sha256: and 32 colon-separated hex "
                "bytes (sha256:AB:CD:...)",
                setting="server_fingerprint",
            )
    if len(parts) != 32:
        hint = " (that is a SHA-1 fingerprint: use SHA-256)" if len(parts) == 20 else ""
        raise BootConfigError(
            f"has {len(parts)} byte{'s' if len(parts) != 1 else ''}, a SHA-256 fingerprint "
            f"has 32{hint}",
            setting="server_fingerprint",
        )
    return "sha256:" + ":".join(parts).upper()


def check_branch(value: str) -> str:
    if not isinstance(value, str):
        raise BootConfigError("expected a string (in quotes)", setting="branch")
    if not value.strip():
        raise BootConfigError("must not be empty", setting="branch")
    if len(value) > MAX_BRANCH:
        raise BootConfigError(f"{len(value)} characters; at most {MAX_BRANCH}", setting="branch")
    if not value.isprintable():
        raise BootConfigError(
            "must be printable characters on one line (no tabs, line breaks or control characters)",
            setting="branch",
        )
    return value


def check_token(value: str) -> str:
    """``value`` if it is an enrolment token. The message never shows the token."""
    if not isinstance(value, str):
        raise BootConfigError("expected a string", setting="enrolment_token")
    if TOKEN_PATTERN.fullmatch(value):
        return value
    if not value.startswith(_TOKEN_PREFIX):
        why = "it does not start with vbe_"
    elif not 32 <= len(value) - len(_TOKEN_PREFIX) <= 64:
        why = f"it has {len(value) - len(_TOKEN_PREFIX)} characters after vbe_, not 32 to 64"
    else:
        why = "it has characters other than letters, digits, - and _"
    raise BootConfigError(
        f"not an enrolment token: {why} (copy the whole token from the administration page)",
        setting="enrolment_token",
    )


def check_ca_file_name(value: str) -> str:
    """A plain file name next to booth.toml (the boot partition has no folders for it)."""
    if not isinstance(value, str) or not _CA_FILE_NAME.fullmatch(value):
        raise BootConfigError(
            f"{value!r}: expected a file name next to booth.toml, such as {CA_NAME!r} "
            "(letters, digits, '.', '-', '_'; no folders)",
            setting="server_ca_file",
        )
    return value


# --- the CA certificate ------------------------------------------------------------------------


def parse_ca_pem(data: bytes, *, name: str = CA_NAME) -> list[str]:
    """The SHA-256 fingerprints (``sha256:AB:...``) of the certificates in a PEM CA file, in
    order; a :class:`BootConfigError` naming the file if it is not one."""
    if len(data) > MAX_CA_BYTES:
        raise BootConfigError(
            f"{len(data)} bytes is too large for a CA certificate (at most 1 MiB)", setting=name
        )
    if data[:1] == b"\x30":
        raise BootConfigError(
            "is a binary (DER) certificate; convert it to PEM with "
            "'openssl x509 -inform der -in CA.der -out CA.pem'",
            setting=name,
        )
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise BootConfigError(
            "not a PEM file (it is not plain text with -----BEGIN CERTIFICATE-----)",
            setting=name,
        ) from None
    fingerprints = []
    for number, match in enumerate(_PEM_BLOCK.finditer(text), start=1):
        label, body = match.group(1), match.group(2)
        if "PRIVATE KEY" in label:
            raise BootConfigError(
                "holds a private key; give the CA certificate only (a key never goes onto a card)",
                setting=name,
            )
        if label != "CERTIFICATE":
            raise BootConfigError(
                f"holds a {label}, not a CERTIFICATE; give the organisation's CA certificate",
                setting=name,
            )
        if not match.group(0).endswith("-----END CERTIFICATE-----"):
            raise BootConfigError(
                f"certificate {number} has no -----END CERTIFICATE----- line (is the file cut "
                "short?)",
                setting=name,
            )
        try:
            der = base64.b64decode("".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            raise BootConfigError(
                f"certificate {number} is not valid base64 between its BEGIN and END lines",
                setting=name,
            ) from None
        if not _looks_like_x509(der):
            raise BootConfigError(
                f"certificate {number} is not an X.509 certificate (expected a DER SEQUENCE "
                "of certificate, algorithm and signature)",
                setting=name,
            )
        fingerprints.append(fingerprint_of(der))
    if not fingerprints:
        raise BootConfigError(
            "holds no certificate (no -----BEGIN CERTIFICATE----- line)", setting=name
        )
    return fingerprints


def fingerprint_of(der: bytes) -> str:
    digest = hashlib.sha256(der).hexdigest().upper()
    return "sha256:" + ":".join(digest[i : i + 2] for i in range(0, 64, 2))


def _der_element(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of contents, end) of the DER element at ``pos``; ValueError if malformed."""
    if pos + 2 > len(data):
        raise ValueError("short")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        # DER: definite lengths only, in the fewest bytes.
        if count == 0 or count > 4 or pos + count > len(data) or data[pos] == 0:
            raise ValueError("bad length")
        length = int.from_bytes(data[pos : pos + count], "big")
        if length < 0x80:
            raise ValueError("bad length")
        pos += count
    end = pos + length
    if end > len(data):
        raise ValueError("short")
    return tag, pos, end


def _looks_like_x509(der: bytes) -> bool:
    """Certificate ::= SEQUENCE { tbsCertificate SEQUENCE, signatureAlgorithm SEQUENCE,
    signatureValue BIT STRING }, filling ``der`` exactly."""
    try:
        tag, pos, end = _der_element(der, 0)
        if tag != 0x30 or end != len(der):
            return False
        tags = []
        while pos < end:
            tag, _, pos = _der_element(der, pos)
            tags.append(tag)
    except ValueError:
        return False
    return tags == [0x30, 0x30, 0x03]


# --- the file ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceConfig:
    """The device sections of a technician's device file (``--device-config``); None: the
    booth's defaults."""

    camera: CameraConfig | None = None
    audio: AudioConfig | None = None
    hardware: HardwareConfig | None = None
    video: VideoConfig | None = None

    @property
    def sections(self) -> list[str]:
        return [name for name in DEVICE_SECTIONS if getattr(self, name) is not None]


@dataclass(frozen=True)
class BootConfig:
    """What ``booth.toml`` on a boot partition holds. Checked when made: an instance is always
    a file the booth accepts."""

    server_url: str
    branch: str
    #: A file name next to booth.toml; exactly one of this and ``server_fingerprint``.
    server_ca_file: str | None = None
    #: ``sha256:`` and 32 colon-separated hex bytes (kept in upper case).
    server_fingerprint: str | None = None
    enrolment_token: str | None = field(default=None, repr=False)
    #: ``videobooth-booth --pin-digest`` of the technician PIN; None: technician mode closed.
    technician_pin_digest: str | None = field(default=None, repr=False)
    camera: CameraConfig | None = None
    audio: AudioConfig | None = None
    hardware: HardwareConfig | None = None
    video: VideoConfig | None = None

    def __post_init__(self) -> None:
        check_server_url(self.server_url)
        check_branch(self.branch)
        if self.server_ca_file is None and self.server_fingerprint is None:
            raise BootConfigError(
                "set server_ca_file (the organisation's CA certificate) or server_fingerprint "
                "(the server certificate's SHA-256): the booth must know how to recognise the "
                "server"
            )
        if self.server_ca_file is not None and self.server_fingerprint is not None:
            raise BootConfigError("set server_ca_file or server_fingerprint, not both")
        if self.server_ca_file is not None:
            check_ca_file_name(self.server_ca_file)
        if self.server_fingerprint is not None:
            object.__setattr__(
                self, "server_fingerprint", check_fingerprint(self.server_fingerprint)
            )
        if self.enrolment_token is not None:
            check_token(self.enrolment_token)
        digest = self.technician_pin_digest
        if digest is not None and not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise BootConfigError(
                "expected 64 hex digits as printed by 'videobooth-booth --pin-digest'",
                setting="technician_pin_digest",
            )
        for name, kind in (
            ("camera", CameraConfig),
            ("audio", AudioConfig),
            ("hardware", HardwareConfig),
            ("video", VideoConfig),
        ):
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                raise BootConfigError(f"expected the [{name}] settings", setting=name)

    @property
    def devices(self) -> DeviceConfig:
        return DeviceConfig(
            camera=self.camera, audio=self.audio, hardware=self.hardware, video=self.video
        )


def _devices_from(data: dict[str, Any]) -> dict[str, Any]:
    """The device sections of ``data``, each checked by the booth's own parser."""
    parsed: dict[str, Any] = {}
    for name, parser in _DEVICE_PARSERS.items():
        if name in data:
            try:
                parsed[name] = parser(data[name])
            except BoothConfigError as exc:
                raise BootConfigError(str(exc)) from None
            except TypeError as exc:  # a dataclass refusing an argument the parser let by
                raise BootConfigError(f"[{name}]: {exc}") from None
    return parsed


def _load_toml(text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BootConfigError(f"not valid TOML: {exc}") from None


def parse_device_config(text: str) -> DeviceConfig:
    """A device file: only ``[camera]``, ``[audio]``, ``[hardware]`` and ``[video]``."""
    data = _load_toml(text)
    unknown = sorted(set(data) - set(DEVICE_SECTIONS))
    if unknown:
        raise BootConfigError(
            f"unknown section(s) or setting(s): {', '.join(unknown)}; a device file holds "
            "only [camera], [audio], [hardware] and [video]"
        )
    return DeviceConfig(**_devices_from(data))


def parse_boot_config(text: str) -> BootConfig:
    """``booth.toml`` as a :class:`BootConfig`; every problem is one line naming the setting."""
    data = _load_toml(text)
    unknown = sorted(set(data) - set(_KEYS) - set(DEVICE_SECTIONS))
    if unknown:
        raise BootConfigError(
            f"unknown setting(s): {', '.join(unknown)}; a card's booth.toml holds "
            f"{', '.join(_KEYS)} and [{'], ['.join(DEVICE_SECTIONS)}]"
        )
    for key in ("server_url", "branch"):
        if key not in data:
            raise BootConfigError("missing", setting=key)
    for key in _KEYS:
        if key in data and not isinstance(data[key], str):
            raise BootConfigError("expected a string (in quotes)", setting=key)
    return BootConfig(
        server_url=data["server_url"],
        branch=data["branch"],
        server_ca_file=data.get("server_ca_file"),
        server_fingerprint=data.get("server_fingerprint"),
        enrolment_token=data.get("enrolment_token"),
        technician_pin_digest=data.get("technician_pin_digest"),
        **_devices_from(data),
    )


def _toml_string(value: str) -> str:
    out = []
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(str(value))  # str(): a StrEnum as its value
    raise TypeError(f"cannot write {value!r} in booth.toml")


_HEADER = """\
# Videobooth booth configuration, written by videobooth-provision.
# The booth reads this file at every start. Check it with:
#     videobooth-provision check <the card's boot partition, or the image file>
"""

_SECTION_NOTES = {
    "camera": "# Camera: auto, picamera2, v4l2 or test-pattern (README: Camera).",
    "audio": "# Microphone and loudspeaker (README: Booth audio).",
    "hardware": "# Buttons, lights and presence sensor: BCM GPIO numbers (README: Buttons).",
    "video": "# The video the booth sends (README: Booth configuration).",
}


def render_boot_config(config: BootConfig) -> str:
    """``booth.toml`` for ``config``, commented for a technician who opens it on the card;
    :func:`parse_boot_config` reads it back to an equal :class:`BootConfig`."""
    lines = [
        _HEADER,
        "# The organisation's Videobooth server.",
        f"server_url = {_toml_value(config.server_url)}",
        "",
    ]
    if config.server_ca_file is not None:
        lines += [
            "# The booth trusts the server's certificate if this CA certificate (next to this",
            "# file) signed it.",
            f"server_ca_file = {_toml_value(config.server_ca_file)}",
        ]
    else:
        lines += [
            "# The booth trusts the server's certificate only if its SHA-256 is this one.",
            f"server_fingerprint = {_toml_value(config.server_fingerprint)}",
        ]
    lines += [
        "",
        "# The branch this booth stands in (shown in technician mode).",
        f"branch = {_toml_value(config.branch)}",
        "",
        "# The one-time enrolment token: the booth enrols with it at first boot and then",
        "# deletes it from this file. Without it the booth shows 'Set up this booth' and reads",
        "# the enrolment QR code from the administration page with its camera.",
    ]
    if config.enrolment_token is not None:
        # One line: the booth deletes exactly this line (kiosk.identity.forget_token).
        lines.append(f"enrolment_token = {_toml_value(config.enrolment_token)}")
    if config.technician_pin_digest is not None:
        lines += [
            "",
            "# The technician PIN, as a digest (videobooth-booth --pin-digest prints it).",
            f"technician_pin_digest = {_toml_value(config.technician_pin_digest)}",
        ]
    for name in DEVICE_SECTIONS:
        section = getattr(config, name)
        if section is None:
            continue
        lines += ["", _SECTION_NOTES[name], f"[{name}]"]
        for item in fields(section):
            value = getattr(section, item.name)
            if value is not None:  # not set: the booth's default (an unwired pin, ...)
                lines.append(f"{item.name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"
