"""What the outbox keeps of a message until it is sent (the mail with its addressee and join
link, a webhook's body), sealed with a key derived from the server key: AES-256-GCM, the row's
id as associated data. A copy of the database alone reads none of it, and a sealed payload
moved to another row does not open."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["SealError", "Sealer"]

_NONCE_BYTES = 12


class SealError(ValueError):
    """A sealed payload that does not open with this key for this row."""


class Sealer:
    def __init__(self, server_key: bytes, purpose: str) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(
            server_key
        )
        self._aead = AESGCM(key)

    def seal(self, data: bytes, row: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data, row.encode())

    def open(self, sealed: bytes, row: str) -> bytes:
        try:
            return self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], row.encode())
        except (InvalidTag, ValueError) as exc:
            raise SealError(f"the payload of {row} does not open with this server's key") from exc
