"""Administrative changes on a real database (SQLite and PostgreSQL): the last administrator,
branches in use, the administrators' views and the audit log search."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from server.storage import (
    AuthSession,
    ConflictError,
    Database,
    DuplicateError,
    InvalidValueError,
    NotFoundError,
    Role,
    User,
    branch_usage,
    cancel_appointment,
    create_appointment,
    create_auth_session,
    create_booth,
    create_branch,
    create_topic,
    create_user,
    delete_branch,
    disable_user,
    enable_user,
    get_booth,
    get_branch,
    get_user,
    list_branches,
    record_audit,
    search_audit,
    set_booth_branch,
    set_user_topics,
    update_branch,
    update_user,
    user_topic_ids,
)
from tests.server.conftest import NOW, ManualClock

PASSWORD = "correct horse battery staple"


async def _user(db: Database, name: str, role: str) -> User:
    return await create_user(db, username=name, password=PASSWORD, role=role)


async def _enabled_admins(db: Database) -> list[str]:
    async with db.session() as session:
        query = select(User.username).where(User.role == Role.ADMIN, User.disabled.is_(False))
        return sorted(await session.scalars(query))


# --- users ---------------------------------------------------------------------------------


async def test_update_user_changes_name_and_role(db: Database) -> None:
    alice = await _user(db, "alice", "advisor")
    changed = await update_user(db, alice.id, display_name="  Alice A.  ", role="admin")
    assert (changed.display_name, changed.role) == ("Alice A.", Role.ADMIN)
    stored = await get_user(db, alice.id)
    assert stored is not None and stored.role is Role.ADMIN
    with pytest.raises(InvalidValueError, match="Nothing to change"):
        await update_user(db, alice.id)
    with pytest.raises(InvalidValueError, match="Unknown role 'root'"):
        await update_user(db, alice.id, role="root")
    with pytest.raises(InvalidValueError, match="must not be empty"):
        await update_user(db, alice.id, display_name="   ")
    with pytest.raises(NotFoundError, match="No user with id 'nobody'"):
        await update_user(db, "nobody", role="advisor")


async def test_the_last_enabled_admin_can_be_neither_disabled_nor_demoted(db: Database) -> None:
    root = await _user(db, "root", "admin")
    with pytest.raises(ConflictError, match="'root' is the last enabled administrator"):
        await disable_user(db, root.id)
    with pytest.raises(ConflictError, match="make another user an administrator first"):
        await update_user(db, root.id, role="advisor")
    assert await _enabled_admins(db) == ["root"]

    # A disabled administrator does not count.
    other = await _user(db, "other", "admin")
    await disable_user(db, other.id)
    with pytest.raises(ConflictError):
        await disable_user(db, root.id)

    await enable_user(db, other.id)
    await update_user(db, root.id, role="advisor")
    assert await _enabled_admins(db) == ["other"]


async def test_two_admins_disabling_each_other_at_once_leave_one(db: Database) -> None:
    first, second = await _user(db, "first", "admin"), await _user(db, "second", "admin")
    results = await asyncio.gather(
        disable_user(db, first.id), disable_user(db, second.id), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, ConflictError)]
    assert len(refused) == 1, results
    assert len(await _enabled_admins(db)) == 1


async def test_disabling_ends_the_users_logins(db: Database) -> None:
    alice = await _user(db, "alice", "advisor")
    await create_auth_session(db, alice, timedelta(hours=1))
    await create_auth_session(db, alice, timedelta(hours=1))
    disabled = await disable_user(db, alice.id)
    assert disabled.disabled
    async with db.session() as session:
        count = await session.scalar(
            select(func.count()).select_from(AuthSession).where(AuthSession.user_id == alice.id)
        )
    assert count == 0
    assert not (await enable_user(db, alice.id)).disabled
    with pytest.raises(NotFoundError):
        await disable_user(db, "nobody")
    with pytest.raises(NotFoundError):
        await enable_user(db, "nobody")


async def test_user_topic_ids(db: Database) -> None:
    alice, bob = await _user(db, "alice", "advisor"), await _user(db, "bob", "advisor")
    passports, visas = await create_topic(db, "Passports"), await create_topic(db, "Visas")
    await set_user_topics(db, alice.id, [visas.id, passports.id])
    assert await user_topic_ids(db) == {alice.id: sorted([passports.id, visas.id])}
    assert bob.id not in await user_topic_ids(db)


# --- branches ------------------------------------------------------------------------------


async def test_update_branch(db: Database) -> None:
    mitte = await create_branch(db, "Mitte", "Berlin")
    await create_branch(db, "Pankow", "Berlin")
    changed = await update_branch(db, mitte.id, region=" Brandenburg ")
    assert (changed.name, changed.region) == ("Mitte", "Brandenburg")
    changed = await update_branch(db, mitte.id, name="Zentrum", region="Berlin")
    assert (changed.name, changed.region) == ("Zentrum", "Berlin")
    with pytest.raises(DuplicateError, match="A branch named 'Pankow' already exists"):
        await update_branch(db, mitte.id, name="Pankow")
    with pytest.raises(InvalidValueError, match="Nothing to change"):
        await update_branch(db, mitte.id)
    with pytest.raises(InvalidValueError, match="region must not be empty"):
        await update_branch(db, mitte.id, region=" ")
    with pytest.raises(NotFoundError):
        await update_branch(db, "nowhere", name="X")
    stored = await get_branch(db, mitte.id)
    assert stored is not None and (stored.name, stored.region) == ("Zentrum", "Berlin")


async def test_a_branch_in_use_cannot_be_deleted(db: Database, clock: ManualClock) -> None:
    with_booth = await create_branch(db, "Mitte", "Berlin")
    with_appointment = await create_branch(db, "Pankow", "Berlin")
    unused = await create_branch(db, "Spandau", "Berlin")
    booth, _ = await create_booth(db, "Booth 1")
    await set_booth_branch(db, booth.id, with_booth.id)
    advisor = await _user(db, "alice", "advisor")
    appointment, _, _ = await create_appointment(
        db,
        advisor_id=advisor.id,
        starts_at=NOW + timedelta(hours=2),
        duration_minutes=30,
        channel="booth",
        branch_id=with_appointment.id,
    )
    await cancel_appointment(db, appointment.id)  # past and cancelled ones count too

    usage = await branch_usage(db)
    assert (usage[with_booth.id].booths, usage[with_booth.id].appointments) == (1, 0)
    assert (usage[with_appointment.id].booths, usage[with_appointment.id].appointments) == (0, 1)
    assert unused.id not in usage

    with pytest.raises(ConflictError, match=r"'Mitte' is still in use by 1 booth\(s\)"):
        await delete_branch(db, with_booth.id)
    with pytest.raises(ConflictError, match=r"0 booth\(s\) and 1 appointment\(s\)"):
        await delete_branch(db, with_appointment.id)
    stored_booth = await get_booth(db, booth.id)
    assert stored_booth is not None and stored_booth.branch_id == with_booth.id

    await delete_branch(db, unused.id)
    assert [b.name for b in await list_branches(db)] == ["Mitte", "Pankow"]
    with pytest.raises(NotFoundError):
        await delete_branch(db, unused.id)

    await set_booth_branch(db, booth.id, None)
    await delete_branch(db, with_booth.id)
    assert [b.name for b in await list_branches(db)] == ["Pankow"]


# --- audit log -----------------------------------------------------------------------------


async def test_search_audit_filters_by_action(db: Database, clock: ManualClock) -> None:
    for action in ("user.create", "user.disable", "userXcreate", "branch.create", "user_x.y"):
        await record_audit(db, actor_kind="system", actor_id=None, action=action)
        clock.now += timedelta(seconds=1)
    assert [e.action for e in await search_audit(db)] == [
        "user_x.y",
        "branch.create",
        "userXcreate",
        "user.disable",
        "user.create",
    ]
    assert [e.action for e in await search_audit(db, action="user.create")] == ["user.create"]
    found = await search_audit(db, action="user.*")
    assert [e.action for e in found] == ["user.disable", "user.create"]
    # LIKE wildcards in the prefix are taken literally.
    assert [e.action for e in await search_audit(db, action="user_*")] == ["user_x.y"]
    for bad in ("User.create", "user.*.*", "x" * 65, "", "user%"):
        with pytest.raises(InvalidValueError, match="Invalid action filter"):
            await search_audit(db, action=bad)
    with pytest.raises(InvalidValueError, match="Invalid limit"):
        await search_audit(db, limit=1001)


async def test_search_audit_pages_through_events_at_the_same_time(db: Database) -> None:
    # The clock stands still: every event has the same time, so pages go by id.
    for number in range(7):
        await record_audit(db, actor_kind="system", actor_id=None, action=f"test.{number}")
    everything = await search_audit(db)
    seen = []
    page = await search_audit(db, limit=3)
    while page:
        seen += page
        page = await search_audit(db, limit=3, before=page[-1].at, before_id=page[-1].id)
    assert [e.id for e in seen] == [e.id for e in everything]
    assert len(seen) == 7
    # With a time alone, the events at that very time are skipped.
    assert await search_audit(db, before=everything[0].at) == []
