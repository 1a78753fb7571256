"""The PostgreSQL connection pools without a ping before every use: SQLAlchemy's and the
driver's of the hot statements (server/storage/driver.py). A connection the server closed is
never handed out, one unused for a while is tried first, and the hot paths' single statements
commit on their own (``Database.statements``). The driver's pool keeps a connection after a
broken rule, closes one that failed otherwise or was cancelled mid-statement, and raises
SQLAlchemy's exceptions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.exc import IntegrityError, OperationalError

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


async def _write(db: Database, session_id: str) -> None:
    """A call's ending through SQLAlchemy's pool (record_call_ending takes the driver's)."""
    with contextlib.suppress(IntegrityError):  # known already
        async with db.statements() as conn:
            await conn.execute(
                insert(CallEnding).values(session_id=session_id, participant_id="", at=db.now())
            )


async def _driver_pids(db: Database, count: int) -> set[int]:
    """The server processes of ``count`` of the driver pool's connections (used at once)."""
    assert db.driver is not None
    pids: set[int] = set()

    async def one() -> None:
        assert db.driver is not None
        async with db.driver.connection("pid") as conn:
            pids.add(await conn.fetchval("SELECT pg_backend_pid()"))
            await asyncio.sleep(0.2)

    await asyncio.gather(*(one() for _ in range(count)))
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
        await _write(pg, "after-the-restart")
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
    await _write(pg, "first")
    await _write(pg, "in steady use")
    assert pings == []
    await asyncio.sleep(0.3)
    await _write(pg, "after a pause")
    assert len(pings) == 1
    await _write(pg, "in steady use again")
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


async def test_the_drivers_connections_the_server_closed_are_not_handed_out(pg: Database) -> None:
    pids = await _driver_pids(pg, 3)
    assert len(pids) == 3
    await _terminate(pg, pids)
    for _ in range(5):  # at once, without a failed statement first
        await record_call_ending(pg, "after-the-restart")
    async with pg.session() as session:
        assert await session.scalar(select(func.count()).select_from(CallEnding)) == 1
    assert not (await _driver_pids(pg, 1)) & pids


async def test_the_driver_keeps_a_connection_after_a_broken_rule_only(pg: Database) -> None:
    assert pg.driver is not None
    insert_twice = (
        "INSERT INTO call_endings (session_id, participant_id, at) VALUES ($1, '', now())"
    )
    (pid,) = await _driver_pids(pg, 1)
    async with pg.driver.connection("first") as conn:
        await conn.execute(insert_twice, "s1")
    with pytest.raises(IntegrityError):
        async with pg.driver.connection("the same again") as conn:
            await conn.execute(insert_twice, "s1")
    assert await _driver_pids(pg, 1) == {pid}  # kept
    with pytest.raises(OperationalError, match="a misspelt statement"):
        async with pg.driver.connection("a misspelt statement") as conn:
            await conn.execute("SELEKT 1")
    assert await _driver_pids(pg, 1) != {pid}  # closed, another one opened


async def test_a_statement_cancelled_midway_does_not_leave_its_connection(pg: Database) -> None:
    assert pg.driver is not None
    (pid,) = await _driver_pids(pg, 1)

    async def sleep_there() -> None:
        assert pg.driver is not None
        async with pg.driver.connection("sleep") as conn:
            await conn.execute("SELECT pg_sleep(10)")

    task = asyncio.create_task(sleep_there())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The next statement gets a fresh connection at once, not one busy with the sleep.
    started = asyncio.get_running_loop().time()
    assert await _driver_pids(pg, 1) != {pid}
    assert asyncio.get_running_loop().time() - started < 5


async def test_a_closed_database_refuses_the_drivers_statements(postgres_server: str) -> None:
    url = await create_database(postgres_server, migrated=True)
    try:
        db = await Database.open(url, migrate=False)
        await record_call_ending(db, "before")
        await db.close()
        with pytest.raises(OperationalError, match="closed"):
            await record_call_ending(db, "after")
    finally:
        await drop_database(url)
