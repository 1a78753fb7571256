"""A user's own account: changing one's own password, and a generated password that must be
changed before anything else."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from server.keys import DATABASE
from server.storage import create_user, get_user_by_username, list_audit
from tests.server.conftest import PASSWORD, Harness

NEW_PASSWORD = "a new and much longer passphrase"


async def call(
    http: aiohttp.ClientSession, harness: Harness, method: str, path: str, body: Any = None
) -> tuple[int, dict[str, Any]]:
    kwargs = {} if body is None else {"json": body}
    async with http.request(method, harness.url("/api/v1" + path), **kwargs) as response:
        return response.status, await response.json(content_type=None)


async def _login(harness: Harness, username: str, password: str) -> aiohttp.ClientSession | None:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.post(
        harness.url("/api/v1/auth/login"), json={"username": username, "password": password}
    ) as response:
        if response.status == 200:
            return http
    await http.close()
    return None


async def test_a_user_changes_their_own_password_and_their_other_logins_end(
    harness: Harness,
) -> None:
    await harness.add_advisor("alice")
    here, elsewhere = await harness.login("alice"), await harness.login("alice")
    try:
        change = {"current_password": "not my password", "new_password": NEW_PASSWORD}
        status, problem = await call(here, harness, "POST", "/account/password", change)
        assert status == 400 and "not your current password" in problem["detail"]

        same = {"current_password": PASSWORD, "new_password": PASSWORD}
        status, problem = await call(here, harness, "POST", "/account/password", same)
        assert status == 400 and "different" in problem["detail"]
        weak = {"current_password": PASSWORD, "new_password": "short"}
        assert (await call(here, harness, "POST", "/account/password", weak))[0] == 400

        change = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
        status, body = await call(here, harness, "POST", "/account/password", change)
        assert status == 200, body
        # This browser stays logged in; the other login has ended.
        assert (await call(here, harness, "GET", "/me"))[0] == 200
        assert (await call(elsewhere, harness, "GET", "/me"))[0] == 401
    finally:
        await here.close()
        await elsewhere.close()

    assert await _login(harness, "alice", PASSWORD) is None
    again = await _login(harness, "alice", NEW_PASSWORD)
    assert again is not None
    await again.close()
    events = await list_audit(harness.app[DATABASE])
    assert [e.action for e in events] == ["user.password_change"]
    assert PASSWORD not in json.dumps([e.detail for e in events])


async def test_guessing_the_current_password_is_limited(harness: Harness) -> None:
    await harness.add_advisor("alice")
    http = await harness.login("alice")
    try:
        wrong = {"current_password": "guess", "new_password": NEW_PASSWORD}
        statuses = [
            (await call(http, harness, "POST", "/account/password", wrong))[0] for _ in range(6)
        ]
        assert statuses == [400] * 5 + [429]
        right = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
        status, problem = await call(http, harness, "POST", "/account/password", right)
        assert status == 429 and "try again in" in problem["detail"]
    finally:
        await http.close()


async def test_a_generated_password_must_be_changed_before_anything_else(
    harness: Harness,
) -> None:
    await create_user(harness.app[DATABASE], username="root", password=PASSWORD, role="admin")
    admin = await harness.login("root")
    try:
        status, created = await call(
            admin, harness, "POST", "/users", {"username": "bob", "role": "advisor"}
        )
        assert status == 201
        assert created["user"]["must_change_password"] is True
        generated = created["password"]
    finally:
        await admin.close()

    bob = await _login(harness, "bob", generated)
    assert bob is not None
    try:
        status, account = await call(bob, harness, "GET", "/account")
        assert (status, account["must_change_password"]) == (200, True)
        for method, path in [("GET", "/appointments"), ("GET", "/topics"), ("GET", "/ws")]:
            status, problem = await call(bob, harness, method, path)
            assert status == 403, (path, status)
            assert problem["must_change_password"] is True
            assert "choose your own password" in problem["detail"]

        change = {"current_password": generated, "new_password": NEW_PASSWORD}
        assert (await call(bob, harness, "POST", "/account/password", change))[0] == 200
        status, account = await call(bob, harness, "GET", "/account")
        assert (status, account["must_change_password"]) == (200, False)
        assert (await call(bob, harness, "GET", "/appointments"))[0] == 200
    finally:
        await bob.close()


async def test_a_password_reset_by_an_administrator_must_be_changed_too(
    harness: Harness,
) -> None:
    db = harness.app[DATABASE]
    await create_user(db, username="root", password=PASSWORD, role="admin")
    await harness.add_advisor("alice")
    alice = await get_user_by_username(db, "alice")
    assert alice is not None and not alice.must_change_password
    admin = await harness.login("root")
    try:
        status, body = await call(admin, harness, "POST", f"/users/{alice.id}/password")
        assert status == 200
    finally:
        await admin.close()
    after = await get_user_by_username(db, "alice")
    assert after is not None and after.must_change_password
    http = await _login(harness, "alice", body["password"])
    assert http is not None
    try:
        assert (await call(http, harness, "GET", "/topics"))[0] == 403
    finally:
        await http.close()


async def test_changing_the_password_closes_the_other_logins_sockets_not_this_ones(
    harness: Harness,
) -> None:
    await harness.add_advisor("alice")
    here, laptop = await harness.advisor("alice"), await harness.advisor("alice")
    booth = await harness.booth(await harness.add_booth("Booth A"))
    change = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    status, _ = await call(here.http, harness, "POST", "/account/password", change)
    assert status == 200

    while True:  # the laptop's workspace is closed at once
        frame = await laptop.ws.receive(timeout=5)
        if frame.type is aiohttp.WSMsgType.CLOSE:
            break
    assert (frame.data, frame.extra) == (4003, "password changed")
    # This browser's workspace carries on with its new login: it can still take a call.
    await booth.send(type="call_request")
    session_id = (await booth.receive_type("call_waiting"))["session_id"]
    await here.send(type="call_accept", session_id=session_id)
    assert (await here.receive_type("call_started"))["session_id"] == session_id
