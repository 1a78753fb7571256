"""Sessions: one call each, from its wait for an advisor to its end, and who is in it.

A session's state changes in one place (:meth:`CallSession._set_state`, logged)::

    waiting ──an advisor accepts──► active ──hangup, lost, removed…──► ended
       └──────────────cancelled, caller gone──────────────────────────────┘

:class:`SessionStore` holds the sessions not ended: an in-memory dictionary here, something
shared by the nodes of a later cluster. The lookups below refuse alike a session that does
not exist and one that is someone else's, so nobody can probe for live session ids.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator, Mapping, ValuesView
from datetime import datetime
from enum import StrEnum

from protocol import Chat, ErrorCode, ProtocolError
from server.signalling.participants import Participant

log = logging.getLogger(__name__)

#: Chat kept for a call (for a participant who joins late); older lines fall off.
CHAT_HISTORY = 200


class SessionState(StrEnum):
    WAITING = "waiting"
    ACTIVE = "active"
    ENDED = "ended"


class CallSession:
    """One call: its caller, its advisor once accepted, and people invited by link."""

    def __init__(
        self,
        *,
        id: str,
        caller: Participant,
        waiting_since: datetime,
        advisor: Participant | None = None,
        appointment_id: str | None = None,
        advisor_id: str | None = None,
        topic_id: str | None = None,
        topic_name: str | None = None,
        region: str | None = None,
        state: SessionState = SessionState.WAITING,
        owner: str | None = None,
    ) -> None:
        self.id = id
        #: In a cluster, the node carrying a call this node only shows in its waiting room;
        #: None for a call carried here.
        self.owner = owner
        #: Who asked for the call: a booth (walk-in or appointment) or a citizen's browser.
        self.caller = caller
        self.advisor = advisor
        #: The appointment this call belongs to; only its advisor sees and admits it.
        self.appointment_id = appointment_id
        self.advisor_id = advisor_id
        self.topic_id = topic_id
        self.topic_name = topic_name
        self.region = region
        self.waiting_since = waiting_since
        #: The call's chat: in memory only, and gone with the session (data protection).
        self.chat: deque[Chat] = deque(maxlen=CHAT_HISTORY)
        #: People invited by link who were admitted (they join the mesh) or wait to be.
        self.guests: list[Participant] = []
        self.pending: list[Participant] = []
        self._state = state

    @property
    def state(self) -> SessionState:
        return self._state

    def _set_state(self, state: SessionState) -> None:
        old, self._state = self._state, state
        log.debug("session %s: %s -> %s", self.id, old, state)

    def start(self, advisor: Participant) -> None:
        """``advisor`` took the waiting call."""
        self.advisor = advisor
        self._set_state(SessionState.ACTIVE)

    def end(self) -> None:
        self.chat.clear()
        self._set_state(SessionState.ENDED)

    @property
    def is_walk_in(self) -> bool:
        """Asked for an advisor now (any who serves its topic), not for an appointment's."""
        return self.advisor_id is None

    def participants(self) -> list[Participant]:
        """Everyone in the call, in the order they joined."""
        return [p for p in (self.caller, self.advisor, *self.guests) if p is not None]

    def member(self, participant_id: str) -> Participant | None:
        return next((p for p in self.participants() if p.participant_id == participant_id), None)

    def replace(self, old: Participant, new: Participant) -> None:
        """``new`` takes the place of ``old`` (a resumed connection)."""
        if self.caller is old:
            self.caller = new
        elif self.advisor is old:
            self.advisor = new
        else:
            self.guests[self.guests.index(old)] = new


class SessionStore(Mapping[str, CallSession], ABC):
    """The sessions not ended, by id (read as a mapping)."""

    @abstractmethod
    def add(self, session: CallSession) -> None: ...

    @abstractmethod
    def remove(self, session_id: str) -> CallSession | None:
        """Take the session out; None if it is not here (ended already)."""

    def changed(self, session: CallSession) -> None:
        """Who is in ``session`` changed (accepted, joined, left, resumed): a store shared by
        the nodes of a cluster writes it down; one in memory has nothing to do."""

    def waiting(self) -> list[CallSession]:
        """The waiting sessions, oldest first."""
        return sorted(
            (s for s in self.values() if s.state is SessionState.WAITING),
            key=lambda s: s.waiting_since,
        )


class MemorySessions(SessionStore):
    def __init__(self) -> None:
        self._by_id: dict[str, CallSession] = {}

    def __getitem__(self, session_id: str) -> CallSession:
        return self._by_id[session_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def values(self) -> ValuesView[CallSession]:
        # The dictionary's own view: the mapping's generic one looks each item up by key.
        return self._by_id.values()

    def add(self, session: CallSession) -> None:
        self._by_id[session.id] = session

    def remove(self, session_id: str) -> CallSession | None:
        return self._by_id.pop(session_id, None)


def own_session(sessions: SessionStore, participant: Participant, session_id: str) -> CallSession:
    """The session ``participant`` is in (as caller, advisor or admitted guest)."""
    session = sessions.get(session_id)
    if session is None or participant not in session.participants():
        raise ProtocolError(
            ErrorCode.NOT_IN_SESSION, f"you are not a participant of session {session_id}"
        )
    return session


def active_session(
    sessions: SessionStore, participant: Participant, session_id: str
) -> CallSession:
    """The running call ``participant`` is in."""
    session = own_session(sessions, participant, session_id)
    if session.state is not SessionState.ACTIVE:
        raise ProtocolError(ErrorCode.SESSION_NOT_WAITING, "the call has not started yet")
    return session


def hosted_session(sessions: SessionStore, advisor: Participant, session_id: str) -> CallSession:
    """The call ``advisor`` is the advisor of."""
    session = sessions.get(session_id)
    if session is None or session.advisor is not advisor:
        raise ProtocolError(
            ErrorCode.NOT_IN_SESSION, f"you are not the advisor of session {session_id}"
        )
    return session


def pending_in(sessions: SessionStore, participant: Participant, session_id: str) -> bool:
    """Whether ``participant`` waits to be admitted to the call ``session_id``."""
    session = sessions.get(session_id)
    return session is not None and participant in session.pending
