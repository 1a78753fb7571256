"""Login, sessions and the HTTP surface of the server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
from sqlalchemy import update

from server.app import housekeeping
from server.keys import DATABASE
from server.storage import AuditEvent, list_audit, record_audit
from tests.server.conftest import PASSWORD, Harness


async def test_login_sets_a_strict_http_only_cookie_and_me_works(harness: Harness) -> None:
    await harness.add_advisor("alice")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(harness.url("/api/v1/me")) as response:
            assert response.status == 401
        async with http.post(
            harness.url("/api/v1/auth/login"), json={"username": "Alice", "password": PASSWORD}
        ) as response:
            assert response.status == 200
            cookie = response.headers["Set-Cookie"]
            assert "HttpOnly" in cookie
            assert "SameSite=Strict" in cookie
        async with http.get(harness.url("/api/v1/me")) as response:
            assert response.status == 200
            assert (await response.json())["name"] == "alice"
        async with http.post(harness.url("/api/v1/auth/logout"), json={}) as response:
            assert response.status == 200
        async with http.get(harness.url("/api/v1/me")) as response:
            assert response.status == 401


async def test_wrong_password_then_lockout(harness: Harness) -> None:
    await harness.add_advisor("alice")
    async with aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(12):
            async with http.post(
                harness.url("/api/v1/auth/login"), json={"username": "alice", "password": "wrong!"}
            ) as response:
                statuses.append(response.status)
                body = await response.json()
        assert statuses[:10] == [401] * 10
        assert statuses[10:] == [429, 429]
        assert "try again in" in body["detail"]
        # Even the right password waits out the lockout.
        async with http.post(
            harness.url("/api/v1/auth/login"), json={"username": "alice", "password": PASSWORD}
        ) as response:
            assert response.status == 429


async def test_bad_login_bodies_are_clear_errors(harness: Harness) -> None:
    async with aiohttp.ClientSession() as http:
        for body in (b"not json", b"[]", b'{"username": 1, "password": 2}'):
            async with http.post(
                harness.url("/api/v1/auth/login"),
                data=body,
                headers={"Content-Type": "application/json"},
            ) as response:
                assert response.status == 400
                problem = await response.json()
                assert problem["status"] == 400 and problem["detail"]


async def test_cross_origin_login_is_refused(harness: Harness) -> None:
    await harness.add_advisor("alice")
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            harness.url("/api/v1/auth/login"),
            json={"username": "alice", "password": PASSWORD},
            headers={"Origin": "https://evil.example"},
        ) as response,
    ):
        assert response.status == 403


async def test_pages_carry_security_headers_and_load_nothing_external(harness: Harness) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(harness.url("/advisor/")) as response:
            assert response.status == 200
            csp = response.headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in csp
            assert "script-src 'self'" in csp
            html = await response.text()
        assert "http://" not in html and "https://" not in html
        for asset in ("/static/advisor/app.js", "/static/advisor/style.css"):
            async with http.get(harness.url(asset)) as response:
                assert response.status == 200
                text = await response.text()
                assert "http://" not in text and "https://" not in text, asset
        async with http.get(harness.url("/static/../server.toml")) as response:
            assert response.status in (403, 404)


async def test_housekeeping_purges_audit_events_past_retention(harness: Harness) -> None:
    db = harness.app[DATABASE]
    old = await record_audit(db, actor_kind="system", actor_id=None, action="test.old")
    await record_audit(db, actor_kind="system", actor_id=None, action="test.new")
    async with db.session() as session, session.begin():
        await session.execute(
            update(AuditEvent)
            .where(AuditEvent.id == old.id)
            .values(at=datetime.now(UTC) - timedelta(days=91))
        )
    await housekeeping(harness.app)
    assert [e.action for e in await list_audit(db)] == ["test.new"]
