"""Opening the database: the async engine, Alembic migrations, and sessions.

SQLite (``sqlite+aiosqlite:///path/to/file.db``) is the embedded default; PostgreSQL
(``postgresql+asyncpg://...``) serves production and several server nodes. Opening a database
brings its schema up to date with the migrations shipped in this package.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, DisconnectionError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from .driver import DriverPool
from .errors import DatabaseError, InvalidValueError
from .models import utc_now

__all__ = [
    "MIGRATIONS_DIR",
    "Database",
    "alembic_config",
    "create_engine",
    "migrate",
    "open_database",
]

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
"""The Alembic script folder (``env.py``, ``versions/``)."""

# Any constant works; it only has to be the same on every node running migrations.
_MIGRATION_LOCK_ID = 0x5649_4442_4F4F_5448 & 0x7FFF_FFFF_FFFF_FFFF


def _parse_url(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError as exc:
        raise InvalidValueError(
            f"Not a database URL: {url!r}. Use sqlite+aiosqlite:///path/to/videobooth.db "
            "or postgresql+asyncpg://user:password@host/dbname."
        ) from exc


def _safe(url: URL) -> str:
    """The URL as text for messages and logs, without its password."""
    return url.render_as_string(hide_password=True)


def _sqlite_file(url: URL) -> Path | None:
    """The file of a file-based SQLite URL, or None for other databases and memory."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def _on_sqlite_connect(dbapi_connection: Any, connection_record: Any) -> None:
    # Take over BEGIN from the sqlite3 driver, which skips it for SELECT and DDL: without
    # this a failed migration would leave half a schema behind (see SQLAlchemy's "Transactions
    # with SQLite and the sqlite3 driver").
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        # WAL lets readers go on while one writer commits; the setting stays in the file.
        cursor.execute("PRAGMA journal_mode=WAL")
    finally:
        cursor.close()


