"""Which server nodes are alive: each node says so on the bus every second and listens to the
others, so a node that stops (kill -9, a lost network) is noticed by the rest within
:data:`GONE_AFTER` seconds.

Subjects ``vb.node.<node id>``; the payload names the node and when it started (a node that
restarts under the same name is a new life of it). This is what the survivors act on when a
node dies: its clients come back through the load balancer and resume on another node.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable

from server.cluster.bus import (
    PREFIX,
    Bus,
    BusState,
    Message,
    StateChange,
    Subscription,
    check_id,
)
from server.cluster.errors import BusError

log = logging.getLogger(__name__)

#: How often a node says it is alive, and how long the others wait before calling it gone.
HEARTBEAT_SECONDS = 1.0
GONE_AFTER = 3.0


def node_subject(node_id: str) -> str:
    """A node's heartbeats."""
    return f"{PREFIX}.node.{check_id(node_id)}"


class Membership:
    """This node's heartbeat and its view of the others (itself included)."""

    def __init__(
        self,
        bus: Bus,
        node_id: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_gone: Callable[[str], None] | None = None,
    ) -> None:
        self.node_id = check_id(node_id)
        self._bus = bus
        self._clock = clock
        #: Told the id of each node found gone (a node of the cluster's calls sets it).
        self.on_gone = on_gone
        self._started = time.time()
        #: Node id -> (when it was last heard, monotonic; when that life of it started).
        self._seen: dict[str, tuple[float, float]] = {}
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    def alive(self) -> list[str]:
        """The nodes heard from within GONE_AFTER seconds, by name."""
        return sorted(self._seen)

    async def start(self) -> None:
        self._bus.on_state(self._bus_changed)
        self._subscription = await self._bus.subscribe(f"{PREFIX}.node.*", self._heard)
        self._task = asyncio.get_running_loop().create_task(self._beat(), name="heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._subscription is not None:
            await self._subscription.unsubscribe()

    async def _beat(self) -> None:
        payload = json.dumps({"node": self.node_id, "started": self._started}).encode()
        while True:
            if self._bus.state is BusState.CONNECTED:
                try:
                    await self._bus.publish(node_subject(self.node_id), payload)
                except BusError as exc:  # the bus says why; the next beat tries again
                    log.debug("heartbeat not sent: %s", exc)
            self.check()
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def _heard(self, message: Message) -> None:
        try:
            data = json.loads(message.payload)
            node, started = check_id(str(data["node"])), float(data["started"])
        except (ValueError, KeyError, TypeError):
            log.warning("a heartbeat that is not one on %s; ignored", message.subject)
            return None
        known = self._seen.get(node)
        if known is None:
            log.info("node %s joined (%d alive)", node, len(self._seen) + 1)
        elif known[1] != started:
            log.info("node %s started again", node)
        self._seen[node] = (self._clock(), started)
        return None

    def _bus_changed(self, change: StateChange) -> None:
        if change.reconnected:  # nobody was heard meanwhile: give everyone time to be again
            now = self._clock()
            self._seen = {node: (now, started) for node, (_, started) in self._seen.items()}

    def check(self) -> None:
        """Forget the nodes not heard from within GONE_AFTER seconds, telling ``on_gone``.
        While this node's own bus is down it hears nobody, and concludes nothing."""
        if self._bus.state is not BusState.CONNECTED:
            return
        now = self._clock()
        for node, (heard, _) in list(self._seen.items()):
            if node != self.node_id and now - heard > GONE_AFTER:
                del self._seen[node]
                log.warning(
                    "node %s silent for %.1f s: gone (%d alive)", node, now - heard, len(self._seen)
                )
                if self.on_gone is not None:
                    self.on_gone(node)
