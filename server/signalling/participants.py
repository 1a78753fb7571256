"""Participants: one authenticated client each (a booth, an advisor's browser, a citizen's
page), what its credential lets it ask for, and whether it is connected or away from its call.

A participant's presence is a small state machine, changed in one place
(:meth:`Participant._set_presence`, which logs ``old -> new``)::

    connected ──lost while in a call that waits for it──► away ──► gone
        │                                                  (did not come back, gave up,
        └──────────────disconnected───────────────────────► gone   replaced by its resumed self)

While a participant is away, what is sent to it is held and handed to the connection that
resumes its place. :class:`ParticipantStore` is what the switchboard knows of the connected
ones: an in-memory dictionary here, something shared by the nodes of a later cluster.
"""

from __future__ import annotations

import logging
import secrets
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator, Mapping, ValuesView
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from protocol import BoothHealth, CommandResult, Message, Peer, Role, UpdateProgress, encode
from server.ratelimit import TokenBucket
from server.resume import Member
from server.signalling.transport import UNCONNECTED, Transport

log = logging.getLogger(__name__)

#: Chat lines one participant may send: a burst, then one every two seconds.
CHAT_BURST, CHAT_RATE = 5.0, 0.5
#: Messages kept for a participant while it is away, delivered when it resumes.
HELD_LIMIT = 256


def new_id() -> str:
    return secrets.token_hex(16)


class Presence(StrEnum):
    CONNECTED = "connected"
    #: Its connection is lost and its call waits for it to resume; messages to it are held.
    AWAY = "away"
    #: Disconnected for good, or replaced by the connection that resumed its place.
    GONE = "gone"


@dataclass(frozen=True, slots=True)
class Entitlement:
    """What a participant's credential lets it ask for; fixed for the connection.

    Each field belongs to one role; the others leave it at its default."""

    #: An advisor: the topics served (empty: every topic, as in a small office).
    topics: frozenset[str] = frozenset()
    #: A booth: its branch's region (walk-in queues are per topic and region).
    region: str | None = None
    #: A citizen: the appointment its guest pass is for, and that appointment's advisor ...
    appointment_id: str | None = None
    appointment_advisor: str | None = None
    #: ... or the call whose invitation link it opened (an interpreter, say) ...
    invited_to: str | None = None
    #: ... or asking for an advisor now (the walk-in web page).
    walk_in: bool = False


@dataclass(slots=True)
class LoginLease:
    """A person's login session, which its connections live by (renewed, never extended)."""

    id: str
    expires_at: datetime | None = None


@dataclass(slots=True)
class ClientStatus:
    """What the client last said about itself in a heartbeat (only a booth reports health)."""

    last_heartbeat: float = field(default_factory=time.monotonic)  # monotonic
    reported_state: str | None = None
    health: BoothHealth | None = None
    #: When this connection began (a booth that restarted has a newer one).
    connected_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(eq=False, slots=True)
