"""PostgreSQL's hot statements straight through the driver (asyncpg), for the few statements
every call set-up makes (a cluster's live calls, a live connection's login check, a call's
ending).

Through SQLAlchemy each of those cost about 420 µs of a node's CPU on the test machine: the
pool's checkout and return, the statement built, its cache key, compiled-form lookup and
result processing. Through a connection of this pool the same ``UPDATE`` costs about 60 µs
(measured with 2,000 statements each way on one PostgreSQL 15). At 100 call set-ups a second
that is a quarter of a core across the nodes. Everything else keeps going through SQLAlchemy.

A connection here runs single statements that commit on their own (no transaction is ever
left open on it), so it is handed on without a reset. One whose statement failed for a reason
other than a broken rule, or was cancelled mid-way, is closed rather than reused; one the
server closed (a restart) is never handed out, and one unused for a while is tried first, as
SQLAlchemy's pool does here (``database._on_checkout``). Failures come
out as SQLAlchemy's exceptions (``IntegrityError`` for a broken rule, ``OperationalError``
for everything else), so callers handle both paths alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from sqlalchemy.exc import IntegrityError, OperationalError

__all__ = ["DriverPool", "changed"]

log = logging.getLogger(__name__)

#: Connections a node keeps open here, beside SQLAlchemy's pool (database.POOL_SIZE): the hot
#: statements of one node are short, and more would only queue in PostgreSQL.
DRIVER_POOL_SIZE = 4
#: How long a new connection may take.
CONNECT_TIMEOUT_SECONDS = 5.0


class DriverPool:
    """A few asyncpg connections for single self-committing statements."""

    def __init__(
        self,
        connect_args: dict[str, Any],
        *,
        size: int = DRIVER_POOL_SIZE,
        ping_after: float = 2.0,
    ) -> None:
        self._connect_args = connect_args
        self._slots = asyncio.Semaphore(size)
        #: Idle connections, each with when it was given back (monotonic), newest last.
        self._idle: list[tuple[asyncpg.Connection, float]] = []
        self._ping_after = ping_after
        self._closed = False

    @contextlib.asynccontextmanager
    async def connection(self, what: str) -> AsyncIterator[asyncpg.Connection]:
        """A connection for one statement (``what`` names it in errors)."""
        if self._closed:
            raise OperationalError(what, None, RuntimeError("the database has been closed"))
        async with self._slots:
            conn = await self._take()
            try:
                if conn is None:
                    conn = await asyncpg.connect(
                        **self._connect_args, timeout=CONNECT_TIMEOUT_SECONDS
                    )
                yield conn
            except asyncpg.IntegrityConstraintViolationError as exc:
                self._give_back(conn)  # a broken rule: the connection is fine
                raise IntegrityError(what, None, exc) from exc
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                _discard(conn)
                raise OperationalError(what, None, exc) from exc
            except BaseException:
                _discard(conn)  # cancelled mid-statement: its state is unknown
                raise
            else:
                self._give_back(conn)

    async def _take(self) -> asyncpg.Connection | None:
        """An idle connection that works (tried first after a pause), or None."""
        while self._idle:
            conn, returned_at = self._idle.pop()
            if conn.is_closed():
                continue
            if time.monotonic() - returned_at < self._ping_after:
                return conn
            try:
                await conn.execute("SELECT 1")
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                log.info("a pooled connection no longer answers (%s); opening another", exc)
                _discard(conn)
                continue
            except BaseException:
                _discard(conn)
                raise
            return conn
        return None

    def _give_back(self, conn: asyncpg.Connection | None) -> None:
        if conn is None or conn.is_closed():
            return
        if self._closed:
            conn.terminate()
            return
        self._idle.append((conn, time.monotonic()))

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            try:
                await asyncio.wait_for(conn.close(), timeout=2.0)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
                conn.terminate()


def _discard(conn: asyncpg.Connection | None) -> None:
    if conn is not None and not conn.is_closed():
        conn.terminate()


def changed(status: str) -> int:
    """How many rows a statement changed, from the driver's status (``UPDATE 1``,
    ``INSERT 0 1``, ``DELETE 3``)."""
    return int(status.rsplit(" ", 1)[-1])
