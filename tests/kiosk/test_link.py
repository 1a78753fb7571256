"""The booth's link (kiosk/link.py) against a real WebSocket server in the test: messages go
out in the order they were sent, through one writer; none go out while offline; a closing link
writes what was sent before it closes; the booth heartbeats as often as the server's welcome
asks unless its own configuration says otherwise; told the network is back, a link that is down
tries again at once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

import kiosk.link
from kiosk.identity import ServerAccess
from kiosk.link import LinkState, ServerLink
from protocol import CallCancel, Hangup, Heartbeat, Role, Welcome, encode


async def test_messages_go_out_in_order_and_a_closing_link_writes_them_first(
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]],
) -> None:
    received: list[str] = []
    closed = asyncio.Event()

    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for frame in ws:
            if frame.type is WSMsgType.TEXT:
                kind = json.loads(frame.data)["type"]
                if kind != "heartbeat":
                    received.append(kind)
        closed.set()
        return ws

    app = web.Application()
    app.router.add_get("/api/v1/ws", socket)
    server = await aiohttp_server(app)
    url = str(server.make_url("/api/v1/ws")).replace("http", "ws", 1)
    states: list[LinkState] = []
    link = ServerLink(
        url=url,
        access=ServerAccess(server_url=str(server.make_url("/")), credential="b.s"),
        on_message=lambda message: None,
        on_state=states.append,
        heartbeat=lambda: Heartbeat(state="idle"),
        heartbeat_seconds=30.0,
    )
    assert not link.send(CallCancel(session_id="s0"))  # offline: refused, not queued
    task = asyncio.create_task(link.run())
    for _ in range(200):
        if link.state is LinkState.ONLINE:
            break
        await asyncio.sleep(0.02)
    assert link.state is LinkState.ONLINE
    for number in range(20):
        assert link.send(CallCancel(session_id=f"s{number}"))
    assert link.send(Hangup(session_id="s1"))
    await link.close()  # at once: what was sent goes out before the close frame
    await asyncio.wait_for(closed.wait(), 5)
    await asyncio.wait_for(task, 5)
    assert received == ["call_cancel"] * 20 + ["hangup"]
    assert states[-1] is LinkState.CLOSED


async def _heartbeats_in(
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]],
    *,
    asked: float,
    configured: float | None,
    seconds: float,
) -> tuple[int, float]:
    """Heartbeats a link sends in ``seconds`` to a server whose welcome asks for ``asked``."""
    beats: list[float] = []

    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        welcome = Welcome(
            participant_id="p1", role=Role.BOOTH, name="booth", heartbeat_seconds=asked
        )
        await ws.send_str(encode(welcome))
        async for frame in ws:
            if frame.type is WSMsgType.TEXT and json.loads(frame.data)["type"] == "heartbeat":
                beats.append(asyncio.get_running_loop().time())
        return ws

    app = web.Application()
    app.router.add_get("/api/v1/ws", socket)
    server = await aiohttp_server(app)
    link = ServerLink(
        url=str(server.make_url("/api/v1/ws")).replace("http", "ws", 1),
        access=ServerAccess(server_url=str(server.make_url("/")), credential="b.s"),
        on_message=lambda message: None,
        on_state=lambda state: None,
        heartbeat=lambda: Heartbeat(state="idle"),
        heartbeat_seconds=configured,
    )
    task = asyncio.create_task(link.run())
    await asyncio.sleep(seconds)
    interval = link.heartbeat_seconds
    await link.close()
    await asyncio.wait_for(task, 5)
    return len(beats), interval


async def test_the_booth_heartbeats_as_often_as_the_server_asks(
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]],
) -> None:
    # Unconfigured: 15 s until the welcome, then the server's interval (held to >= 1 s).
    count, interval = await _heartbeats_in(aiohttp_server, asked=1.0, configured=None, seconds=0.5)
    assert interval == 1.0
    count, interval = await _heartbeats_in(aiohttp_server, asked=0.2, configured=None, seconds=3.6)
    assert interval == 1.0  # a server asking for more than one a second is not followed
    # The first at once; the next after the default's 15 s would be none: the welcome's 1 s.
    assert count >= 3, count


async def test_a_configured_heartbeat_wins_over_the_servers(
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]],
) -> None:
    count, interval = await _heartbeats_in(aiohttp_server, asked=15.0, configured=0.25, seconds=1.6)
    assert interval == 0.25
    assert count >= 5, count


async def test_the_network_back_ends_a_hanging_attempt_and_the_pause_after_a_failure(
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A pause that would outlast the test: only retry_now() can bring the link back in time.
    monkeypatch.setattr(kiosk.link, "URGENT_RETRY_SECONDS", 60.0)
    monkeypatch.setattr(kiosk.link, "STALE_ATTEMPT_SECONDS", 0.0)
    attempts: list[int] = []
    hang, changed = asyncio.Event(), asyncio.Event()

    async def socket(request: web.Request) -> web.StreamResponse:
        attempts.append(len(attempts) + 1)
        changed.set()
        if len(attempts) == 1:
            await hang.wait()  # a connection begun while the network was down: never answered
        if len(attempts) == 2:
            return web.Response(status=503)  # the server is still starting
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for _ in ws:
            pass
        return ws

    app = web.Application()
    app.router.add_get("/api/v1/ws", socket)
    server = await aiohttp_server(app)
    states: list[LinkState] = []
    link = ServerLink(
        url=str(server.make_url("/api/v1/ws")).replace("http", "ws", 1),
        access=ServerAccess(server_url=str(server.make_url("/")), credential="b.s"),
        on_message=lambda message: None,
        on_state=lambda state: (states.append(state), changed.set()),
        heartbeat=lambda: Heartbeat(state="in_call"),
        heartbeat_seconds=30.0,
    )
    link.urgent = True
    task = asyncio.create_task(link.run())

    async def until(check: Callable[[], bool]) -> None:
        async with asyncio.timeout(5):
            changed.clear()
            while not check():
                await changed.wait()
                changed.clear()

    await until(lambda: len(attempts) == 1)
    link.retry_now()  # the keeper heard a relay: the hanging attempt is given up
    await until(lambda: len(attempts) == 2 and link.state is LinkState.OFFLINE)
    link.retry_now()  # and the pause after the 503 is cut short
    await until(lambda: link.state is LinkState.ONLINE)
    assert len(attempts) == 3
    link.retry_now()  # online: nothing to do
    await link.close()
    hang.set()
    await asyncio.wait_for(task, 5)
