"""The administration API: users, branches, topics, settings and the audit log."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from server.app import housekeeping
from server.keys import DATABASE
from server.storage import (
    AuditEvent,
    AuthSession,
    create_appointment,
    create_booth,
    create_user,
    get_user_by_username,
    list_audit,
    list_users,
    set_booth_branch,
)
from server.storage.models import new_id
from tests.server.conftest import PASSWORD, Harness


@pytest.fixture
async def admin(harness: Harness) -> AsyncIterator[aiohttp.ClientSession]:
    """A logged-in administrator, ``root``."""
    await create_user(harness.app[DATABASE], username="root", password=PASSWORD, role="admin")
    http = await harness.login("root")
    yield http
    await http.close()


async def call(
    http: aiohttp.ClientSession, harness: Harness, method: str, path: str, body: Any = None
) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of an API call (``body`` sent as JSON unless None)."""
    kwargs = {} if body is None else {"json": body}
    async with http.request(method, harness.url("/api/v1" + path), **kwargs) as response:
        return response.status, await response.json(content_type=None)


async def _audit_actions(harness: Harness) -> list[str]:
    return [e.action for e in await list_audit(harness.app[DATABASE])]


async def _user_id(harness: Harness, username: str) -> str:
    user = await get_user_by_username(harness.app[DATABASE], username)
    assert user is not None
    return user.id


async def _login_status(harness: Harness, username: str, password: str) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            harness.url("/api/v1/auth/login"), json={"username": username, "password": password}
        ) as response,
    ):
        return response.status


# --- users ---------------------------------------------------------------------------------


async def test_a_generated_password_is_returned_once(
    harness: Harness, admin: aiohttp.ClientSession
) -> None:
    status, created = await call(
        admin, harness, "POST", "/users", {"username": "Alice", "role": "advisor"}
    )
    assert status == 201, created
    password = created["password"]
    assert len(password) == 20
    assert "shown once" in created["note"]
    assert created["user"]["username"] == "alice"
    assert created["user"]["display_name"] == "alice"
    assert await _login_status(harness, "alice", password) == 200

    status, listed = await call(admin, harness, "GET", "/users")
    assert status == 200
    alice = next(u for u in listed["users"] if u["username"] == "alice")
    assert alice == {**created["user"], "topic_ids": []}
    assert password not in json.dumps(listed)

    events = await list_audit(harness.app[DATABASE])
    assert [e.action for e in events] == ["user.create"]
    assert json.loads(events[0].detail or "") == {"password": "generated", "role": "advisor"}


async def test_a_given_password_is_checked_and_not_echoed(
    harness: Harness, admin: aiohttp.ClientSession
) -> None:
    body = {"username": "bob", "role": "admin", "display_name": "Bob B.", "password": PASSWORD}
    status, created = await call(admin, harness, "POST", "/users", body)
    assert status == 201, created
    assert "password" not in created
    assert created["user"]["role"] == "admin"
    assert await _login_status(harness, "bob", PASSWORD) == 200


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"username": "carol", "role": "advisor", "password": "short"}, 400, "at least 12"),
        ({"username": "carol", "role": "advisor", "password": " " * 12}, 400, "spaces only"),
        ({"username": "c", "role": "advisor"}, 400, "invalid username"),
        ({"username": "carol", "role": "root"}, 400, "role"),
        ({"username": "carol"}, 400, "role"),
        ({"username": "carol", "role": "advisor", "admin": True}, 400, "admin"),
        ({"username": "carol", "role": "advisor", "display_name": "a\x00b"}, 400, "control"),
        ({"username": "ROOT", "role": "advisor"}, 409, "already taken"),
    ],
)
async def test_bad_new_users_are_refused_and_nothing_is_created(
    harness: Harness,
    admin: aiohttp.ClientSession,
    body: dict[str, Any],
    status: int,
    words: str,
) -> None:
    got, problem = await call(admin, harness, "POST", "/users", body)
    assert got == status, problem
    assert words in problem["detail"].lower(), problem
    assert [u.username for u in await list_users(harness.app[DATABASE])] == ["root"]
    assert await _audit_actions(harness) == []


