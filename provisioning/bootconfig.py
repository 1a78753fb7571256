"""The boot partition's ``booth.toml``: what the technician's tool writes and checks.

It is the booth's own configuration file (:mod:`kiosk.config` reads it at every start), so it is
checked with the booth's own parser, plus the rules of a card that goes into the field: the
server over HTTPS (plain HTTP only to this machine, for development), the server's CA
certificate or its fingerprint, a branch, and the one-time enrolment token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import tomllib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kiosk.config import BoothConfigError, config_from_mapping

CONFIG_NAME = "booth.toml"
TEMPLATE_NAME = "booth.toml.template"
CA_NAME = "videobooth-ca.pem"
DEVICE_SECTIONS = ("video", "camera", "audio", "hardware")
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END CERTIFICATE-----")
_FINGERPRINT = re.compile(r"^sha256:([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$")


class BootConfigError(ValueError):
    """What is wrong, in one line naming the setting."""


def certificate_fingerprint(pem: str) -> str:
    """The SHA-256 fingerprint of the one certificate in ``pem``; a clear error otherwise."""
    found = _PEM.findall(pem)
    if len(found) != 1:
        raise BootConfigError("the CA file must hold exactly one PEM certificate")
    try:
        der = base64.b64decode("".join(found[0].split()), validate=True)
    except (binascii.Error, ValueError):
        raise BootConfigError("the CA file's certificate is not valid base64") from None
    if len(der) < 64 or der[0] != 0x30:  # a DER certificate is a SEQUENCE
        raise BootConfigError("the CA file does not hold a DER certificate")
    digest = hashlib.sha256(der).hexdigest().upper()
    return "sha256:" + ":".join(digest[i : i + 2] for i in range(0, 64, 2))


@dataclass(frozen=True)
class BootConfig:
    server_url: str
    branch: str
    server_fingerprint: str | None = None
    #: The CA certificate's PEM text (written next to booth.toml as videobooth-ca.pem).
    ca_pem: str | None = None
    enrolment_token: str | None = None
    #: Device sections ([camera], [audio], [hardware], [video]) as TOML tables.
    devices: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        check_server_url(self.server_url)
        if not self.branch.strip() or len(self.branch) > 100 or not self.branch.isprintable():
            raise BootConfigError("branch: 1 to 100 printable characters")
        if (self.ca_pem is None) == (self.server_fingerprint is None):
            raise BootConfigError("give the server's CA file or its fingerprint (one of them)")
        if self.server_fingerprint is not None and not _FINGERPRINT.fullmatch(
            self.server_fingerprint
        ):
            raise BootConfigError("fingerprint: expected sha256: and 32 colon-separated hex bytes")
        if self.ca_pem is not None:
            certificate_fingerprint(self.ca_pem)
        # The booth's own parser has the last word (token format, device sections, pins).
        try:
            config_from_mapping(self.mapping())
        except BoothConfigError as exc:
            raise BootConfigError(str(exc)) from None

    def mapping(self) -> dict[str, Any]:
        data: dict[str, Any] = {"server_url": self.server_url, "branch": self.branch}
        if self.ca_pem is not None:
            data["server_ca_file"] = CA_NAME
        if self.server_fingerprint is not None:
            data["server_fingerprint"] = self.server_fingerprint
        if self.enrolment_token is not None:
            data["enrolment_token"] = self.enrolment_token
        data.update(self.devices or {})
        return data

    @property
    def fingerprint(self) -> str:
        if self.ca_pem is not None:
            return certificate_fingerprint(self.ca_pem)
        assert self.server_fingerprint is not None
        return self.server_fingerprint


def check_server_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1"):
        return
    if parts.scheme != "https" or not parts.hostname:
        raise BootConfigError(
            f"server-url: {url!r} must be https:// (plain http only to this machine)"
        )


def parse_devices(text: str) -> dict[str, Any]:
    """A device-settings file: only [camera], [audio], [hardware], [video] tables."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BootConfigError(f"device settings: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(DEVICE_SECTIONS))
    if unknown:
        raise BootConfigError(f"device settings: unknown section(s): {', '.join(unknown)}")
    return data


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise BootConfigError(f"cannot write {value!r} as a setting")


def render(config: BootConfig) -> str:
    """The file the booth reads: commented so a technician can read it on the card."""
    lines = [
        "# Videobooth booth configuration, written by videobooth-provision.",
        "# Check it with: videobooth-provision check <card or image>",
        "",
        "# The organisation's server, and how the booth recognises it.",
        f"server_url = {_toml_value(config.server_url)}",
    ]
    if config.ca_pem is not None:
        lines.append(f"server_ca_file = {_toml_value(CA_NAME)}  # {config.fingerprint}")
    else:
        lines.append(f"server_fingerprint = {_toml_value(config.server_fingerprint)}")
    lines += ["", "# The branch this booth stands in.", f"branch = {_toml_value(config.branch)}"]
    if config.enrolment_token is not None:
        lines += [
            "",
            "# One-time enrolment token. The booth deletes this line once it has used it.",
            f"enrolment_token = {_toml_value(config.enrolment_token)}",
        ]
    lines += [
        "",
        "# Where the booth keeps its key (the persistent data partition) and how it shows.",
        'identity_dir = "/data/videobooth"',
        'display = "fullscreen"',
    ]
    for section in DEVICE_SECTIONS:
        table = (config.devices or {}).get(section)
        if table:
            lines += ["", f"[{section}]"]
            lines += [f"{key} = {_toml_value(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


def read_back(text: str, ca_pem: str | None) -> BootConfig:
    """The configuration a card holds, checked as :func:`render` would have written it."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BootConfigError(f"{CONFIG_NAME}: not valid TOML: {exc}") from None
    for key in ("server_url", "branch"):
        if not isinstance(data.get(key), str):
            raise BootConfigError(f"{CONFIG_NAME}: {key} is missing")
    if "server_ca_file" in data and ca_pem is None:
        raise BootConfigError(f"{CONFIG_NAME} names {data['server_ca_file']} but it is not there")
    return BootConfig(
        server_url=data["server_url"],
        branch=data["branch"],
        server_fingerprint=data.get("server_fingerprint"),
        ca_pem=ca_pem if "server_ca_file" in data else None,
        enrolment_token=data.get("enrolment_token"),
        devices={k: v for k, v in data.items() if k in DEVICE_SECTIONS},
    )
