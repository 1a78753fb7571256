"""Login, sessions and the HTTP surface of the server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import update

from server.app import housekeeping
from server.http import error_middleware
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


@contextlib.asynccontextmanager
async def _serving(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
    """A real server on 127.0.0.1 with the server's error middleware and ``handler`` at /."""
    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def test_a_client_gone_before_its_websocket_answer_is_no_server_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A load balancer that takes a busy node out closes its clients' connections, some of them
    # while the node is still working on the handshake: seen in a full test run as an
    # "unhandled error" with a traceback per connection, in a log whose errors the cluster
    # tests count.
    handled = asyncio.Event()

    async def late_handshake(request: web.Request) -> web.StreamResponse:
        try:
            for _ in range(500):  # until the client has gone
                if request.transport is None or request.transport.is_closing():
                    break
                await asyncio.sleep(0.01)
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            return ws
        finally:
            handled.set()

    caplog.set_level(logging.INFO, logger="server.http")
    async with _serving(late_handshake) as port:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await writer.drain()
        await asyncio.sleep(0.2)  # the handler is waiting
        writer.close()
        await asyncio.wait_for(handled.wait(), 10)
        await asyncio.sleep(0.1)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert any("went away" in r.getMessage() for r in caplog.records)


async def test_a_connection_reset_while_the_client_waits_is_still_a_server_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A reset of the server's own connection (to a service it calls) is not the client leaving.
    async def failing(request: web.Request) -> web.StreamResponse:
        raise ConnectionResetError("the service reset the connection")

    async with (
        _serving(failing) as port,
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/") as response,
    ):
        assert response.status == 500
        assert (await response.json())["detail"] == "the server failed; see its log"
    assert any(r.levelno == logging.ERROR for r in caplog.records)
