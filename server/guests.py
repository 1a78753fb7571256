"""Guest passes: what a citizen's browser holds after opening a valid appointment link.

A pass names one appointment and lasts until that appointment's join window closes. Passes
live in memory: they are short-lived, and a citizen whose pass is lost opens the link again.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

#: Passes held at most; beyond that the oldest goes (bounded memory under a flood).
MAX_PASSES = 20_000


@dataclass(frozen=True)
class GuestPass:
    id: str
    appointment_id: str
    advisor_id: str
    expires_at: datetime


class GuestPasses:
    def __init__(self) -> None:
        # Keyed by the token's hash, so a memory dump does not hand out usable cookies.
        self._passes: dict[str, GuestPass] = {}

    def issue(self, *, appointment_id: str, advisor_id: str, expires_at: datetime) -> str:
        token = secrets.token_urlsafe(32)
        if len(self._passes) >= MAX_PASSES:
            self._passes.pop(next(iter(self._passes)))
        self._passes[_hash(token)] = GuestPass(
            id=secrets.token_hex(16),
            appointment_id=appointment_id,
            advisor_id=advisor_id,
            expires_at=expires_at,
        )
        return token

    def lookup(self, token: str, now: datetime) -> GuestPass | None:
        key = _hash(token)
        guest = self._passes.get(key)
        if guest is not None and guest.expires_at <= now:
            del self._passes[key]
            return None
        return guest


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