class Participant:
    """One authenticated client, reached through its transport."""

    role: Role
    principal_id: str  # booth id, user id or guest pass id
    name: str
    transport: Transport
    entitlement: Entitlement = field(default_factory=Entitlement)
    #: For a person: the login session it was opened with.
    login: LoginLease | None = None
    #: The client's address (walk-ins from one address are limited).
    address: str | None = None
    participant_id: str = field(default_factory=new_id)
    session_id: str | None = None
    status: ClientStatus = field(default_factory=ClientStatus)
    chat_bucket: TokenBucket = field(
        default_factory=lambda: TokenBucket(rate=CHAT_RATE, burst=CHAT_BURST)
    )
    #: Whether it has sent anything yet (a booth that resumes does so first of all).
    spoke: bool = False
    #: Since when (monotonic) it is away; None unless its presence is AWAY.
    away_since: float | None = None
    #: What was sent to it while away; a resumed connection gets it first.
    held: deque[str] = field(default_factory=lambda: deque(maxlen=HELD_LIMIT))
    #: In a cluster, the node holding its connection when that is another node (the
    #: participant is known here because it is in a call this node carries); None: here.
    node: str | None = None
    _presence: Presence = field(default=Presence.CONNECTED, init=False, repr=False)

    @classmethod
    def stand_in(cls, member: Member, session_id: str, since: float) -> Participant:
        """A participant the call expects back (known from a resume token), not connected."""
        participant = cls(
            role=member.role,
            principal_id=member.principal_id,
            name=member.name,
            transport=UNCONNECTED,
            participant_id=member.participant_id,
            session_id=session_id,
        )
        participant._presence, participant.away_since = Presence.AWAY, since
        return participant

    @property
    def presence(self) -> Presence:
        return self._presence

    def _set_presence(self, presence: Presence, why: str) -> None:
        old, self._presence = self._presence, presence
        if old is not presence:
            log.info("%s: %s -> %s (%s)", self, old, presence, why)

    def lost(self, now: float) -> None:
        """Its connection is lost while its call waits for it."""
        self.away_since = now
        self._set_presence(Presence.AWAY, f"session {self.session_id} waits for it")

    def gone(self, why: str) -> None:
        self.away_since = None
        self._set_presence(Presence.GONE, why)

    def send(self, message: Message) -> None:
        """Queue ``message``; a client that stopped reading is disconnected, not waited for."""
        self.send_text(encode(message))

    def send_text(self, text: str) -> None:
        if self._presence is Presence.AWAY:
            self.held.append(text)
        elif not self.transport.send_text(text):
            log.warning("closing %s: it stopped reading", self)
            self.transport.close(1008, "outbox full")

    def close(self, code: int, reason: str) -> None:
        self.transport.close(code, reason)

    def take_held(self) -> list[str]:
        """What was held for it while away, in order (and forgotten here)."""
        held = list(self.held)
        self.held.clear()
        return held

    def peer(self) -> Peer:
        return Peer(participant_id=self.participant_id, role=self.role, name=self.name)

    def __str__(self) -> str:
        return f"{self.role} {self.name!r} ({self.participant_id[:8]})"


class FleetObserver(Protocol):
    """Told about booths coming, going and reporting (:mod:`server.fleet_health`); it must
    not block: whatever needs the database it runs beside the switchboard."""

    def booth_connected(self, booth: Participant) -> None: ...

    def booth_disconnected(self, booth: Participant) -> None: ...

    def booth_reported(self, booth: Participant) -> None: ...

    def command_result(self, booth: Participant, result: CommandResult) -> None: ...

    def update_progress(self, booth: Participant, progress: UpdateProgress) -> None: ...


class ParticipantStore(Mapping[str, Participant], ABC):
    """The connected participants by participant id (read as a mapping)."""

    @abstractmethod
    def add(self, participant: Participant) -> None:
        """Register ``participant`` under its participant id."""

    @abstractmethod
    def discard(self, participant: Participant) -> bool:
        """Unregister ``participant`` if it is the one registered under its id."""

    def is_connected(self, participant: Participant) -> bool:
        return self.get(participant.participant_id) is participant

    def with_role(self, role: Role) -> list[Participant]:
        return [p for p in self.values() if p.role is role]


class MemoryParticipants(ParticipantStore):
    def __init__(self) -> None:
        self._by_id: dict[str, Participant] = {}
        # Per role too: queue updates go to the advisors among thousands of booths.
        self._by_role: dict[Role, dict[str, Participant]] = {role: {} for role in Role}

    def __getitem__(self, participant_id: str) -> Participant:
        return self._by_id[participant_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def values(self) -> ValuesView[Participant]:
        # The dictionary's own view: the mapping's generic one looks each item up by key.
        return self._by_id.values()

    def with_role(self, role: Role) -> list[Participant]:
        return list(self._by_role[role].values())

    def add(self, participant: Participant) -> None:
        replaced = self._by_id.get(participant.participant_id)
        if replaced is not None:
            self._by_role[replaced.role].pop(participant.participant_id, None)
        self._by_id[participant.participant_id] = participant
        self._by_role[participant.role][participant.participant_id] = participant

    def discard(self, participant: Participant) -> bool:
        if self._by_id.get(participant.participant_id) is not participant:
            return False
        del self._by_id[participant.participant_id]
        del self._by_role[participant.role][participant.participant_id]
        return True
