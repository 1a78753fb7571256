"""Work that must leave a node in order (rows written before the queue message that makes
them known; one participant's messages in the order sent), done by one task each, tried again
while PostgreSQL is away."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from server.cluster.calls.wire import WRITE_BACKOFF, WRITE_TRIES

T = TypeVar("T")

log = logging.getLogger(__name__)

__all__ = ["Line", "with_retries"]


class Line:
    """Work that must leave this node in order, done by one task; each piece is tried again
    while PostgreSQL is away, and a failure is logged, never raised to whoever put it here."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: asyncio.Queue[tuple[Callable[[], Awaitable[None]], str]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def put(self, work: Callable[[], Awaitable[None]], what: str) -> None:
        self._queue.put_nowait((work, what))

    async def settled(self) -> None:
        """Wait until what was put here so far is done (not what comes later)."""
        done = asyncio.get_running_loop().create_future()

        async def mark() -> None:
            if not done.done():
                done.set_result(None)

        self.put(mark, "mark")
        await done

    async def _run(self) -> None:
        while True:
            work, what = await self._queue.get()
            try:
                await with_retries(work, what)
            except Exception:
                log.exception("%s: %s failed", self.name, what)
            finally:
                self._queue.task_done()


async def with_retries(work: Callable[[], Awaitable[T]], what: str) -> T:
    """``work()``, tried again while the database fails (not for a broken rule)."""
    delay = WRITE_BACKOFF[0]
    for attempt in range(1, WRITE_TRIES + 1):
        try:
            return await work()
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            if attempt == WRITE_TRIES:
                raise
            log.warning("%s: the database failed (%s); again in %.1f s", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, WRITE_BACKOFF[1])
    raise AssertionError("unreachable")  # pragma: no cover
