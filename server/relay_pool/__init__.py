"""The organisation's TURN relays as a pool: their health, probed in the background, decides
which relays the participants get (:mod:`server.turn` makes the credentials and the order).

``install`` gives an application its pool and the task that probes it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from server.config import TurnConfig
from server.relay_pool.errors import RelayPoolError, RelayProbeError
from server.relay_pool.fake import FakeProbe
from server.relay_pool.health import RelayHealth, RelayPool, RelayState
from server.relay_pool.probe import RelayProbe, TurnAllocateProbe, parse_relay_url, probe_target

__all__ = [
    "RELAY_POOL",
    "FakeProbe",
    "RelayHealth",
    "RelayPool",
    "RelayPoolError",
    "RelayProbe",
    "RelayProbeError",
    "RelayState",
    "TurnAllocateProbe",
    "install",
    "parse_relay_url",
    "probe_target",
]

RELAY_POOL = web.AppKey("relay_pool", RelayPool)


def install(
    app: web.Application, turn: TurnConfig | None, *, probe: RelayProbe | None = None
) -> RelayPool | None:
    """Give ``app`` the pool of ``turn``'s relays (None without relays) and probe it while the
    application runs (with aioice's TURN client unless ``probe`` is given)."""
    if turn is None:
        return None
    pool = RelayPool(turn, probe=probe or TurnAllocateProbe())
    app[RELAY_POOL] = pool

    async def probing(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(pool.run(), name="relay-probes")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(probing)
    return pool