def _on_sqlite_begin(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN")


#: PostgreSQL connections a server process keeps open, and how many more it opens for a burst
#: (closed again when returned). Several nodes share the server's ``max_connections`` (100 by
#: default): three nodes need at most 3 x 29 (with the driver's pool, driver.DRIVER_POOL_SIZE).
POOL_SIZE = 10
POOL_OVERFLOW = 15
#: A pooled PostgreSQL connection unused for this long is tried before it is handed out.
PING_AFTER_IDLE_SECONDS = 2.0


def _on_checkin(dbapi_connection: Any, connection_record: Any) -> None:
    connection_record.info["returned_at"] = time.monotonic()


def _on_checkout(dbapi_connection: Any, connection_record: Any, proxy: Any) -> None:
    """Hand out no connection PostgreSQL closed (a restart closes them all; the driver notices
    without a round trip), and try one that sat unused in the pool; the pool replaces either.

    A connection in steady use is not tried: SQLAlchemy's ``pool_pre_ping`` would cost three
    round trips (BEGIN, a statement, ROLLBACK) before every transaction, about a tenth of a
    loaded node's CPU. A connection whose network broke between two uses fails its statement
    instead, and the pool then replaces every connection older than the failure.
    """
    is_closed = getattr(connection_record.driver_connection, "is_closed", None)
    if is_closed is not None and is_closed():
        raise DisconnectionError("the database closed this connection")
    returned_at = connection_record.info.get("returned_at")
    if returned_at is None or time.monotonic() - returned_at < PING_AFTER_IDLE_SECONDS:
        return
    try:
        dbapi_connection.ping()
    except Exception as exc:
        raise DisconnectionError(f"a pooled connection no longer answers: {exc}") from exc


def create_engine(url: str) -> AsyncEngine:
    """Create the async engine for *url*, set up for this application.

    For SQLite this creates the file's parent folder, turns on foreign keys and WAL, and makes
    transactions (including DDL) real transactions. Raises :class:`InvalidValueError` for a
    malformed URL and :class:`DatabaseError` when the folder cannot be created or the driver is
    missing.
    """
    parsed = _parse_url(url)
    path = _sqlite_file(parsed)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(
                f"Cannot create the folder for the database file {str(path)!r}: "
                f"{exc.strerror or exc}."
            ) from exc
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = create_async_engine(parsed)
            event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
            event.listen(engine.sync_engine, "begin", _on_sqlite_begin)
        else:
            engine = create_async_engine(parsed, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW)
            event.listen(engine.sync_engine, "checkin", _on_checkin)
            event.listen(engine.sync_engine, "checkout", _on_checkout)
    except (ArgumentError, ImportError) as exc:
        raise DatabaseError(
            f"Cannot use the database {_safe(parsed)}: {exc}. Check the URL's driver "
            "(sqlite+aiosqlite or postgresql+asyncpg) and that it is installed."
        ) from exc
    return engine


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for this package's migrations, built in code (no .ini file).

    With *connection*, ``env.py`` runs the migrations on it and leaves committing to the
    caller.
    """
    cfg = Config()
    # Config values go through configparser interpolation, where "%" is special.
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _upgrade_on(connection: Connection, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        # Several server nodes may start at once; one migrates, the others wait and find
        # nothing left to do. The lock ends with the transaction.
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
    command.upgrade(alembic_config(connection), revision)


async def _upgrade(engine: AsyncEngine, revision: str) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade_on, revision)


async def migrate(url: str, revision: str = "head") -> None:
    """Bring the database at *url* up to *revision* (default: the newest), then close it.

    For the command line and for deployments that migrate before starting the server nodes.
    Raises :class:`DatabaseError` if the database cannot be reached or a migration fails.
    """
    engine = create_engine(url)
    try:
        await _upgrade(engine, revision)
    except SQLAlchemyError as exc:
        raise DatabaseError(
            f"Cannot migrate the database {_safe(engine.url)}: {_reason(exc)}"
        ) from exc
    finally:
        await engine.dispose()
    logger.info("Database %s is at revision %s", _safe(engine.url), revision)


def _reason(exc: SQLAlchemyError) -> str:
    # The first line of the driver's message, without SQLAlchemy's statement dump and links.
    original = getattr(exc, "orig", None)
    return str(original if original is not None else exc).splitlines()[0]


class Database:
    """The server's database: an async engine and a session factory.

    Open it with :meth:`open`; use :meth:`session` for queries, or the functions of
    :mod:`server.storage` (one module per thing stored); call :meth:`close` at shutdown.

    *clock* returns the current time in UTC; the stores read it for every timestamp and
    expiry check, so tests can pass a clock they move by hand.

    On SQLite every session is a real transaction. One that reads and then writes fails at
    once with "database is locked" if another writer committed in between; one that starts
    with its write waits for the lock. So write first, or read and write in separate sessions.
    """

    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._autocommit = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if engine.dialect.name == "postgresql"
            else None
        )
        self._reads = (
            async_sessionmaker(self._autocommit, expire_on_commit=False)
            if self._autocommit is not None
            else self._sessions
        )
        self._clock = clock
        self._closed = False
        #: PostgreSQL: a few connections straight through the driver for the statements every
        #: call set-up makes (see :mod:`.driver`); None on SQLite.
        self.driver: DriverPool | None = (
            DriverPool(
                dict(engine.dialect.create_connect_args(engine.url)[1]),
                ping_after=PING_AFTER_IDLE_SECONDS,
            )
            if engine.dialect.name == "postgresql"
            else None
        )
        #: The server's secret for keyed hashes of join codes (see ``join_codes``); kept outside
        #: the database, so a copy of the database alone cannot be used to find codes.
        self.code_key: bytes | None = None

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        clock: Callable[[], datetime] = utc_now,
        migrate: bool = True,
    ) -> Self:
        """Open the database at *url* and, unless *migrate* is false, migrate it to the newest
        schema.

        Raises :class:`InvalidValueError` for a malformed URL and :class:`DatabaseError` when
        the database cannot be reached or migrated.
        """
        engine = create_engine(url)
        safe_url = _safe(engine.url)
        try:
            if migrate:
                await _upgrade(engine, "head")
            else:
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            await engine.dispose()
            raise DatabaseError(f"Cannot open the database {safe_url}: {_reason(exc)}") from exc
        except BaseException:
            await engine.dispose()
            raise
        logger.info("Database %s opened", safe_url)
        return cls(engine, clock=clock)

    @property
    def engine(self) -> AsyncEngine:
        """The underlying SQLAlchemy engine."""
        return self._engine

    @property
    def dialect_name(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    def now(self) -> datetime:
        """The current time in UTC, from the clock given at opening."""
        return self._clock()

    def session(self) -> AsyncSession:
        """A new session; use it as ``async with db.session() as session:``."""
        if self._closed:
            raise DatabaseError("The database has been closed.")
        return self._sessions()

    def reads(self) -> AsyncSession:
        """A session that only reads, for the paths every request takes (its login, its user,
        a listing): ``async with db.reads() as session:``.

        On PostgreSQL each statement runs on its own, outside a transaction: one round trip
        where a session's first read takes three (BEGIN, the query, and the ROLLBACK when it
        closes). Under PostgreSQL's READ COMMITTED each statement sees its own snapshot in a
        transaction too, so reads lose nothing; but nothing written in it is atomic, and
        ``SELECT ... FOR UPDATE`` locks nothing: use :meth:`session` for those. On SQLite it
        is an ordinary session.
        """
        if self._closed:
            raise DatabaseError("The database has been closed.")
        return self._reads()

    def statements(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A Core connection for the hot paths' few statements (calls set up and ended, a live
        connection's login checked), used as ``async with db.statements() as conn:``.

        On PostgreSQL each statement commits on its own: one round trip where a transaction
        takes three (BEGIN, the statement, COMMIT), and no ORM session around it. Several
        statements in it are therefore not atomic; a failed one raises at once. On SQLite it
        is one transaction, committed at the end.
        """
        if self._closed:
            raise DatabaseError("The database has been closed.")
        if self._autocommit is not None:
            return self._autocommit.connect()
        return self._engine.begin()

    async def close(self) -> None:
        """Close every pooled connection. Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        if self.driver is not None:
            await self.driver.close()
        await self._engine.dispose()
        logger.info("Database %s closed", _safe(self._engine.url))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def open_database(
    url: str,
    *,
    clock: Callable[[], datetime] = utc_now,
    migrate: bool = True,
) -> Database:
    """Open the database at *url*; the same as :meth:`Database.open`."""
    return await Database.open(url, clock=clock, migrate=migrate)
