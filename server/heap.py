"""The garbage collector's settings for a server that holds thousands of connections.

CPython looks at its whole heap whenever the objects that survived its younger generations
have grown by a quarter since the last time. A node with 1,700 booths connected holds some
360,000 objects (about 200 a connection), and such a whole-heap collection stopped it for
350-700 ms on two shared cores, several times while the booths connected and about once a
minute under 100 call set-ups a second: those pauses were the API's p99 (measured with
``python -m bench.cluster`` and a callback timing every collection).

Nearly all of those objects live as long as their connection, for hours. So once the server
is up (:func:`settle`) what survives a whole-heap collection is moved out of the collector's
sight (``gc.freeze``): what the start built (modules, the schema, the protocol's models), and
each time again the connections that came since. A whole-heap collection then only looks at
what is newer than the last one, and takes milliseconds. A frozen object that later becomes
part of a garbage cycle (a connection that closed, say) is not freed until the frozen
objects are looked at again: every :data:`REFRESH_SECONDS` the heap is thawed, collected
once in full and frozen again, so such garbage lives at most that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

#: How often everything is collected once in full (the one long pause, in seconds).
REFRESH_SECONDS = 3600.0


def settle() -> None:
    """The server is up (in its event loop): freeze what it built to start, freeze again
    what survives each whole-heap collection, and look at everything once an hour."""
    gc.collect()
    gc.freeze()
    if _frozen_after_full not in gc.callbacks:
        gc.callbacks.append(_frozen_after_full)
    loop = asyncio.get_running_loop()
    loop.call_later(REFRESH_SECONDS, _refresh, loop)
    log.info("garbage collector: %d start-up objects frozen", gc.get_freeze_count())


def refresh() -> float:
    """Collect everything once (frozen objects too) and freeze the survivors; returns how
    long that took, in seconds."""
    started = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return time.perf_counter() - started


def _refresh(loop: asyncio.AbstractEventLoop) -> None:
    took = refresh()
    log.info(
        "garbage collector: all %d objects looked at in %.0f ms",
        gc.get_freeze_count(),
        took * 1000,
    )
    loop.call_later(REFRESH_SECONDS, _refresh, loop)


def _frozen_after_full(phase: str, info: dict[str, Any]) -> None:
    # Called by the collector itself: freezing is left to the event loop's next turn.
    if phase == "stop" and info["generation"] == 2:
        with contextlib.suppress(RuntimeError):  # no loop running: the server is stopping
            asyncio.get_running_loop().call_soon(gc.freeze)
