"""Alembic environment for the server's database.

:func:`server.storage.database.migrate` and ``Database.open`` build the Alembic configuration
in code and pass an open connection in ``config.attributes["connection"]``; the migrations run
on it, inside the caller's transaction. Without a connection (Alembic's own command line, with
``sqlalchemy.url`` set in its configuration) this file opens one with the same engine setup.
Logging is left to the application: no ``fileConfig``.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from server.storage.database import create_engine
from server.storage.models import Base

config = context.config
target_metadata = Base.metadata


def _run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run_on)
    finally:
        await engine.dispose()


def _run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    if context.is_offline_mode():
        _run_offline()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("No database: set sqlalchemy.url or pass a connection")
    asyncio.run(_run_with_own_engine(url))


_main()
