"""A node's part in the cluster's calls, put together: started and stopped with the server,
the link the switchboard is given (:class:`~server.switchboard.ClusterLink`)."""

from __future__ import annotations

import contextlib
import json
import logging
import time

from server.cluster.bus import Message as BusMessage
from server.cluster.bus import StateChange
from server.cluster.calls.member import Members
from server.cluster.calls.owner import Owner
from server.cluster.calls.queue import Queue
from server.cluster.calls.stores import SharedInvitations
from server.cluster.calls.takeover import TakeOver
from server.cluster.calls.wire import CONNECTIONS_SUBJECT
from server.cluster.errors import BusError

log = logging.getLogger(__name__)

__all__ = ["SharedCalls"]


class SharedCalls(Owner, Members, TakeOver, Queue):
    """This node's part in the cluster's calls (see the package's documentation)."""

    async def start(self) -> None:
        self._writes.start()
        self._sends.start()
        self._surely.start()
        self._sessions.link = self
        self._here.link = self
        if isinstance(self._sb.invitations, SharedInvitations):
            self._sb.invitations.link = self
        self._sb.join_cluster(self)
        self._queue_subscription = await self._bus.subscribe("vb.queue.>", self._heard_queue)
        self._connections_subscription = await self._bus.subscribe(
            CONNECTIONS_SUBJECT, self._heard_connections
        )
        self._bus.on_state(self._bus_changed)
        self._membership.on_gone = self.node_gone
        # Calls this node carried before it restarted are its own to carry on.
        await self._adopt(self.node)
        await self._reload()
        self._spawn(self._watch(), "watch the owners of calls")

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for line in (self._writes, self._sends, self._surely):
            await line.stop()
        for subscription in (
            *self._call_subscriptions.values(),
            *self._participant_subscriptions.values(),
        ):
            with contextlib.suppress(BusError):
                await subscription.unsubscribe()
        for own in (self._queue_subscription, self._connections_subscription):
            if own is not None:
                with contextlib.suppress(BusError):
                    await own.unsubscribe()

    def tell_others(self, action: str, args: dict[str, str | None]) -> None:
        self.send(CONNECTIONS_SUBJECT, {"node": self.node, "do": action, "args": args})

    async def _heard_connections(self, message: BusMessage) -> None:
        try:
            data = json.loads(message.payload)
            if data["node"] == self.node:
                return
            self._sb.from_other_node(str(data["do"]), dict(data["args"]))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("a connection action that is not one (%s); ignored", exc)

    def _bus_changed(self, change: StateChange) -> None:
        if change.reconnected:
            self._spawn(self._after_reconnect(), "reload the waiting calls")

    async def _after_reconnect(self) -> None:
        self._listening_since = time.monotonic()
        await self._let_go_of_taken()
        await self._reload()
        self._sb.room.republish()
