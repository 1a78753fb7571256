"""Guest passes: what a citizen's browser holds after opening a valid link.

A pass is for one of three things: an appointment (it lasts until the appointment's join window
closes), a running call whose invitation link was opened (an interpreter), or asking for an
advisor now on the walk-in page. A pass is its own record, signed with the server's key: the
server keeps nothing per pass, so a flood of passes costs no memory, and a citizen's pass (and
with it the call) outlives a restart of the server.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from server.signed import sign, unsign

_PURPOSE = "g1"


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
    def __init__(self, key: bytes | None = None) -> None:
        #: The signing key; the server sets its own (server.key) when it starts.
        self.key = key or secrets.token_bytes(32)

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
        record = {
            "i": secrets.token_hex(16),
            "e": round(expires_at.timestamp()),
            "n": name,
            "ap": appointment_id,
            "ad": advisor_id,
            "inv": invited_to,
            "w": walk_in,
        }
        return sign(self.key, _PURPOSE, record)

    def lookup(self, token: str, now: datetime) -> GuestPass | None:
        """The pass ``token`` is, if this server signed it and it has not expired."""
        record: Any = unsign(self.key, _PURPOSE, token)
        if record is None:
            return None
        try:
            guest = GuestPass(
                id=str(record["i"]),
                expires_at=datetime.fromtimestamp(int(record["e"]), UTC),
                name=str(record["n"]),
                appointment_id=record["ap"],
                advisor_id=record["ad"],
                invited_to=record["inv"],
                walk_in=bool(record["w"]),
            )
        except (ValueError, KeyError, TypeError):  # pragma: no cover - we signed it
            return None
        return guest if guest.expires_at > now else None