async def test_display_name_and_role_can_be_changed(
    harness: Harness, admin: aiohttp.ClientSession
) -> None:
    await harness.add_advisor("alice")
    alice_id = await _user_id(harness, "alice")
    alice = await harness.login("alice")
    try:
        assert (await call(alice, harness, "GET", "/users"))[0] == 403
        status, changed = await call(
            admin, harness, "PATCH", f"/users/{alice_id}", {"display_name": "Alice A."}
        )
        assert status == 200, changed
        assert (changed["user"]["display_name"], changed["user"]["role"]) == ("Alice A.", "advisor")
        status, changed = await call(
            admin, harness, "PATCH", f"/users/{alice_id}", {"role": "admin"}
        )
        assert changed["user"]["role"] == "admin"
        # The new role applies to her open login at once.
        assert (await call(alice, harness, "GET", "/users"))[0] == 200
    finally:
        await alice.close()
    for body, words in [({}, "nothing to change"), ({"role": "boss"}, "role")]:
        status, problem = await call(admin, harness, "PATCH", f"/users/{alice_id}", body)
        assert status == 400 and words in problem["detail"].lower(), problem
    status, _ = await call(admin, harness, "PATCH", f"/users/{new_id()}", {"role": "advisor"})
    assert status == 404
    events = await list_audit(harness.app[DATABASE])
    assert [e.action for e in events] == ["user.update", "user.update"]
    assert json.loads(events[0].detail or "") == {"fields": ["role"], "role": "admin"}


async def test_disabling_ends_logins_and_enabling_allows_them_again(
    harness: Harness, admin: aiohttp.ClientSession
) -> None:
    await harness.add_advisor("alice")
    alice_id = await _user_id(harness, "alice")
    alice = await harness.login("alice")
    try:
        assert (await call(alice, harness, "GET", "/me"))[0] == 200
        status, body = await call(admin, harness, "POST", f"/users/{alice_id}/disable")
        assert status == 200 and body["user"]["disabled"] is True
        assert (await call(alice, harness, "GET", "/me"))[0] == 401
    finally:
        await alice.close()
    async with harness.app[DATABASE].session() as session:
        logins = await session.scalar(
            select(func.count()).select_from(AuthSession).where(AuthSession.user_id == alice_id)
        )
    assert logins == 0
    assert await _login_status(harness, "alice", PASSWORD) == 401

    status, body = await call(admin, harness, "POST", f"/users/{alice_id}/enable")
    assert status == 200 and body["user"]["disabled"] is False
    assert await _login_status(harness, "alice", PASSWORD) == 200
    assert await _audit_actions(harness) == ["user.enable", "user.disable"]


async def test_admins_can_neither_disable_nor_demote_themselves(
    harness: Harness, admin: aiohttp.ClientSession
) -> None:
    root_id = await _user_id(harness, "root")
    await create_user(harness.app[DATABASE], username="other", password=PASSWORD, role="admin")
    status, problem = await call(admin, harness, "POST", f"/users/{root_id}/disable")
    assert status == 409
    assert problem["detail"] == "you cannot disable your own account: ask another administrator"
    status, problem = await call(admin, harness, "PATCH", f"/users/{root_id}", {"role": "advisor"})
    assert status == 409
    assert "your own administrator role" in problem["detail"]
    # Renaming oneself is fine, and so is "changing" to the role one has.
    body = {"display_name": "Root", "role": "admin"}
    assert (await call(admin, harness, "PATCH", f"/users/{root_id}", body))[0] == 200
    assert (await call(admin, harness, "GET", "/me"))[1]["role"] == "admin"
    assert await _audit_actions(harness) == ["user.update"]


async def test_the_last_admin_remains_when_two_disable_each_other(harness: Harness) -> None:
    db = harness.app[DATABASE]
    for name in ("first", "second"):
        await create_user(db, username=name, password=PASSWORD, role="admin")
    first, second = await harness.login("first"), await harness.login("second")
    try:
        first_id, second_id = await _user_id(harness, "first"), await _user_id(harness, "second")
        results = await asyncio.gather(
            call(first, harness, "POST", f"/users/{second_id}/disable"),
            call(second, harness, "POST", f"/users/{first_id}/disable"),
        )
    finally:
        await first.close()
        await second.close()
    statuses = sorted(status for status, _ in results)
    # One wins; the other is refused by the rule (409) or finds its own login ended (401).
    assert statuses in ([200, 401], [200, 409]), results
    for status, body in results:
        if status == 409:
            assert "last enabled administrator" in body["detail"]
    enabled = [u.username for u in await list_users(db) if not u.disabled]
    assert len(enabled) == 1


async def test_a_password_reset_returns_a_new_one_once_and_ends_logins(
    harness: Harness, admin: aiohttp.ClientSession
) -> None:
    await harness.add_advisor("alice")
    alice_id = await _user_id(harness, "alice")
    alice = await harness.login("alice")
    try:
        status, body = await call(admin, harness, "POST", f"/users/{alice_id}/password")
        assert status == 200, body
        assert (await call(alice, harness, "GET", "/me"))[0] == 401
    finally:
        await alice.close()
    password = body["password"]
    assert len(password) == 20 and "shown once" in body["note"]
    assert await _login_status(harness, "alice", PASSWORD) == 401
    assert await _login_status(harness, "alice", password) == 200
    assert (await call(admin, harness, "POST", f"/users/{new_id()}/password"))[0] == 404
    events = await list_audit(harness.app[DATABASE])
    assert [(e.action, e.subject, e.detail) for e in events] == [
        ("user.password_reset", alice_id, None)
    ]


