"""Booths prove who they are by signing a fresh server nonce with their Ed25519 key.

1. ``GET /api/v1/booth/challenge?booth=<id>`` gives a nonce: random, for that booth only, valid
   for a minute, usable once.
2. The booth sends ``Authorization: Signature booth=<id>,nonce=<nonce>,signature=<sig>`` where
   ``sig`` is the base64url Ed25519 signature of
   :func:`protocol.boothauth.booth_auth_text`.

The nonce is spent when it is checked, so a recorded header never works twice (replay), and
only the holder of the private key can sign (the server keeps only the public key).

One server keeps its nonces in memory (:class:`NonceStore`). The nodes of a cluster cannot: a
booth's challenge and its login reach whichever node the load balancer picks. There a nonce is
signed with the server key all nodes share, so any node knows it issued it, for which booth and
until when, and a spent nonce is written to the shared database, so it is spent for every node
(:class:`SharedNonces`).
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protocol.boothauth import booth_auth_text
from server.signed import sign, unsign
from server.storage import Database, spend_nonce

log = logging.getLogger(__name__)

SCHEME = "signature"
NONCE_SECONDS = 60.0
#: Nonces held at most (the oldest go first): bounded memory under a flood of challenges.
MAX_NONCES = 10_000


@dataclass(frozen=True)
class SignedHeader:
    booth_id: str
    nonce: str
    signature: bytes


def parse_header(value: str) -> SignedHeader | None:
    """The parts of a ``Signature`` Authorization header; None if it is not one."""
    scheme, _, rest = value.partition(" ")
    if scheme.lower() != SCHEME:
        return None
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, eq, val = part.strip().partition("=")
        if not eq:
            return None
        fields[key] = val.strip('"')
    try:
        signature = base64.urlsafe_b64decode(fields["signature"] + "==")
        return SignedHeader(fields["booth"], fields["nonce"], signature)
    except (KeyError, ValueError, binascii.Error):
        return None


class Nonces(ABC):
    """Where the challenges a server hands out are known, and spent; ``clock`` gives seconds."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._now = clock

    @abstractmethod
    def issue(self, booth_id: str) -> str:
        """A new nonce for ``booth_id``, good once within NONCE_SECONDS."""

    @abstractmethod
    async def spend(self, nonce: str, booth_id: str) -> bool:
        """True once for a nonce issued to ``booth_id`` and not expired; never again after."""


class NonceStore(Nonces):
    """The challenges handed out and not yet used, in memory (one server)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self._nonces: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def issue(self, booth_id: str) -> str:
        nonce = secrets.token_urlsafe(24)
        while len(self._nonces) >= MAX_NONCES:
            self._nonces.popitem(last=False)
        self._nonces[nonce] = (booth_id, self._now() + NONCE_SECONDS)
        return nonce

    async def spend(self, nonce: str, booth_id: str) -> bool:
        entry = self._nonces.pop(nonce, None)
        return entry is not None and entry[0] == booth_id and entry[1] > self._now()


#: The signed nonces' purpose (see :mod:`server.signed`).
_NONCE = "n1"


class SharedNonces(Nonces):
    """Nonces any node of a cluster can check: signed with the shared server key, spent in the
    shared database."""

    def __init__(self, key: bytes, db: Database, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)  # wall-clock seconds: a nonce's expiry travels between nodes
        self._key = key
        self._db = db

    def issue(self, booth_id: str) -> str:
        record = {
            "b": booth_id,
            "e": round(self._now() + NONCE_SECONDS),
            "r": secrets.token_urlsafe(12),
        }
        return sign(self._key, _NONCE, record)

    async def spend(self, nonce: str, booth_id: str) -> bool:
        record = unsign(self._key, _NONCE, nonce) if len(nonce) <= 256 else None
        if not isinstance(record, dict) or record.get("b") != booth_id:
            return False
        expires = record.get("e")
        if not isinstance(expires, int) or expires <= self._now():
            return False
        # Spent for every node: the second time, the row is there already.
        return await spend_nonce(self._db, nonce, expires_at=datetime.fromtimestamp(expires, UTC))


def verify(public_key_hex: str, header: SignedHeader) -> bool:
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
        key.verify(header.signature, booth_auth_text(header.booth_id, header.nonce))
    except (InvalidSignature, ValueError):
        return False
    return True
