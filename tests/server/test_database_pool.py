"""The PostgreSQL connection pool without a ping before every use: a connection the server
closed is never handed out, one unused for a while is tried first, and the hot paths' single
statements commit on their own (``Database.statements``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection

from server.storage import Database, record_call_ending
from server.storage import database as database_module
from server.storage.models import CallEnding
from tests.server.postgres import create_database, drop_database

pytestmark = pytest.mark.usefixtures("postgres_server")


@pytest.fixture
async def pg(postgres_server: str) -> AsyncIterator[Database]:
    url = await create_database(postgres_server, migrated=True)
    db = await Database.open(url, migrate=False)
    yield db
    await db.close()
    await drop_database(url)


async def _backend_pids(db: Database) -> set[int]:
    """The server processes of the pool's connections (all of them, by using them at once)."""
    pids: set[int] = set()

    async def one() -> None:
        async with db.session() as session:
            pids.add(int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()))
            await asyncio.sleep(0.2)  # hold it, so the others take their own

    await asyncio.gather(*(one() for _ in range(3)))
    return pids


async def _terminate(db: Database, pids: set[int]) -> None:
    """What a PostgreSQL restart does to the pool: the server ends every connection."""
    url = db.engine.url.set(drivername="postgresql")
    admin = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        for pid in pids:
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    await asyncio.sleep(0.3)  # the pool's connections read the server's goodbye


async def test_connections_the_server_closed_are_not_handed_out(pg: Database) -> None:
    pids = await _backend_pids(pg)
    assert len(pids) == 3
    await _terminate(pg, pids)
    # Right away, without a failed statement first: every pooled connection was closed.
    for _ in range(5):
        await record_call_ending(pg, "after-the-restart")
    async with pg.session() as session:
        assert await session.scalar(select(func.count()).select_from(CallEnding)) == 1
        pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    assert pid not in pids


async def test_a_connection_unused_for_a_while_is_tried_first(
    pg: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings: list[object] = []
    real_ping = AsyncAdapt_asyncpg_connection.ping

    def ping(self: AsyncAdapt_asyncpg_connection) -> None:
        pings.append(self)
        real_ping(self)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "ping", ping)
    monkeypatch.setattr(database_module, "PING_AFTER_IDLE_SECONDS", 0.2)
    await record_call_ending(pg, "first")
    await record_call_ending(pg, "in steady use")
    assert pings == []
    await asyncio.sleep(0.3)
    await record_call_ending(pg, "after a pause")
    assert len(pings) == 1
    await record_call_ending(pg, "in steady use again")
    assert len(pings) == 1


async def test_single_statements_commit_on_their_own(pg: Database) -> None:
    """A statement of ``statements()`` is in the database before the connection goes back,
    and a failed one leaves the earlier ones in place."""
    async with pg.statements() as conn:
        await conn.execute(
            insert(CallEnding).values(session_id="s", participant_id="", at=pg.now())
        )
        async with pg.session() as other:
            assert await other.scalar(select(func.count()).select_from(CallEnding)) == 1
    await record_call_ending(pg, "s")  # the same again: known already, nothing raised
    async with pg.session() as session:
        assert await session.scalar(select(func.count()).select_from(CallEnding)) == 1
