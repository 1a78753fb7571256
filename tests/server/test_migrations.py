"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from server.storage import Database, migrate
from server.storage.database import alembic_config, create_engine
from server.storage.models import Base

TABLES = {
    "users",
    "auth_sessions",
    "booths",
    "branches",
    "topics",
    "user_topics",
    "appointments",
    "audit_events",
    "settings",
    "assets",
    "booth_enrolments",
    "booth_health",
    "call_endings",
    "live_calls",
    "spent_nonces",
    "call_invitations",
    "update_bundles",
    "rollouts",
    "rollout_booths",
    "outbox",
    "appointment_contacts",
    "service_accounts",
    "api_tokens",
    "idempotency_keys",
    "webhook_endpoints",
}
TABLES_0013 = TABLES - {"service_accounts", "api_tokens", "idempotency_keys", "webhook_endpoints"}
TABLES_0012 = TABLES_0013 - {"outbox", "appointment_contacts"}
TABLES_0009 = TABLES_0012 - {"update_bundles", "rollouts", "rollout_booths"}
TABLES_0006 = TABLES_0009 - {"live_calls", "spent_nonces", "call_invitations"}
TABLES_0004 = TABLES_0006 - {"call_endings"}
TABLES_0003 = TABLES_0004 - {"booth_enrolments", "booth_health"}
TABLES_0002 = TABLES_0003 - {"settings", "assets"}
TABLES_0001 = {"users", "auth_sessions", "booths"}


@pytest.fixture
def url(empty_db_url: str) -> str:
    return empty_db_url


@pytest.fixture
async def engine(url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(url)
    yield engine
    await engine.dispose()


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {"alembic_version"}


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _constraint_names(connection: Connection) -> dict[str, set[str]]:
    inspector = inspect(connection)
    names: dict[str, set[str]] = {}
    for table in TABLES:
        found: set[str] = {str(inspector.get_pk_constraint(table)["name"])}
        found |= {str(c["name"]) for c in inspector.get_unique_constraints(table)}
        found |= {str(c["name"]) for c in inspector.get_check_constraints(table)}
        found |= {str(c["name"]) for c in inspector.get_foreign_keys(table)}
        found |= {str(i["name"]) for i in inspector.get_indexes(table)}
        names[table] = found
    return names


def _model_constraint_names() -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for table in Base.metadata.sorted_tables:
        found: set[str] = {str(c.name) for c in table.constraints}
        found |= {str(i.name) for i in table.indexes}
        names[table.name] = found
    return names


def _downgrade_to_base(connection: Connection) -> None:
    command.downgrade(alembic_config(connection), "base")


#: The newest revision: the highest numbered file in migrations/versions.
HEAD = max(
    path.name[:4]
    for path in (Path(alembic_config().get_main_option("script_location") or "") / "versions").glob(
        "[0-9][0-9][0-9][0-9]_*.py"
    )
)


def test_one_head_the_newest_revision() -> None:
    scripts = ScriptDirectory.from_config(alembic_config())
    assert scripts.get_heads() == [HEAD]


async def test_migrated_schema_matches_the_models(url: str, engine: AsyncEngine) -> None:
    await migrate(url)
    async with engine.connect() as conn:
        assert await conn.run_sync(_differences) == []
        assert await conn.run_sync(_tables) == TABLES
        assert await conn.run_sync(_revision) == HEAD


async def test_constraint_names_match_the_models(url: str, engine: AsyncEngine) -> None:
    # compare_metadata does not look at constraint names; later migrations depend on them.
    await migrate(url)
    async with engine.connect() as conn:
        found = await conn.run_sync(_constraint_names)
    assert found == _model_constraint_names()
    assert found["users"] == {
        "pk_users",
        "uq_users_username",
        "ck_users_role",
        "uq_users_external_issuer",
    }
    assert found["booths"] == {
        "pk_booths",
        "uq_booths_name",
        "uq_booths_public_key",
        "fk_booths_branch_id_branches",
        "ix_booths_branch_id",
    }
    assert found["appointments"] >= {
        "ck_appointments_duration",
        "ck_appointments_booth_branch",
        "uq_appointments_join_token_hash",
    }


async def test_role_is_checked_by_the_database(url: str, engine: AsyncEngine) -> None:
    await migrate(url)
    with pytest.raises(IntegrityError, match="ck_users_role"):
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO users (id, username, display_name, password_hash, role, "
                    "created_at, disabled) VALUES ('u', 'eve', 'Eve', 'h', 'root', "
                    "'2026-01-01 00:00:00', false)"
                )
            )