async def test_no_password_ever_reaches_the_audit_log(
    harness: Harness, admin: aiohttp.ClientSession
) -> None:
    _, created = await call(
        admin, harness, "POST", "/users", {"username": "ann", "role": "advisor"}
    )
    body = {"username": "amy", "role": "advisor", "password": "a given password 1"}
    await call(admin, harness, "POST", "/users", body)
    _, reset = await call(admin, harness, "POST", f"/users/{created['user']['id']}/password")
    async with harness.app[DATABASE].session() as session:
        rows = list(await session.scalars(select(AuditEvent)))
    dumped = " ".join(f"{e.action} {e.subject} {e.detail}" for e in rows)
    assert len(rows) == 3
    for secret in (created["password"], "a given password 1", reset["password"], PASSWORD):
        assert secret not in dumped


# --- branches ------------------------------------------------------------------------------


async def test_branches_are_created_changed_and_deleted_when_unused(
    harness: Harness, admin: aiohttp.ClientSession
) -> None:
    db = harness.app[DATABASE]
    status, created = await call(
        admin, harness, "POST", "/branches", {"name": "Mitte", "region": "Berlin"}
    )
    assert status == 201, created
    mitte = created["branch"]["id"]
    assert created["branch"]["booths"] == 0
    _, pankow = await call(admin, harness, "POST", "/branches", {"name": "Pankow", "region": "B"})
    status, changed = await call(
        admin, harness, "PATCH", f"/branches/{mitte}", {"name": "Zentrum", "region": "Brandenburg"}
    )
    assert status == 200, changed
    assert (changed["branch"]["name"], changed["branch"]["region"]) == ("Zentrum", "Brandenburg")

    booth, _ = await create_booth(db, "Booth 1")
    await set_booth_branch(db, booth.id, mitte)
    status, listed = await call(admin, harness, "GET", "/branches")
    assert [(b["name"], b["booths"]) for b in listed["branches"]] == [("Pankow", 0), ("Zentrum", 1)]

    status, problem = await call(admin, harness, "DELETE", f"/branches/{mitte}")
    assert status == 409
    assert "still in use by 1 booth(s)" in problem["detail"]
    pankow_id = pankow["branch"]["id"]
    assert (await call(admin, harness, "DELETE", f"/branches/{pankow_id}"))[0] == 200
    assert (await call(admin, harness, "DELETE", f"/branches/{pankow_id}"))[0] == 404
    _, listed = await call(admin, harness, "GET", "/branches")
    assert [b["name"] for b in listed["branches"]] == ["Zentrum"]
    assert await _audit_actions(harness) == [
        "branch.delete",
        "branch.update",
        "branch.create",
        "branch.create",
    ]


async def test_a_branch_with_appointments_cannot_be_deleted(
    harness: Harness, admin: aiohttp.ClientSession
) -> None:
    db = harness.app[DATABASE]
    _, created = await call(admin, harness, "POST", "/branches", {"name": "Mitte", "region": "B"})
    branch_id = created["branch"]["id"]
    advisor = await create_user(db, username="alice", password=PASSWORD, role="advisor")
    await create_appointment(
        db,
        advisor_id=advisor.id,
        starts_at=datetime.now(UTC) + timedelta(hours=2),
        duration_minutes=30,
        channel="booth",
        branch_id=branch_id,
    )
    status, problem = await call(admin, harness, "DELETE", f"/branches/{branch_id}")
    assert status == 409 and "1 appointment(s)" in problem["detail"]
    _, listed = await call(admin, harness, "GET", "/branches")
    assert [(b["name"], b["appointments"]) for b in listed["branches"]] == [("Mitte", 1)]


