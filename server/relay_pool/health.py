"""The relays' health as the probes find it, and the loop that probes them.

Each relay is up until :attr:`~server.config.TurnConfig.down_after_failures` probes in a row
fail, then down until one succeeds. Every change is logged once, ``relay <name>: up -> down
(reason)``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from enum import StrEnum

from protocol import IceServer
from server.config import RelayConfig, TurnConfig
from server.relay_pool.errors import RelayProbeError
from server.relay_pool.probe import RelayProbe
from server.turn import ice_servers_for, turn_credential

log = logging.getLogger(__name__)

#: The longest a probe may take; a relay slower than this to allocate is as good as down.
PROBE_TIMEOUT_SECONDS = 3.0
#: How long a probe's credential is valid: it is used at once.
PROBE_CREDENTIAL_SECONDS = 60


class RelayState(StrEnum):
    UP = "up"
    DOWN = "down"


class RelayHealth:
    """One relay's state: down after ``down_after`` failed probes in a row, up after one
    success."""

    def __init__(self, name: str, *, down_after: int) -> None:
        self.name = name
        self.down_after = down_after
        #: Up until probes say otherwise: a server that just started hands out every relay.
        self.state = RelayState.UP
        #: Failed probes in a row, and why the last one failed.
        self.failures = 0
        self.reason: str | None = None

    def succeeded(self) -> None:
        self.failures, self.reason = 0, None
        self._enter(RelayState.UP, "an allocation succeeded")

    def failed(self, reason: str) -> None:
        self.failures += 1
        self.reason = reason
        if self.failures >= self.down_after:
            self._enter(RelayState.DOWN, reason)

    def _enter(self, state: RelayState, why: str) -> None:
        if state is self.state:
            return
        level = logging.WARNING if state is RelayState.DOWN else logging.INFO
        log.log(level, "relay %s: %s -> %s (%s)", self.name, self.state, state, why)
        self.state = state


class RelayPool:
    """The configured relays, their health, and the ICE servers a participant gets from
    them."""

    def __init__(
        self,
        turn: TurnConfig,
        *,
        probe: RelayProbe,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.turn = turn
        self._probe = probe
        self._clock = clock
        self._health = {
            relay.name: RelayHealth(relay.name, down_after=turn.down_after_failures)
            for relay in turn.pool
        }

    def health(self, name: str) -> RelayHealth:
        return self._health[name]

    def states(self) -> dict[str, RelayState]:
        """Each relay's state, in the order of the configuration."""
        return {name: health.state for name, health in self._health.items()}

    def down(self) -> frozenset[str]:
        return frozenset(n for n, h in self._health.items() if h.state is RelayState.DOWN)

    def ice_servers_for(self, label: str, *, spread_by: str) -> list[IceServer]:
        """:func:`server.turn.ice_servers_for` with the relays that are down left out."""
        return ice_servers_for(self.turn, label, spread_by=spread_by, down=self.down())

    async def probe_all(self) -> None:
        """Try every relay once, all at the same time, and note what happened."""
        timeout = min(PROBE_TIMEOUT_SECONDS, self.turn.probe_seconds)
        await asyncio.gather(*(self._probe_one(relay, timeout) for relay in self.turn.pool))

    async def _probe_one(self, relay: RelayConfig, seconds: float) -> None:
        username = f"{int(self._clock()) + PROBE_CREDENTIAL_SECONDS}:probe-{relay.name}"
        password = turn_credential(self.turn.secret, username)
        health = self._health[relay.name]
        try:
            async with asyncio.timeout(seconds):
                await self._probe.check(relay, username, password)
        except TimeoutError:
            health.failed(f"no allocation within {seconds:g} s")
        except RelayProbeError as exc:
            health.failed(str(exc))
        else:
            health.succeeded()

    async def run(self) -> None:
        """Probe every :attr:`~server.config.TurnConfig.probe_seconds` until cancelled."""
        while True:
            try:
                await self.probe_all()
            except Exception:
                # A bug in one round must not end the health checks; the next round tries.
                log.exception("probing the relays failed")
            await asyncio.sleep(self.turn.probe_seconds)
