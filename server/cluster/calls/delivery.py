"""What the owners of calls send to the participants connected here arrives on
``vb.participant.<id>`` (subscribed while the participant is in a call carried elsewhere) and
is handed to its connection; the node follows the participant's call from what it delivers."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable

from server.cluster.bus import Message as BusMessage
from server.cluster.bus import Subscription, participant_subject
from server.cluster.calls.base import NodeBase
from server.signalling import Participant

log = logging.getLogger(__name__)

__all__ = ["Delivery"]


class Delivery(NodeBase):
    """Handing what owners send to the participants connected here."""

    def reachable(self, conn: Participant) -> Awaitable[Subscription]:
        """Listen for what the owners of calls send to ``conn`` (connected here)."""
        participant_id = conn.participant_id

        async def deliver(message: BusMessage) -> None:
            self._deliver(participant_id, message.payload)

        return self._bus.subscribe(participant_subject(participant_id), deliver)

    async def _listen_for(self, conn: Participant) -> None:
        if conn.participant_id not in self._participant_subscriptions:
            subscription = await self.reachable(conn)
            self._participant_subscriptions[conn.participant_id] = subscription

    def _deliver(self, participant_id: str, payload: bytes) -> None:
        conn = self._here.get(participant_id)
        if conn is None:
            return  # gone meanwhile
        try:
            data = json.loads(payload)
        except ValueError:
            log.warning("a delivery for %s that is not one; ignored", conn)
            return
        if "close" in data:
            code, reason = data["close"]
            conn.session_id = None
            conn.close(int(code), str(reason))
            return
        text = str(data["text"])
        self._follow(conn, text)
        self.figures.delivered += 1
        conn.send_text(text)

    @staticmethod
    def _follow(conn: Participant, text: str) -> None:
        """Keep ``conn``'s call as its client learns it from what the call's owner sends."""
        try:
            message = json.loads(text)
            kind, session_id = message.get("type"), message.get("session_id")
        except (ValueError, AttributeError):
            return
        left = (kind == "hangup" and session_id == conn.session_id) or (
            kind == "participant_left" and message.get("participant_id") == conn.participant_id
        )
        if kind in ("call_waiting", "call_started", "resumed"):
            conn.session_id = session_id
        elif left:
            conn.session_id = None
