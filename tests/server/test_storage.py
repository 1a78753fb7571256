"""Users, login sessions and booths on a real database: a SQLite file and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import delete, select, text, update

from server.storage import (
    AuthSession,
    Booth,
    Database,
    DatabaseError,
    DuplicateError,
    InvalidValueError,
    NotFoundError,
    Role,
    User,
    WeakPasswordError,
    authenticate_booth,
    authenticate_user,
    create_auth_session,
    create_booth,
    create_user,
    delete_auth_session,
    disable_user,
    enable_user,
    get_booth,
    get_booth_by_name,
    get_user,
    get_user_by_username,
    list_booths,
    list_users,
    needs_rehash,
    open_database,
    purge_expired_sessions,
    revoke_booth,
    set_password,
    user_for_token,
)
from server.storage.models import new_id
from tests.server.conftest import ManualClock, sqlite_url, stored_bytes

PASSWORD = "correct horse battery staple"
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    # A folder that does not exist yet: opening must create it.
    return tmp_path / "data" / "videobooth.db"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


async def add_user(db: Database, username: str = "alice", role: str = "advisor") -> User:
    return await create_user(db, username=username, password=PASSWORD, role=role)


# --- opening and closing -----------------------------------------------------------------------


@pytest.mark.sqlite_only
async def test_open_creates_the_folder_and_sets_up_sqlite(db: Database, db_path: Path) -> None:
    assert await asyncio.to_thread(db_path.is_file)
    assert db.dialect_name == "sqlite"
    async with db.session() as session:
        assert await session.scalar(text("PRAGMA foreign_keys")) == 1
        assert await session.scalar(text("PRAGMA journal_mode")) == "wal"


async def test_close_is_safe_twice_and_final(db_path: Path) -> None:
    database = await open_database(sqlite_url(db_path))
    await database.close()
    await database.close()
    with pytest.raises(DatabaseError, match="closed"):
        database.session()


async def test_reopening_keeps_the_data(db_path: Path) -> None:
    async with await Database.open(sqlite_url(db_path)) as first:
        await add_user(first)
    async with await Database.open(sqlite_url(db_path)) as second:
        assert [u.username for u in await list_users(second)] == ["alice"]


async def test_open_refuses_a_malformed_url() -> None:
    with pytest.raises(InvalidValueError, match="Not a database URL"):
        await Database.open("not a url")


async def test_open_reports_an_unusable_path(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(DatabaseError, match="Cannot create the folder"):
        await Database.open(sqlite_url(blocker / "sub" / "videobooth.db"))
    with pytest.raises(DatabaseError, match="Cannot open the database"):
        await Database.open(sqlite_url(tmp_path))  # a folder, not a file
    await wait_for_aiosqlite_threads()


async def wait_for_aiosqlite_threads() -> None:
    """Let the worker threads of failed connections end while the loop still runs.

    After a failed connect aiosqlite stops its worker thread without waiting for it; the
    thread then reports to the event loop and fails if the test has closed it already
    (omnilib/aiosqlite#389).
    """
    for thread in threading.enumerate():
        if "_connection_worker_thread" in thread.name:
            await asyncio.to_thread(thread.join, 5)


# --- users -------------------------------------------------------------------------------------


async def test_create_user(db: Database) -> None:
    user = await create_user(
        db, username="  Alice.Smith ", password=PASSWORD, role=Role.ADMIN, display_name="Alice"
    )
    assert len(user.id) == 32
    assert user.username == "alice.smith"
    assert user.display_name == "Alice"
    assert user.role is Role.ADMIN
    assert user.disabled is False
    assert user.password_hash.startswith("$argon2id$")

    stored = await get_user(db, user.id)
    assert stored is not None
    assert stored.username == "alice.smith"
    assert stored.role is Role.ADMIN
    assert stored.created_at == START
    assert stored.created_at.tzinfo is not None
    assert await get_user(db, "no-such-id") is None


async def test_display_name_defaults_to_username(db: Database) -> None:
    user = await create_user(db, username="bob", password=PASSWORD, role="advisor")
    assert user.display_name == "bob"
    assert user.role is Role.ADVISOR


async def test_username_is_unique_in_any_case(db: Database) -> None:
    await add_user(db, "Alice")
    with pytest.raises(DuplicateError) as info:
        await add_user(db, "ALICE")
    assert str(info.value) == "The username 'alice' is already taken; choose another one."
    assert isinstance(info.value, ValueError)
    assert [u.username for u in await list_users(db)] == ["alice"]


async def test_weak_password_creates_nothing(db: Database) -> None:
    with pytest.raises(WeakPasswordError, match="at least 12 characters"):
        await create_user(db, username="carol", password="tooshort", role="advisor")
    assert await list_users(db) == []


@pytest.mark.parametrize("username", ["ab", "a" * 65, "al ice", "élise", "ali\nce", "a/b", ""])
async def test_invalid_usernames_are_refused(db: Database, username: str) -> None:
    with pytest.raises(InvalidValueError, match="Invalid username"):
        await add_user(db, username)


async def test_unknown_role_is_refused(db: Database) -> None:
    with pytest.raises(InvalidValueError) as info:
        await add_user(db, role="superuser")
    assert str(info.value) == "Unknown role 'superuser': use one of advisor, admin."


async def test_authenticate_user(db: Database) -> None:
    user = await add_user(db, "alice")
    found = await authenticate_user(db, "Alice", PASSWORD)
    assert found is not None
    assert found.id == user.id
    assert await authenticate_user(db, "alice", PASSWORD + "x") is None
    assert await authenticate_user(db, "alice", "") is None
    assert await authenticate_user(db, "mallory", PASSWORD) is None
    assert await authenticate_user(db, "", PASSWORD) is None
    assert await authenticate_user(db, "x" * 10_000, PASSWORD) is None


async def test_disabled_user_cannot_log_in(db: Database) -> None:
    user = await add_user(db)
    await disable_user(db, user.id)
    assert await authenticate_user(db, "alice", PASSWORD) is None
    await enable_user(db, user.id)
    assert await authenticate_user(db, "alice", PASSWORD) is not None
    with pytest.raises(NotFoundError):
        await disable_user(db, new_id())


async def test_login_upgrades_an_outdated_hash(db: Database) -> None:
    user = await add_user(db)
    old = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    async with db.session() as session:
        await session.execute(update(User).where(User.id == user.id).values(password_hash=old))
        await session.commit()

    assert await authenticate_user(db, "alice", PASSWORD) is not None
    stored = await get_user(db, user.id)
    assert stored is not None
    assert stored.password_hash != old
    assert not needs_rehash(stored.password_hash)
    assert await authenticate_user(db, "alice", PASSWORD) is not None


async def test_set_password(db: Database) -> None:
    user = await add_user(db)
    token = await create_auth_session(db, user, HOUR)
    new_password = "another long passphrase"
    await set_password(db, user.id, new_password)
    assert await authenticate_user(db, "alice", PASSWORD) is None
    assert await authenticate_user(db, "alice", new_password) is not None
    assert await user_for_token(db, token) is None  # a password change logs everyone out
    with pytest.raises(WeakPasswordError):
        await set_password(db, user.id, "short")
    with pytest.raises(NotFoundError, match="No user with id"):
        await set_password(db, new_id(), new_password)


async def test_get_user_by_username(db: Database) -> None:
    user = await add_user(db)
    found = await get_user_by_username(db, "ALICE")
    assert found is not None
    assert found.id == user.id
    assert await get_user_by_username(db, "bob") is None
    assert await get_user_by_username(db, "not valid!") is None


# --- login sessions ----------------------------------------------------------------------------


async def test_session_token_lookup(db: Database) -> None:
    user = await add_user(db)
    token = await create_auth_session(db, user, HOUR)
    assert len(token) >= 43
    found = await user_for_token(db, token)
    assert found is not None
    assert found.id == user.id
    other = await create_auth_session(db, user, HOUR)
    assert other != token


async def test_raw_token_is_not_stored(db: Database, db_url: str) -> None:
    user = await add_user(db)
    token = await create_auth_session(db, user, HOUR)
    await db.close()
    stored = await stored_bytes(db_url)
    assert token.encode() not in stored
    # The check reads real data: the token's hash is there.
    assert hashlib.sha256(token.encode()).hexdigest().encode() in stored


async def test_session_expires(db: Database, clock: ManualClock) -> None:
    user = await add_user(db)
    token = await create_auth_session(db, user, HOUR)
    clock.advance(HOUR - timedelta(seconds=1))
    assert await user_for_token(db, token) is not None
    clock.advance(timedelta(seconds=1))
    assert await user_for_token(db, token) is None


async def test_purge_expired_sessions(db: Database, clock: ManualClock) -> None:
    user = await add_user(db)
    short = await create_auth_session(db, user, timedelta(minutes=5))
    long = await create_auth_session(db, user, HOUR)
    assert await purge_expired_sessions(db) == 0
    clock.advance(timedelta(minutes=10))
    assert await purge_expired_sessions(db) == 1
    assert await delete_auth_session(db, short) is False  # already purged
    assert await user_for_token(db, long) is not None


async def test_last_seen_is_written_at_most_once_a_minute(db: Database, clock: ManualClock) -> None:
    user = await add_user(db)
    token = await create_auth_session(db, user, HOUR)

    async def last_seen() -> datetime:
        async with db.session() as session:
            value: datetime | None = await session.scalar(select(AuthSession.last_seen_at))
        assert value is not None
        return value

    clock.advance(timedelta(seconds=30))
    await user_for_token(db, token)
    assert await last_seen() == START
    clock.advance(timedelta(seconds=31))
    await user_for_token(db, token)
    assert await last_seen() == START + timedelta(seconds=61)


async def test_logout(db: Database) -> None:
    user = await add_user(db)
    token = await create_auth_session(db, user, HOUR)
    assert await delete_auth_session(db, token) is True
    assert await user_for_token(db, token) is None
    assert await delete_auth_session(db, token) is False


async def test_disabling_a_user_ends_the_sessions(db: Database) -> None:
    user = await add_user(db)
    token = await create_auth_session(db, user, HOUR)
    await disable_user(db, user.id)
    await enable_user(db, user.id)
    assert await user_for_token(db, token) is None


async def test_deleting_a_user_deletes_the_sessions(db: Database) -> None:
    user = await add_user(db)
    await create_auth_session(db, user, HOUR)
    async with db.session() as session:
        await session.execute(delete(User).where(User.id == user.id))
        await session.commit()
        assert await session.scalar(select(AuthSession)) is None


@pytest.mark.parametrize("token", ["", "x", "x" * 10_240, "é" * 43, "\ud800", "\x00" * 43])
async def test_garbage_tokens_find_nobody(db: Database, token: str) -> None:
    user = await add_user(db)
    await create_auth_session(db, user, HOUR)
    assert await user_for_token(db, token) is None
    assert await delete_auth_session(db, token) is False


async def test_session_needs_a_positive_lifetime(db: Database) -> None:
    user = await add_user(db)
    with pytest.raises(InvalidValueError, match="positive time"):
        await create_auth_session(db, user, timedelta(0))


# --- booths ------------------------------------------------------------------------------------


async def test_create_and_authenticate_booth(db: Database, db_url: str) -> None:
    booth, credential = await create_booth(db, " Branch Mitte 1 ")
    assert booth.name == "Branch Mitte 1"
    assert booth.created_at == START
    assert not booth.revoked
    booth_id, dot, secret = credential.partition(".")
    assert (booth_id, dot) == (booth.id, ".")
    assert len(secret) == 43

    found = await authenticate_booth(db, credential)
    assert found is not None
    assert found.id == booth.id

    await db.close()
    stored = await stored_bytes(db_url)
    assert secret.encode() not in stored
    # The check reads real data: the booth's name is there.
    assert b"Branch Mitte 1" in stored


async def test_booth_name_is_unique(db: Database) -> None:
    await create_booth(db, "Branch 1")
    with pytest.raises(DuplicateError) as info:
        await create_booth(db, "Branch 1")
    assert str(info.value) == "A booth named 'Branch 1' already exists; choose another name."


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "needs a name"), ("   ", "needs a name"), ("x" * 101, "too long"), ("a\tb", "control")],
)
async def test_invalid_booth_names(db: Database, name: str, message: str) -> None:
    with pytest.raises(InvalidValueError, match=message):
        await create_booth(db, name)


async def test_garbage_booth_credentials(db: Database) -> None:
    booth, credential = await create_booth(db, "Branch 1")
    _, secret = credential.split(".")
    garbage = [
        "",
        ".",
        "..",
        "x.y",
        "x" * 10_240,
        "é" * 80,
        f"{booth.id}é.{secret}",
        "\ud800.\udfff",
        "\x00" * 76,
        booth.id,
        f"{booth.id}.",
        f".{secret}",
        f"{booth.id}.{secret}x",
        f"{booth.id}.{secret[:-1]}",
        f"{booth.id}.{secret}.",
        f"{booth.id.upper()}.{secret}",
        f" {credential}",
        f"{new_id()}.{secret}",  # someone else's id
        f"{booth.id}.{'A' * 43}",  # wrong secret
    ]
    for candidate in garbage:
        assert await authenticate_booth(db, candidate) is None, candidate
    assert await authenticate_booth(db, credential) is not None


async def test_revoked_booth_cannot_log_in(db: Database, clock: ManualClock) -> None:
    booth, credential = await create_booth(db, "Branch 1")
    clock.advance(HOUR)
    revoked = await revoke_booth(db, booth.id)
    assert revoked.revoked_at == START + HOUR
    assert await authenticate_booth(db, credential) is None

    clock.advance(HOUR)
    again = await revoke_booth(db, booth.id)
    assert again.revoked_at == START + HOUR  # the first revocation stands
    with pytest.raises(NotFoundError, match="No booth with id"):
        await revoke_booth(db, new_id())


async def test_list_and_find_booths(db: Database) -> None:
    second, _ = await create_booth(db, "Branch 2")
    first, _ = await create_booth(db, "Branch 1")
    await revoke_booth(db, second.id)

    assert [b.name for b in await list_booths(db)] == ["Branch 1", "Branch 2"]
    assert [b.name for b in await list_booths(db, include_revoked=False)] == ["Branch 1"]
    found = await get_booth_by_name(db, "Branch 2")
    assert isinstance(found, Booth)
    assert found.revoked
    assert found.revoked_at is not None
    assert found.revoked_at.tzinfo is not None
    assert await get_booth_by_name(db, "Branch 3") is None
    by_id = await get_booth(db, first.id)
    assert by_id is not None
    assert by_id.name == "Branch 1"


async def test_concurrent_requests_do_not_lock_each_other_out(
    db: Database, clock: ManualClock
) -> None:
    # Every lookup below also writes last_seen_at, while new sessions are inserted: on SQLite
    # this needs transactions that wait for the write lock instead of failing.
    user = await add_user(db)
    tokens = [await create_auth_session(db, user, HOUR) for _ in range(10)]
    clock.advance(timedelta(minutes=2))
    lookups = [user_for_token(db, token) for token in tokens * 5]
    logins = [create_auth_session(db, user, HOUR) for _ in range(20)]
    results = await asyncio.gather(*lookups, *logins)
    assert all(isinstance(found, User) for found in results[: len(lookups)])
    assert len(set(results[len(lookups) :])) == 20