@pytest.mark.parametrize(
    ("method", "body", "status", "words"),
    [
        ("POST", {"name": "Mitte", "region": "Berlin"}, 409, "already exists"),
        ("POST", {"name": "  ", "region": "Berlin"}, 400, "must not be empty"),
        ("POST", {"name": "X", "region": "R", "booths": 1}, 400, "booths"),
        ("POST", {"name": "X" * 101, "region": "R"}, 400, "name"),
        ("POST", {"name": "X"}, 400, "region"),
        ("PATCH", {}, 400, "nothing to change"),
        ("PATCH", {"name": "Pankow"}, 409, "already exists"),
        ("PATCH", {"region": "\n"}, 400, "must not be empty"),
    ],
)
async def test_bad_branches_are_refused_and_change_nothing(
    harness: Harness,
    admin: aiohttp.ClientSession,
    method: str,
    body: dict[str, Any],
    status: int,
    words: str,
) -> None:
    _, mitte = await call(admin, harness, "POST", "/branches", {"name": "Mitte", "region": "B"})
    await call(admin, harness, "POST", "/branches", {"name": "Pankow", "region": "B"})
    before = await call(admin, harness, "GET", "/branches")
    path = "/branches" if method == "POST" else f"/branches/{mitte['branch']['id']}"
    got, problem = await call(admin, harness, method, path, body)
    assert got == status, problem
    assert words in problem["detail"].lower(), problem
    assert await call(admin, harness, "GET", "/branches") == before


# --- topics --------------------------------------------------------------------------------


async def test_topics_are_renamed_and_switched_off_and_on(
    harness: Harness, admin: aiohttp.ClientSession
) -> None:
    _, passports = await call(admin, harness, "POST", "/topics", {"name": "Passports"})
    await call(admin, harness, "POST", "/topics", {"name": "Visas"})
    path = f"/topics/{passports['id']}"
    status, changed = await call(admin, harness, "PATCH", path, {"name": "ID cards"})
    assert (status, changed["name"], changed["active"]) == (200, "ID cards", True)
    status, changed = await call(admin, harness, "PATCH", path, {"active": False})
    assert (status, changed["active"]) == (200, False)

    await harness.add_advisor("alice")
    alice = await harness.login("alice")
    try:
        _, offered = await call(alice, harness, "GET", "/topics")
    finally:
        await alice.close()
    assert [t["name"] for t in offered["topics"]] == ["Visas"]
    _, everything = await call(admin, harness, "GET", "/topics")
    assert [(t["name"], t["active"]) for t in everything["topics"]] == [
        ("ID cards", False),
        ("Visas", True),
    ]

    for body, status, words in [
        ({}, 400, "nothing to change"),
        ({"name": "Visas"}, 409, "already exists"),
        ({"name": "Visas", "active": True}, 409, "already exists"),  # nothing half-done
        ({"active": "yes"}, 400, "active"),
    ]:
        got, problem = await call(admin, harness, "PATCH", path, body)
        assert got == status and words in problem["detail"].lower(), (body, problem)
    assert (await call(admin, harness, "PATCH", f"/topics/{new_id()}", {"active": True}))[0] == 404
    _, after = await call(admin, harness, "GET", "/topics")
    assert after == everything
    events = await list_audit(harness.app[DATABASE])
    assert [e.action for e in events][:2] == ["topic.update", "topic.update"]
    assert json.loads(events[0].detail or "") == {"active": False, "fields": ["active"]}


async def test_topics_have_a_name_per_language(
    harness: Harness, admin: aiohttp.ClientSession
) -> None:
    names = {"de": "Wohngeld", "ar": "إعانة السكن", "tr": " "}  # blank: no Turkish name
    status, topic = await call(
        admin, harness, "POST", "/topics", {"name": "Housing benefit", "names": names}
    )
    assert status == 201, topic
    assert topic["names"] == {"de": "Wohngeld", "ar": "إعانة السكن"}
    path = f"/topics/{topic['id']}"
    status, changed = await call(admin, harness, "PATCH", path, {"names": {"uk": "Житлова"}})
    assert (status, changed["names"], changed["name"]) == (
        200,
        {"uk": "Житлова"},
        "Housing benefit",
    )
    for body, words in [
        ({"names": {"xx": "Name"}}, "use one of de, en, tr, uk, ru, ar"),
        ({"names": {"de": "a" * 101}}, "at most 100"),
        ({"names": {"de": "Zeile\nzwei"}}, "control characters"),
    ]:
        status, problem = await call(admin, harness, "PATCH", path, body)
        assert status == 400 and words in problem["detail"], (body, problem)
    await call(admin, harness, "PATCH", path, {"names": {"ar": "إعانة السكن"}})

    # A booth and a walk-in's page get the names too.
    credential = await harness.add_booth("Names booth")
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {credential}"}) as booth:
        _, offered = await call(booth, harness, "GET", "/topics")
    assert offered["topics"] == [
        {
            "id": topic["id"],
            "name": "Housing benefit",
            "names": {"ar": "إعانة السكن"},
            "active": True,
        }
    ]
    async with aiohttp.ClientSession() as citizen:
        _, walk_in = await call(citizen, harness, "POST", "/walk-in", {})
    assert walk_in["topics"][0]["names"] == {"ar": "إعانة السكن"}


