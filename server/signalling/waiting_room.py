"""The waiting room: the calls waiting for an advisor, as the advisors and the waiting see it.

Advisors get the waiting calls they may take (:func:`visible_to`): the whole list when they
connect (``queue``), then only what changed (``queue_changed``: calls that joined or changed,
calls that left), so an update costs the same whether one or five hundred calls wait. Walk-ins
get their place in their queue (topic and region) and an estimate of their wait. A burst of
changes is one update: at most one every :data:`QUEUE_UPDATE_SECONDS`, carrying all of them.
The room also keeps the running estimate of a walk-in's wait and the limits on citizens asking
for an advisor now from their browsers (in all, and per address).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Protocol

from protocol import (
    ErrorCode,
    ProtocolError,
    Queue,
    QueueChanged,
    QueuePosition,
    Role,
    WaitingCall,
    encode,
)
from server.signalling.clock import Clock, Timer
from server.signalling.participants import Participant, ParticipantStore
from server.signalling.sessions import CallSession, SessionState, SessionStore

log = logging.getLogger(__name__)

#: Queue updates to advisors (and places to those waiting) go out at most this often.
QUEUE_UPDATE_SECONDS = 0.2
#: Estimated wait per caller ahead before any call was accepted (seconds).
DEFAULT_WAIT_SECONDS = 180.0
#: Weight of the newest observed wait in the running estimate.
WAIT_SMOOTHING = 0.3


def visible_to(session: CallSession, advisor: Participant) -> bool:
    """An appointment's lobby is for its own advisor; a walk-in on a topic for the advisors
    who serve that topic (and those who serve any); a walk-in without a topic for all."""
    if session.advisor_id is not None:
        return session.advisor_id == advisor.principal_id
    topics = advisor.entitlement.topics
    return session.topic_id is None or not topics or session.topic_id in topics


def _facts(session: CallSession) -> tuple[object, ...]:
    """What an advisor's queue shows of a waiting call: it is described again when this
    changes, and only then."""
    caller = session.caller
    return (
        caller.principal_id,
        caller.name,
        caller.role,
        session.appointment_id,
        session.topic_id,
        session.topic_name,
        session.region,
        session.waiting_since,
    )


def _described(session: CallSession) -> WaitingCall:
    return WaitingCall(
        session_id=session.id,
        caller_id=session.caller.principal_id,
        caller_name=session.caller.name,
        caller_role=session.caller.role,
        appointment_id=session.appointment_id,
        topic_id=session.topic_id,
        topic_name=session.topic_name,
        region=session.region,
        waiting_since=session.waiting_since,
    )


class SharedQueue(Protocol):
    """In a cluster: the waiting calls the other nodes carry, and where this node's own
    changes go (:mod:`server.cluster.calls`)."""

    def others(self) -> Collection[CallSession]:
        """The waiting calls other nodes carry, as this node last heard of them."""
        ...

    def publish(self, upsert: list[CallSession], remove: list[str]) -> None:
        """Tell the other nodes which of this node's waiting calls joined or changed, and
        which left (accepted or ended)."""
        ...


class WaitingRoom:
    def __init__(
        self,
        *,
        sessions: SessionStore,
        participants: ParticipantStore,
        clock: Clock,
        walk_in_limit: int = 300,
        walk_ins_per_address: int = 3,
    ) -> None:
        self._sessions = sessions
        self._participants = participants
        self._clock = clock
        #: Citizens' browsers waiting for an advisor now, at most: in all and per address.
        self.walk_in_limit = walk_in_limit
        self.walk_ins_per_address = walk_ins_per_address
        #: Running estimate of how long one walk-in waits for an advisor (seconds).
        self.average_wait = DEFAULT_WAIT_SECONDS
        self._due: Timer | None = None
        self._sent_at = -QUEUE_UPDATE_SECONDS
        #: Per waiting walk-in session: whom its place was told, and what (told again on change).
        self._told: dict[str, tuple[Participant, tuple[int, int]]] = {}
        #: The waiting calls as the last update described them, by session id: what the next
        #: update is the change from. (An advisor who connected since got the whole list then;
        #: a change is harmless to apply twice.)
        self._shown: dict[str, tuple[CallSession, tuple[object, ...], WaitingCall]] = {}
        #: In a cluster: the other nodes' waiting calls, and the ids of this node's own as the
        #: other nodes were last told.
        self.shared: SharedQueue | None = None
        self._published: set[str] = set()

    def waiting(self) -> list[CallSession]:
        """Every waiting call, oldest first: this node's, and in a cluster the others' too."""
        own = self._sessions.waiting()
        if self.shared is None:
            return own
        others = self.shared.others()
        if not others:
            return own
        return sorted((*own, *others), key=lambda s: s.waiting_since)

    def queue_for(self, advisor: Participant) -> Queue:
        """The waiting calls ``advisor`` may take, oldest first."""
        return Queue(waiting=[_described(s) for s in self.waiting() if visible_to(s, advisor)])

    def changed(self) -> None:
        """The waiting calls changed: advisors (and those waiting) hear of it now, or, when an
        update went out less than QUEUE_UPDATE_SECONDS ago, in one update when that time is up."""
        if self._due is not None:
            return  # the update on its way will carry this change too
        wait = self._sent_at + QUEUE_UPDATE_SECONDS - self._clock.monotonic()
        if wait <= 0:
            self._send()
        else:
            self._due = self._clock.call_later(wait, self._send)

    def _send(self) -> None:
        self._due = None
        self._sent_at = self._clock.monotonic()
        now: dict[str, tuple[CallSession, tuple[object, ...], WaitingCall]] = {}
        waiting: list[tuple[CallSession, WaitingCall]] = []
        joined: list[tuple[CallSession, WaitingCall]] = []
        for session in self.waiting():
            facts = _facts(session)
            shown = self._shown.get(session.id)
            if shown is not None and shown[1] == facts:
                described = shown[2]
            else:
                described = _described(session)
                joined.append((session, described))
            now[session.id] = (session, facts, described)
            waiting.append((session, described))
        left = [s for session_id, (s, _, _) in self._shown.items() if session_id not in now]
        self._shown = now
        if joined or left:
            self._tell_advisors(joined, left)
        if self.shared is not None:
            self._publish(waiting, joined)
        self._tell_places([s for s, _ in waiting if s.is_walk_in])

    def _tell_advisors(
        self, joined: list[tuple[CallSession, WaitingCall]], left: list[CallSession]
    ) -> None:
        """Each advisor hears of the changes among the calls it may take, if any. Advisors
        mostly see the same selection: each distinct one is encoded once, not per advisor."""
        encoded: dict[tuple[tuple[str, ...], tuple[str, ...]], str | None] = {}
        for advisor in self._participants.with_role(Role.ADVISOR):
            upsert = [w for s, w in joined if visible_to(s, advisor)]
            remove = [s.id for s in left if visible_to(s, advisor)]
            key = (tuple(w.session_id for w in upsert), tuple(remove))
            if key not in encoded:
                change = QueueChanged(upsert=upsert, remove=remove)
                encoded[key] = encode(change) if upsert or remove else None
            if (text := encoded[key]) is not None:
                advisor.send_text(text)

    def _publish(
        self,
        waiting: list[tuple[CallSession, WaitingCall]],
        joined: list[tuple[CallSession, WaitingCall]],
    ) -> None:
        """The other nodes hear of this node's own waiting calls that joined, changed or left."""
        assert self.shared is not None
        own = {s.id for s, _ in waiting if s.owner is None}
        upsert = [s for s, _ in joined if s.owner is None]
        remove = sorted(self._published - own)
        self._published = own
        if upsert or remove:
            self.shared.publish(upsert, remove)

    def republish(self) -> None:
        """Tell the other nodes of every waiting call of this node again (after the bus was
        away, or this node took calls over)."""
        if self.shared is not None:
            own = [s for s in self._sessions.waiting() if s.owner is None]
            self._published = {s.id for s in own}
            self.shared.publish(own, [])

    def _tell_places(self, walk_ins: list[CallSession]) -> None:
        """Every waiting walk-in learns its place in its queue and an estimate, when either
        changed since it was told last."""
        places: dict[tuple[str | None, str | None], int] = {}
        told: dict[str, tuple[Participant, tuple[int, int]]] = {}
        for session in walk_ins:
            queue = (session.topic_id, session.region)
            place = places[queue] = places.get(queue, 0) + 1
            if session.owner is not None:
                continue  # another node's: it counts, its own node tells its caller
            now = told[session.id] = (session.caller, (place, round(place * self.average_wait)))
            if self._told.get(session.id) == now:
                continue  # nothing new for this one
            session.caller.send(
                QueuePosition(
                    session_id=session.id, position=now[1][0], estimated_wait_seconds=now[1][1]
                )
            )
        self._told = told

    def learn_wait(self, session: CallSession) -> None:
        """A walk-in was accepted: its wait moves the estimate."""
        waited = (self._clock.now() - session.waiting_since).total_seconds()
        self.average_wait += WAIT_SMOOTHING * (waited - self.average_wait)

    def check_room(self, citizen: Participant) -> None:
        """Refuse a citizen's browser asking for an advisor now when too many wait already, in
        all or from its address."""
        waiting = [
            s.caller
            for s in self._sessions.values()
            if s.state is SessionState.WAITING and s.caller.entitlement.walk_in
        ]
        if len(waiting) >= self.walk_in_limit:
            log.warning("walk-in queue full (%d waiting); refused %s", len(waiting), citizen)
            raise ProtocolError(
                ErrorCode.QUEUE_FULL,
                "too many people are waiting right now; please try again in a few minutes",
            )
        if sum(c.address == citizen.address for c in waiting) >= self.walk_ins_per_address:
            raise ProtocolError(
                ErrorCode.QUEUE_FULL,
                "too many people from your network are waiting already; "
                "please try again when one of them has been served",
            )

    def close(self) -> None:
        """Cancel an update on its way (server shutdown)."""
        if self._due is not None:
            self._due.cancel()
            self._due = None
