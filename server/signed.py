"""Small records signed with the server's key, handed to clients and read back unchanged.

A record is ``<purpose>.<base64url JSON>.<base64url HMAC-SHA256>``: anyone can read it, only
this server (with ``server.key``) can make one, and it stays good across restarts. Used for
guest passes and resume tokens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any


def sign(key: bytes, purpose: str, record: dict[str, Any]) -> str:
    body = _b64(json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode())
    return f"{purpose}.{body}.{_b64(_mac(key, purpose, body))}"


def unsign(key: bytes, purpose: str, token: str) -> Any:
    """The record of a token this server signed for ``purpose``, or None."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != purpose:
        return None
    try:
        if not hmac.compare_digest(_unb64(parts[2]), _mac(key, purpose, parts[1])):
            return None
        return json.loads(_unb64(parts[1]))
    except ValueError:  # pragma: no cover - we signed it
        return None


def _mac(key: bytes, purpose: str, body: str) -> bytes:
    return hmac.new(key, f"{purpose}.{body}".encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64") from exc
