"""A stand-in for :class:`~server.relay_pool.probe.TurnAllocateProbe` in tests: every relay
allocates unless told to fail or to hang."""

from __future__ import annotations

import asyncio

from server.config import RelayConfig
from server.relay_pool.errors import RelayProbeError


class FakeProbe:
    def __init__(self) -> None:
        #: Relays that fail, with the reason they give.
        self.failing: dict[str, str] = {}
        #: Relays that never answer (the pool's timeout ends the probe).
        self.silent: set[str] = set()
        #: Every probe, in order: (relay name, username, password).
        self.tried: list[tuple[str, str, str]] = []
        self._tried_more = asyncio.Event()

    def fail(self, name: str, reason: str = "refused (401 Unauthorized)") -> None:
        self.failing[name] = reason

    def hang(self, name: str) -> None:
        self.silent.add(name)

    def heal(self, name: str) -> None:
        self.failing.pop(name, None)
        self.silent.discard(name)

    async def wait_for_tries(self, count: int) -> None:
        """Return once ``count`` probes were made in all."""
        while len(self.tried) < count:
            self._tried_more.clear()
            await self._tried_more.wait()

    async def check(self, relay: RelayConfig, username: str, password: str) -> None:
        self.tried.append((relay.name, username, password))
        self._tried_more.set()
        if relay.name in self.silent:
            await asyncio.Event().wait()
        if relay.name in self.failing:
            raise RelayProbeError(self.failing[relay.name])
