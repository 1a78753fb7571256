"""The waiting room across nodes: each owner publishes its waiting calls that joined, changed or
left on ``vb.queue.<queue>``; every node keeps the others' (reloaded from PostgreSQL at the
start and after its bus was away), so its advisors see every caller and the walk-ins' places
count them all."""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from datetime import datetime
from typing import Any

from server.cluster.bus import Message as BusMessage
from server.cluster.calls.base import NodeBase
from server.cluster.calls.line import with_retries
from server.cluster.calls.wire import ANY_TOPIC, member_of, queue_of
from server.cluster.errors import BusError
from server.resume import Member
from server.signalling import CallSession, Participant
from server.storage import LiveRecord, waiting_live_calls

log = logging.getLogger(__name__)

__all__ = ["Queue"]


class Queue(NodeBase):
    """The other nodes' waiting calls as this node shows them, and this node's told to them."""

    def others(self) -> Collection[CallSession]:
        return self._others.values()

    def publish(self, upsert: list[CallSession], remove: list[str]) -> None:
        by_queue: dict[str, tuple[list[dict[str, Any]], list[str]]] = {}
        for session in upsert:
            subject = self._queue_subjects[session.id] = f"vb.queue.{queue_of(session)}"
            by_queue.setdefault(subject, ([], []))[0].append(_entry(session))
        for session_id in remove:
            subject = self._queue_subjects.pop(session_id, f"vb.queue.{ANY_TOPIC}")
            by_queue.setdefault(subject, ([], []))[1].append(session_id)
        for subject, (entries, removed) in by_queue.items():
            payload = json.dumps(
                {"owner": self.node, "upsert": entries, "remove": removed}, separators=(",", ":")
            ).encode()

            async def publish(subject: str = subject, payload: bytes = payload) -> None:
                try:
                    await self._bus.publish(subject, payload)
                except BusError as exc:  # the others reload from PostgreSQL when it is back
                    log.warning("queue change not sent on %s: %s", subject, exc)

            self._writes.put(publish, f"queue change on {subject}")

    async def _heard_queue(self, message: BusMessage) -> None:
        try:
            data = json.loads(message.payload)
            owner = str(data["owner"])
            if owner == self.node:
                return
            upsert = [_replica(entry, owner) for entry in data["upsert"]]
            remove = [str(s) for s in data["remove"]]
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("a queue change on %s that is not one (%s); ignored", message.subject, exc)
            return
        for session in upsert:
            if session.id not in self._sessions:
                self._others[session.id] = session
        for session_id in remove:
            self._others.pop(session_id, None)
        self._sb.room.changed()

    async def _reload(self) -> None:
        """The other nodes' waiting calls as PostgreSQL has them (at the start, and after the
        bus was away: what was said meanwhile was not heard)."""
        records = await with_retries(lambda: waiting_live_calls(self._db), "reload")
        self._others = {
            r.session_id: _replica_of(r)
            for r in records
            if r.owner != self.node and r.session_id not in self._sessions
        }
        self._sb.room.changed()


def _entry(session: CallSession) -> dict[str, Any]:
    return {
        "s": session.id,
        "c": member_of(session.caller).to_json(),
        "ws": session.waiting_since.isoformat(),
        "ap": session.appointment_id,
        "ad": session.advisor_id,
        "t": [session.topic_id, session.topic_name],
        "r": session.region,
    }


def _waiting(
    session_id: str,
    caller: Member,
    owner: str,
    waiting_since: datetime,
    where: tuple[str | None, str | None, str | None, str | None, str | None],
) -> CallSession:
    """Another node's waiting call as this node shows it. ``where``: its appointment, that
    appointment's advisor, its topic's id and name, its region."""
    stand_in = Participant.stand_in(caller, session_id, 0.0)
    stand_in.node = owner
    appointment_id, advisor_id, topic_id, topic_name, region = where
    return CallSession(
        id=session_id,
        caller=stand_in,
        waiting_since=waiting_since,
        owner=owner,
        appointment_id=appointment_id,
        advisor_id=advisor_id,
        topic_id=topic_id,
        topic_name=topic_name,
        region=region,
    )


def _replica(entry: dict[str, Any], owner: str) -> CallSession:
    topic_id, topic_name = entry["t"]
    return _waiting(
        str(entry["s"]),
        Member.from_json(entry["c"]),
        owner,
        datetime.fromisoformat(str(entry["ws"])),
        (
            _text(entry["ap"]),
            _text(entry["ad"]),
            _text(topic_id),
            _text(topic_name),
            _text(entry["r"]),
        ),
    )


def _replica_of(record: LiveRecord) -> CallSession:
    return _waiting(
        record.session_id,
        record.caller.member,
        record.owner,
        record.waiting_since,
        (
            record.appointment_id,
            record.advisor_id,
            record.topic_id,
            record.topic_name,
            record.region,
        ),
    )


def _text(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError("expected text")
    return value
