"""Who the booth is to the server, and how it proves it.

An enrolled booth holds an Ed25519 private key on its persistent data partition (file mode
0600, never leaves the booth) and its booth id. Every connection starts with a fresh nonce from
the server, signed with that key (:mod:`server.boothauth` checks it). Enrolment trades the
one-time token from the boot partition (or from the enrolment QR code) and the public key for
the booth id; afterwards the token is deleted from the boot partition.

A per-booth secret (``credential`` in booth.toml, printed by ``videobooth-server booth add``)
remains as a development option: no enrolment, a bearer header.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import platform
import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from kiosk.errors import BoothError
from protocol.boothauth import booth_auth_text

log = logging.getLogger(__name__)

KEY_FILE = "booth.key"
IDENTITY_FILE = "identity.json"
TIMEOUT = aiohttp.ClientTimeout(total=15)


class EnrolmentRefusedError(BoothError):
    """The server refused the enrolment; the message is its reason (English, for the log) and
    :attr:`reason` the same as a code for the screen (``token_used``, ``token_expired``, ...;
    ``refused`` when the server gave none)."""

    def __init__(self, message: str, reason: str = "refused") -> None:
        super().__init__(message)
        self.reason = reason


class ServerNotFoundError(BoothError):
    """The server's address answers, but no Videobooth server is there (HTTP 404): booth.toml's
    ``server_url`` names the wrong host (or a path in front of the API)."""


class IdentityError(BoothError):
    """The stored identity cannot be used (damaged key file, ...)."""


def load_or_create_key(directory: Path) -> Ed25519PrivateKey:
    """The booth's private key from ``directory``, made (mode 0600) if there is none."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        try:
            raw = bytes.fromhex(path.read_text(encoding="ascii").strip())
            return Ed25519PrivateKey.from_private_bytes(raw)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise IdentityError(f"the booth key {path} is damaged: {exc}") from exc
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    with os.fdopen(fd, "w") as out:
        out.write(raw.hex() + "\n")
    log.info("made a new booth key in %s", path)
    return key


def public_key_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


@dataclass(frozen=True)
class Identity:
    booth_id: str
    name: str
    key: Ed25519PrivateKey


def load_identity(directory: Path) -> Identity | None:
    """The enrolled identity in ``directory``; None before enrolment."""
    path = directory / IDENTITY_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Identity(str(data["booth_id"]), str(data["name"]), load_or_create_key(directory))
    except (OSError, ValueError, KeyError) as exc:
        raise IdentityError(f"the booth identity {path} is damaged: {exc}") from exc


def _save_identity(directory: Path, booth_id: str, name: str) -> None:
    path = directory / IDENTITY_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"booth_id": booth_id, "name": name}) + "\n", encoding="utf-8")
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def hardware_facts() -> dict[str, str]:
    """What the booth says of itself at enrolment: model, serial, kernel (no personal data)."""
    facts = {"machine": platform.machine(), "kernel": platform.release()}
    for name, path in (
        ("model", "/proc/device-tree/model"),
        ("serial", "/proc/device-tree/serial-number"),
    ):
        with contextlib.suppress(OSError):
            facts[name] = Path(path).read_text(errors="replace").strip("\x00\n ")[:200]
    return facts


SslSetting = ssl.SSLContext | aiohttp.Fingerprint | bool


def ssl_setting(ca_file: Path | None, fingerprint: str | None) -> SslSetting:
    """How the booth checks the server's certificate: the organisation's CA, a pinned
    certificate fingerprint, or the system's trust store."""
    if ca_file is not None:
        return ssl.create_default_context(cafile=str(ca_file))
    if fingerprint is not None:
        digits = fingerprint.removeprefix("sha256:").replace(":", "")
        return aiohttp.Fingerprint(bytes.fromhex(digits))
    return True


@dataclass
class ServerAccess:
    """The server's address, how to check its certificate, and how to log in."""

    server_url: str
    ssl: SslSetting = True
    identity: Identity | None = None
    credential: str | None = None  # the development option

    @property
    def base(self) -> str:
        return self.server_url.rstrip("/")

    def session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ssl), timeout=TIMEOUT)

    async def headers(self, http: aiohttp.ClientSession) -> dict[str, str]:
        """Headers that log this booth in for one request (a fresh nonce each time)."""
        if self.credential is not None:
            return {"Authorization": f"Bearer {self.credential}"}
        if self.identity is None:
            return {}
        booth_id = self.identity.booth_id
        async with http.get(
            f"{self.base}/api/v1/booth/challenge", params={"booth": booth_id}
        ) as response:
            response.raise_for_status()
            nonce = str((await response.json())["nonce"])
        signature = self.identity.key.sign(booth_auth_text(booth_id, nonce))
        encoded = base64.urlsafe_b64encode(signature).decode().rstrip("=")
        return {"Authorization": f"Signature booth={booth_id},nonce={nonce},signature={encoded}"}

    async def get(self, http: aiohttp.ClientSession, path: str) -> aiohttp.ClientResponse:
        return await http.get(f"{self.base}{path}", headers=await self.headers(http))


async def enrol(access: ServerAccess, directory: Path, token: str) -> Identity:
    """Trade ``token`` and a public key for the booth's identity, and keep it."""
    key = load_or_create_key(directory)
    body: dict[str, Any] = {
        "token": token,
        "public_key": public_key_hex(key),
        "hardware": hardware_facts(),
    }
    async with (
        access.session() as http,
        http.post(f"{access.base}/api/v1/enrol", json=body) as response,
    ):
        if response.status == 404:
            raise ServerNotFoundError(
                f"{access.base} answered HTTP 404 to the enrolment: it is not a Videobooth "
                "server; correct server_url in booth.toml (the server's address, no path)"
            )
        answer: Any = await response.json(content_type=None)
        if response.status != 200:
            detail = answer.get("detail") if isinstance(answer, dict) else None
            reason = answer.get("reason") if isinstance(answer, dict) else None
            raise EnrolmentRefusedError(
                detail or f"the server answered HTTP {response.status}",
                reason if isinstance(reason, str) and reason.isidentifier() else "refused",
            )
    _save_identity(directory, answer["booth_id"], answer["name"])
    log.info("enrolled as booth %s (%s)", answer["booth_id"], answer["name"])
    return Identity(str(answer["booth_id"]), str(answer["name"]), key)


_TOKEN_LINE = re.compile(r"^\s*enrolment_token\s*=.*$\n?", re.MULTILINE)


def forget_token(config_file: Path) -> None:
    """Delete the token from the boot partition's booth.toml (it is spent); the rest of the
    file, comments included, stays as it was."""
    text = config_file.read_text(encoding="utf-8")
    cleaned = _TOKEN_LINE.sub("", text)
    if cleaned != text:
        tmp = config_file.with_name(config_file.name + ".tmp")
        tmp.write_text(cleaned, encoding="utf-8")
        tmp.replace(config_file)
        log.info("the spent enrolment token was removed from %s", config_file)
