"""A node dies: its participants in the calls carried here are away, and one survivor takes
its calls over (a conditional ``UPDATE`` of their rows) and carries them on. Also of a node
nobody heard at all, found every second; and after this node's own bus was away, it lets go of
what the others took over meanwhile."""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy.exc import SQLAlchemyError

from protocol import ParticipantAway
from server.cluster.bus import BusState
from server.cluster.calls.base import NodeBase
from server.cluster.calls.line import with_retries
from server.cluster.membership import GONE_AFTER, HEARTBEAT_SECONDS
from server.signalling import CallSession, MemorySessions, Participant, Presence, SessionState
from server.storage import (
    LiveMember,
    LiveRecord,
    adopt_live_calls,
    live_call_owners,
    live_calls_owned_by,
)

log = logging.getLogger(__name__)

__all__ = ["TakeOver"]


class TakeOver(NodeBase):
    """Carrying on the calls of a node that died, and letting go of those taken over while
    this node's bus was away."""

    def node_gone(self, node: str) -> None:
        """``node`` is silent: its participants in calls carried here are away, and its calls
        are taken over (one survivor gets each)."""
        self._members_gone({node})
        self._spawn(self._adopt(node), f"adopt the calls of {node}")

    def _members_gone(self, nodes: set[str]) -> None:
        """The participants connected through ``nodes`` lost their connections: the calls
        carried here wait for them to resume (on another node)."""
        for session in list(self._sessions.values()):
            for participant in (*session.participants(), *session.pending):
                if participant.node in nodes and participant.presence is Presence.CONNECTED:
                    log.info("%s: its node %s is gone", participant, participant.node)
                    self._sb.forwarded_lost(participant, resumable=True)

    async def _watch(self) -> None:
        """Every second, take over the calls of owners nobody hears: also of a node that died
        before this one ever heard it (it was killed right after it started, say)."""
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            if (
                self._bus.state is not BusState.CONNECTED
                or time.monotonic() - self._listening_since < GONE_AFTER
            ):
                continue  # not listening long enough to know who is silent
            alive = set(self._membership.alive())
            self._members_gone(
                {
                    p.node
                    for session in self._sessions.values()
                    for p in session.participants()
                    if p.node is not None and p.node not in alive
                }
            )
            try:
                owners = await live_call_owners(self._db)
            except SQLAlchemyError as exc:
                log.warning("owners of calls not read: %s", exc)
                continue
            for owner in sorted(owners - alive - {self.node}):
                log.warning("node %s carries calls and is not heard: taking them over", owner)
                await self._adopt(owner)

    async def _adopt(self, node: str) -> None:
        started = time.monotonic()
        records = await with_retries(
            lambda: adopt_live_calls(self._db, dead=node, me=self.node), f"adopt {node}"
        )
        for record in records:
            self._take_over(record)
        if records:
            self._sb.room.republish()
            self._sb.room.changed()
            took = time.monotonic() - started
            log.warning("took over %d call(s) of node %s in %.3f s", len(records), node, took)

    def _take_over(self, record: LiveRecord) -> None:
        """Carry on a call whose owner died (or this node before it restarted)."""
        if record.session_id in self._sessions:
            return
        alive, now = set(self._membership.alive()), self._sb.clock.monotonic()

        def member(where: LiveMember) -> Participant:
            if where.node == self.node:
                here = self._here.get(where.member.participant_id)
                if here is not None:
                    return here
            elif where.node in alive:
                return self._proxy(where, record.session_id)
            return Participant.stand_in(where.member, record.session_id, now)

        caller = member(record.caller)
        session = CallSession(
            id=record.session_id,
            caller=caller,
            advisor=None if record.advisor is None else member(record.advisor),
            appointment_id=record.appointment_id,
            advisor_id=record.advisor_id,
            topic_id=record.topic_id,
            topic_name=record.topic_name,
            region=record.region,
            state=SessionState.ACTIVE if record.state == "active" else SessionState.WAITING,
            waiting_since=record.waiting_since,
        )
        session.guests.extend(member(g) for g in record.guests)
        for participant in session.participants():
            participant.session_id = session.id
        self._others.pop(session.id, None)
        self._sessions.add(session)
        self.figures.taken_over += 1
        log.info("session %s: carried on here", session.id)
        if session.state is SessionState.ACTIVE:
            away = [p for p in session.participants() if p.presence is Presence.AWAY]
            for participant in session.participants():
                for gone in away:
                    if participant is not gone:
                        participant.send(
                            ParticipantAway(
                                session_id=session.id, participant_id=gone.participant_id
                            )
                        )

    async def _let_go_of_taken(self) -> None:
        """After this node's bus was away, the others may have taken its calls over (they
        heard nothing from it): a call whose row names another owner now is that owner's.
        This node lets go of it without ending it; its participants connected here are
        disconnected so that they resume with the new owner."""
        await self._writes.settled()  # the rows of the calls begun meanwhile are written
        mine = list(self._sessions.values())
        owned = await with_retries(lambda: live_calls_owned_by(self._db, self.node), "owned")
        for session in mine:
            if session.id in owned or self._sessions.get(session.id) is not session:
                continue
            log.warning("session %s: taken over by another node meanwhile; letting go", session.id)
            MemorySessions.remove(self._sessions, session.id)  # not closed: it goes on there
            subscription = self._call_subscriptions.pop(session.id, None)
            if subscription is not None:
                self._spawn(subscription.unsubscribe(), f"unsubscribe {session.id[:8]}")
            for participant in (*session.participants(), *session.pending):
                if participant.node is None and self._here.is_connected(participant):
                    participant.session_id = None
                    participant.close(1012, "the call moved to another server node")
