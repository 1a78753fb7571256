"""Guest passes: what a citizen's browser holds after opening a valid link.

A pass is for one of three things: an appointment (it lasts until the appointment's join window
closes), a running call whose invitation link was opened (an interpreter), or asking for an
advisor now on the walk-in page. Passes live in memory: they are short-lived, and a citizen
whose pass is lost opens the link again.
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
    expires_at: datetime
    name: str = "Citizen"
    appointment_id: str | None = None
    advisor_id: str | None = None
    #: The call an invitation link opened.
    invited_to: str | None = None
    walk_in: bool = False


class GuestPasses:
    def __init__(self) -> None:
        # Keyed by the token's hash, so a memory dump does not hand out usable cookies.
        self._passes: dict[str, GuestPass] = {}

    def issue(
        self,
        *,
        expires_at: datetime,
        name: str = "Citizen",
        appointment_id: str | None = None,
        advisor_id: str | None = None,
        invited_to: str | None = None,
        walk_in: bool = False,
    ) -> str:
        """A new pass's cookie value; exactly one of appointment, invitation or walk-in."""
        kinds = (appointment_id is not None) + (invited_to is not None) + walk_in
        if kinds != 1 or (appointment_id is None) != (advisor_id is None):
            raise ValueError("a guest pass is for one appointment, invitation or walk-in")
        token = secrets.token_urlsafe(32)
        if len(self._passes) >= MAX_PASSES:
            self._passes.pop(next(iter(self._passes)))
        self._passes[_hash(token)] = GuestPass(
            id=secrets.token_hex(16),
            expires_at=expires_at,
            name=name,
            appointment_id=appointment_id,
            advisor_id=advisor_id,
            invited_to=invited_to,
            walk_in=walk_in,
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