async def test_downgrade_to_base_and_up_again(url: str, engine: AsyncEngine) -> None:
    await migrate(url)
    async with engine.begin() as conn:
        await conn.run_sync(_downgrade_to_base)
    async with engine.connect() as conn:
        assert await conn.run_sync(_tables) == set()
        assert await conn.run_sync(_revision) is None

    await migrate(url)
    async with engine.connect() as conn:
        assert await conn.run_sync(_differences) == []
        assert await conn.run_sync(_revision) == HEAD


async def test_migrating_again_changes_nothing(url: str, engine: AsyncEngine) -> None:
    await migrate(url)
    async with await Database.open(url) as db, db.session() as session:
        await session.execute(
            text(
                "INSERT INTO booths (id, name, secret_hash, created_at) "
                "VALUES ('b', 'Branch 1', 'h', '2026-01-01 00:00:00')"
            )
        )
        await session.commit()
    await migrate(url)
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT name FROM booths"))).scalars().all() == ["Branch 1"]


async def test_ddl_is_transactional_on_sqlite(engine: AsyncEngine) -> None:
    # Why a failed migration leaves no half-built schema behind.

    async def fail_halfway() -> None:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE half_done (id INTEGER)"))
            raise RuntimeError("fail on purpose")

    with pytest.raises(RuntimeError, match="fail on purpose"):
        await fail_halfway()
    async with engine.connect() as conn:
        assert await conn.run_sync(_tables) == set()


def _downgrade_to(revision: str) -> Callable[[Connection], None]:
    def run(connection: Connection) -> None:
        command.downgrade(alembic_config(connection), revision)

    return run


async def test_downgrade_to_0001_and_up_again(url: str, engine: AsyncEngine) -> None:
    await migrate(url)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO branches (id, name, region, created_at) "
                "VALUES ('br', 'Mitte', 'Berlin', '2026-01-01 00:00:00')"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO booths (id, name, secret_hash, created_at, branch_id) "
                "VALUES ('b', 'Booth 1', 'h', '2026-01-01 00:00:00', 'br')"
            )
        )
    async with engine.begin() as conn:
        await conn.run_sync(_downgrade_to("0001"))
    async with engine.connect() as conn:
        assert await conn.run_sync(_tables) == TABLES_0001
        assert await conn.run_sync(_revision) == "0001"
        columns = await conn.run_sync(
            lambda sync: {c["name"] for c in inspect(sync).get_columns("booths")}
        )
        assert "branch_id" not in columns
        # The booth survives the table copy that drops its column.
        assert (await conn.execute(text("SELECT name FROM booths"))).scalars().all() == ["Booth 1"]

    await migrate(url)
    async with engine.connect() as conn:
        assert await conn.run_sync(_differences) == []
        assert await conn.run_sync(_revision) == HEAD
        assert await conn.run_sync(_tables) == TABLES


async def test_deleting_a_branch_unlinks_its_booths(url: str, engine: AsyncEngine) -> None:
    await migrate(url)
    async with await Database.open(url) as db, db.session() as session:
        await session.execute(
            text(
                "INSERT INTO branches (id, name, region, created_at) "
                "VALUES ('br', 'Mitte', 'Berlin', '2026-01-01 00:00:00')"
            )
        )
        await session.execute(
            text(
                "INSERT INTO booths (id, name, secret_hash, created_at, branch_id) "
                "VALUES ('b', 'Booth 1', 'h', '2026-01-01 00:00:00', 'br')"
            )
        )
        await session.execute(text("DELETE FROM branches"))
        await session.commit()
        assert (await session.execute(text("SELECT branch_id FROM booths"))).scalar() is None


async def test_downgrade_to_0002_drops_settings_and_assets(url: str, engine: AsyncEngine) -> None:
    await migrate(url)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO settings (key, value, updated_at) "
                "VALUES ('audit_retention_days', '30', '2026-01-01 00:00:00')"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO topics (id, name, active, created_at) "
                "VALUES ('t', 'Passports', true, '2026-01-01 00:00:00')"
            )
        )
    async with engine.begin() as conn:
        await conn.run_sync(_downgrade_to("0002"))
    async with engine.connect() as conn:
        assert await conn.run_sync(_tables) == TABLES_0002
        assert await conn.run_sync(_revision) == "0002"
        assert (await conn.execute(text("SELECT name FROM topics"))).scalars().all() == [
            "Passports"
        ]

    await migrate(url)
    async with engine.connect() as conn:
        assert await conn.run_sync(_differences) == []
        assert await conn.run_sync(_revision) == HEAD