# --- settings and housekeeping -------------------------------------------------------------


async def test_audit_retention_is_set_checked_and_reset(
    harness: Harness, admin: aiohttp.ClientSession
) -> None:
    status, settings = await call(admin, harness, "GET", "/settings")
    assert status == 200
    assert settings == {
        "audit_retention_days": 90,
        "audit_retention_source": "configuration",
        "audit_retention_configured": 90,
    }
    status, settings = await call(admin, harness, "PUT", "/settings", {"audit_retention_days": 30})
    assert status == 200, settings
    assert settings["audit_retention_days"] == 30
    assert settings["audit_retention_source"] == "setting"

    for bad in (0, 3651, -5, "30", 1.5, True, {}):
        body = {"audit_retention_days": bad} if bad != {} else {}
        status, problem = await call(admin, harness, "PUT", "/settings", body)
        assert status == 400, (bad, problem)
        assert problem["detail"].startswith("audit_retention_days"), problem
    status, problem = await call(
        admin, harness, "PUT", "/settings", {"audit_retention_days": 30, "x": 1}
    )
    assert status == 400
    assert (await call(admin, harness, "GET", "/settings"))[1]["audit_retention_days"] == 30

    status, settings = await call(
        admin, harness, "PUT", "/settings", {"audit_retention_days": None}
    )
    assert settings["audit_retention_source"] == "configuration"
    events = await list_audit(harness.app[DATABASE])
    assert [(e.action, e.detail) for e in events] == [
        ("settings.update", '{"audit_retention_days":null}'),
        ("settings.update", '{"audit_retention_days":30}'),
    ]


async def _old_event(harness: Harness, days: int) -> str:
    event = AuditEvent(
        id=new_id(),
        at=datetime.now(UTC) - timedelta(days=days),
        actor_kind="system",
        actor_id=None,
        action=f"test.{days}",
    )
    async with harness.app[DATABASE].session() as session:
        session.add(event)
        await session.commit()
    return event.action


async def test_housekeeping_uses_the_stored_retention(
    harness: Harness, admin: aiohttp.ClientSession
) -> None:
    for days in (5, 20, 100):
        await _old_event(harness, days)
    # The configuration keeps 90 days.
    await housekeeping(harness.app)
    assert sorted(a for a in await _audit_actions(harness) if a.startswith("test.")) == [
        "test.20",
        "test.5",
    ]
    await call(admin, harness, "PUT", "/settings", {"audit_retention_days": 10})
    await housekeeping(harness.app)
    assert [a for a in await _audit_actions(harness) if a.startswith("test.")] == ["test.5"]
    assert "settings.update" in await _audit_actions(harness)


# --- the audit log -------------------------------------------------------------------------


async def test_the_audit_log_is_paged_newest_first_and_filtered(
    harness: Harness, admin: aiohttp.ClientSession
) -> None:
    for name in ("a", "b", "c"):
        await call(admin, harness, "POST", "/branches", {"name": name, "region": "R"})
    await call(admin, harness, "POST", "/topics", {"name": "Passports"})
    _, everything = await call(admin, harness, "GET", "/audit")
    assert [e["action"] for e in everything["events"]] == [
        "topic.create",
        "branch.create",
        "branch.create",
        "branch.create",
    ]
    assert everything["next"] is None
    assert everything["events"][0]["actor_id"] == await _user_id(harness, "root")

    seen: list[str] = []
    path = "/audit?limit=3"
    while True:
        status, page = await call(admin, harness, "GET", path)
        assert status == 200, page
        seen += [e["id"] for e in page["events"]]
        if page["next"] is None:
            break
        path = f"/audit?limit=3&before={page['next']}"
    assert seen == [e["id"] for e in everything["events"]]

    _, branches = await call(admin, harness, "GET", "/audit?action=branch.create")
    assert len(branches["events"]) == 3
    _, topics = await call(admin, harness, "GET", "/audit?action=topic.*")
    assert [e["action"] for e in topics["events"]] == ["topic.create"]

    for query, words in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=x", "limit"),
        ("before=yesterday", "before"),
        ("before=2026-01-01T00:00:00", "before"),  # no zone
        ("action=DROP%20TABLE", "action filter"),
    ]:
        status, problem = await call(admin, harness, "GET", f"/audit?{query}")
        assert status == 400 and words in problem["detail"].lower(), (query, problem)
    _, older = await call(admin, harness, "GET", "/audit?before=2000-01-01T00:00:00Z")
    assert older["events"] == []
