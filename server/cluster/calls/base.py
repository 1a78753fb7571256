"""The ground the parts of a node's share in the cluster's calls stand on (see the package's
documentation)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Collection
from dataclasses import dataclass
from typing import Any

from server.cluster.bus import Bus, Subscription, call_subject
from server.cluster.calls.line import Line
from server.cluster.calls.stores import RemoteTransport, SharedParticipants, SharedSessions
from server.cluster.calls.wire import ASK_SECONDS, member_of
from server.cluster.errors import BusError
from server.cluster.membership import Membership
from server.signalling import CallSession, Entitlement, Participant, SessionState
from server.storage import Database, LiveMember, LiveRecord
from server.switchboard import Switchboard

log = logging.getLogger(__name__)

__all__ = ["Figures", "NodeBase"]


@dataclass
class Figures:
    """What this node's part in the cluster's calls did since it started (``/metrics``)."""

    #: Messages of participants connected here passed on to their calls' owners.
    forwarded: int = 0
    #: Messages of calls' owners handed to participants connected here.
    delivered: int = 0
    #: Accepts made here that won the caller, and that another advisor had won first.
    accepts_won: int = 0
    accepts_lost: int = 0
    #: Calls this node took over from a node that died (or from itself before a restart).
    taken_over: int = 0
    #: Participants connected here that took up a call another node carries.
    resumed_elsewhere: int = 0


class NodeBase:
    """What the parts of a node's share in the cluster's calls have in common: the
    switchboard, the bus, the database, the lines, the subscriptions, sending and asking."""

    def __init__(
        self,
        *,
        switchboard: Switchboard,
        bus: Bus,
        db: Database,
        membership: Membership,
    ) -> None:
        if not isinstance(switchboard.sessions, SharedSessions) or not isinstance(
            switchboard.connections, SharedParticipants
        ):
            raise TypeError("a node of a cluster keeps its calls in SharedSessions")
        self._sb = switchboard
        self._sessions: SharedSessions = switchboard.sessions
        self._here: SharedParticipants = switchboard.connections
        self._bus = bus
        self._db = db
        self._membership = membership
        self.node = membership.node_id
        #: The waiting calls other nodes carry, by id (what this node's advisors see of them).
        self._others: dict[str, CallSession] = {}
        #: The queue subject each of this node's published waiting calls went to.
        self._queue_subjects: dict[str, str] = {}
        self._call_subscriptions: dict[str, Subscription] = {}
        self._participant_subscriptions: dict[str, Subscription] = {}
        self._queue_subscription: Subscription | None = None
        self._connections_subscription: Subscription | None = None
        self._writes = Line("cluster-writes")
        self._sends = Line("cluster-sends")
        #: Messages that must not be lost, passed on one at a time as requests.
        self._surely = Line("cluster-surely")
        self._tasks: set[asyncio.Task[None]] = set()
        self.figures = Figures()
        #: Since when this node hears the others (monotonic; again after its bus was away).
        self._listening_since = time.monotonic()

    def _spawn(self, work: Awaitable[None], name: str) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("%s failed", name)

        task = asyncio.get_running_loop().create_task(run(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def send(self, subject: str, data: dict[str, Any]) -> None:
        """Publish ``data`` on ``subject``, after what this node sent before it."""
        payload = json.dumps(data, separators=(",", ":")).encode()

        async def publish() -> None:
            try:
                await self._bus.publish(subject, payload)
            except BusError as exc:
                log.warning("not sent on %s: %s", subject, exc)

        self._sends.put(publish, f"send on {subject}")

    async def _ask(self, session_id: str, data: dict[str, Any]) -> dict[str, Any]:
        """A request to the owner of ``session_id``; its answer (BusError when none)."""
        await self._sends.settled()  # what this node sent before goes first
        payload = json.dumps(data, separators=(",", ":")).encode()
        answer = await self._bus.request(call_subject(session_id), payload, timeout=ASK_SECONDS)
        reply: dict[str, Any] = json.loads(answer)
        return reply

    def _where(self, participant: Participant) -> LiveMember:
        return LiveMember(member=member_of(participant), node=participant.node or self.node)

    def _record(self, session: CallSession) -> LiveRecord:
        return LiveRecord(
            session_id=session.id,
            state="active" if session.state is SessionState.ACTIVE else "waiting",
            owner=self.node,
            caller=self._where(session.caller),
            advisor=None if session.advisor is None else self._where(session.advisor),
            guests=tuple(self._where(g) for g in session.guests),
            appointment_id=session.appointment_id,
            advisor_id=session.advisor_id,
            topic_id=session.topic_id,
            topic_name=session.topic_name,
            region=session.region,
            waiting_since=session.waiting_since,
        )

    def _proxy(
        self,
        where: LiveMember,
        session_id: str | None,
        topics: Collection[str] = (),
        invited_to: str | None = None,
    ) -> Participant:
        member = where.member
        return Participant(
            role=member.role,
            principal_id=member.principal_id,
            name=member.name,
            transport=RemoteTransport(self, member.participant_id),
            entitlement=Entitlement(topics=frozenset(topics), invited_to=invited_to),
            participant_id=member.participant_id,
            session_id=session_id,
            node=where.node,
        )

    def unreachable(self, participant_id: str) -> None:
        subscription = self._participant_subscriptions.pop(participant_id, None)
        if subscription is not None:
            self._spawn(subscription.unsubscribe(), f"unsubscribe {participant_id[:8]}")

    def _take_over(self, record: LiveRecord) -> None:
        """Carry on a call whose owner died (:class:`~.takeover.TakeOver`)."""
        raise NotImplementedError
