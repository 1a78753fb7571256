"""The booth's link (kiosk/link.py) against a real WebSocket server in the test: messages go
out in the order they were sent, through one writer; none go out while offline; a closing link
writes what was sent before it closes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

from kiosk.identity import ServerAccess
from kiosk.link import LinkState, ServerLink
from protocol import CallCancel, Hangup, Heartbeat


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
