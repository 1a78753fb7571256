"""Resume tokens: what lets a participant take its call up again after a lost connection.

Calls live in the switchboard's memory and their media never passes through the server, so a
restart of the server must not end them. Every participant therefore holds a token, signed
with the server's key (``server.key``, kept across restarts), that describes its place in the
call: the session, its own participant id, and the caller and advisor at the time. After a
lost connection the participant presents it (``resume``) on a new, authenticated connection;
the server puts it back in the call under its old participant id, or, when the server has
restarted meanwhile, rebuilds the call from the token and waits for the others to come back.

A token is only good for the principal it names (a booth, a user, a guest pass), so a stolen
token is no use without that principal's own credential. It holds names the participant saw
anyway, and no secret.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from protocol import Role
from server.signed import sign, unsign

#: How long a token can take its call up again at most (no consultation is longer).
TOKEN_SECONDS = 12 * 3600.0
_PURPOSE = "r1"


@dataclass(frozen=True)
class Member:
    """One participant as a token remembers it."""

    participant_id: str
    role: Role
    principal_id: str
    name: str

    def to_json(self) -> list[str]:
        return [self.participant_id, str(self.role), self.principal_id, self.name]

    @classmethod
    def from_json(cls, data: Any) -> Member:
        if not (
            isinstance(data, list) and len(data) == 4 and all(isinstance(x, str) for x in data)
        ):
            raise ValueError("a member is four strings")
        return cls(participant_id=data[0], role=Role(data[1]), principal_id=data[2], name=data[3])


@dataclass(frozen=True)
class ResumeClaim:
    """What a resume token says (and what the server needs to rebuild the call)."""

    session_id: str
    me: Member
    caller: Member
    advisor: Member | None
    active: bool
    waiting_since: datetime
    appointment_id: str | None = None
    advisor_id: str | None = None
    topic_id: str | None = None
    topic_name: str | None = None
    region: str | None = None
    expires_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "s": self.session_id,
            "me": self.me.to_json(),
            "c": self.caller.to_json(),
            "a": self.advisor.to_json() if self.advisor else None,
            "act": self.active,
            "ws": self.waiting_since.isoformat(),
            "ap": self.appointment_id,
            "ad": self.advisor_id,
            "t": [self.topic_id, self.topic_name],
            "r": self.region,
            "exp": self.expires_at,
        }

    @classmethod
    def from_json(cls, data: Any) -> ResumeClaim:
        if not isinstance(data, dict):
            raise ValueError("a claim is an object")
        topic = data["t"]
        if not (isinstance(topic, list) and len(topic) == 2):
            raise ValueError("bad topic")
        claim = cls(
            session_id=_text(data["s"]),
            me=Member.from_json(data["me"]),
            caller=Member.from_json(data["c"]),
            advisor=Member.from_json(data["a"]) if data["a"] is not None else None,
            active=bool(data["act"]),
            waiting_since=datetime.fromisoformat(_text(data["ws"])),
            appointment_id=_optional_text(data["ap"]),
            advisor_id=_optional_text(data["ad"]),
            topic_id=_optional_text(topic[0]),
            topic_name=_optional_text(topic[1]),
            region=_optional_text(data["r"]),
            expires_at=float(data["exp"]),
        )
        return claim


def issue(key: bytes, claim: ResumeClaim, *, now: float | None = None) -> str:
    """The token for ``claim``, valid for :data:`TOKEN_SECONDS`."""
    expires = (now if now is not None else time.time()) + TOKEN_SECONDS
    return sign(key, _PURPOSE, {**claim.to_json(), "exp": expires})


def verify(key: bytes, token: str, *, now: float | None = None) -> ResumeClaim | None:
    """The claim of a token this server signed and that has not expired, else None."""
    record = unsign(key, _PURPOSE, token)
    if record is None:
        return None
    try:
        claim = ResumeClaim.from_json(record)
    except (ValueError, KeyError, TypeError):  # pragma: no cover - we signed it
        return None
    if claim.expires_at <= (now if now is not None else time.time()):
        return None
    return claim


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected text")
    return value


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)
