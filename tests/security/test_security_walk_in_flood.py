"""One walk-in pass cannot flood the advisors. The abuse: 1,000 sockets opened on one pass each
sent ``call_request``; every advisor received 95.6 MB of queue updates (the full list on every
change). Now a pass has one live connection and one waiting call, queue updates are coalesced,
and citizens' browsers waiting at once are capped per address and in all."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from server.keys import SWITCHBOARD
from server.switchboard import SessionState
from tests.security.conftest import Harness, MakeHarness, Peer

FLOOD = 1000
#: The flood's sockets are opened this many at a time, each sending its call request.
WORKERS = 10


async def _walk_in_pass(harness: Harness, address: str = "127.0.0.1") -> aiohttp.ClientSession:
    http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(local_addr=(address, 0)),
        cookie_jar=aiohttp.CookieJar(unsafe=True),
    )
    async with http.post(harness.url("/api/v1/walk-in"), json={}) as response:
        assert response.status == 200, await response.text()
    return http


async def _received_bytes(
    peer: Peer, during: Any, quiet: float = 1.0
) -> tuple[int, list[dict[str, Any]]]:
    """What ``peer`` receives while ``during`` runs and until nothing more comes for
    ``quiet`` seconds: bytes, and the queue after each update."""
    total, queues = 0, []
    task = asyncio.ensure_future(during)
    while True:
        try:
            frame = await peer.ws.receive(timeout=quiet)
        except TimeoutError:
            if task.done():
                await task
                return total, queues
            continue
        assert frame.type is aiohttp.WSMsgType.TEXT, frame
        total += len(frame.data.encode())
        if peer.queue.apply(frame.json()):
            queues.append({"waiting": peer.queue.waiting})


async def _first_reply(peer: Peer) -> dict[str, Any]:
    """The answer to a call request: call_waiting or an error."""
    while True:
        message = await peer.receive()
        if message["type"] in ("call_waiting", "error"):
            return message


async def test_security_a_thousand_sockets_on_one_pass_cannot_flood_the_queue(
    harness: Harness,
) -> None:
    await harness.add_advisor("alice")
    advisor = await harness.advisor("alice")
    await advisor.receive_queue()
    http = await _walk_in_pass(harness)

    async def one() -> None:
        ws = await http.ws_connect(harness.url("/api/v1/ws"))
        await ws.send_json({"v": 1, "type": "call_request"})
        async for frame in ws:  # until its call waits, it is refused, or it is replaced
            if frame.type is aiohttp.WSMsgType.TEXT and frame.json()["type"] in (
                "call_waiting",
                "error",
            ):
                break
        # Left open: the next socket on the same pass replaces it.

    async def worker() -> None:
        for _ in range(FLOOD // WORKERS):
            await one()

    received, queues = await _received_bytes(
        advisor, asyncio.gather(*(worker() for _ in range(WORKERS)))
    )
    switchboard = harness.app[SWITCHBOARD]
    waiting = [s for s in switchboard.sessions.values() if s.state is SessionState.WAITING]
    print(
        f"\n{FLOOD} sockets on one pass: the advisor received {received / 1000:.1f} kB in "
        f"{len(queues)} queue updates; {len(waiting)} call(s) waiting, "
        f"{len(switchboard._endings)} taken over by a newer socket"
    )
    assert len(waiting) <= 1
    assert max(len(q["waiting"]) for q in queues) <= 1
    assert received < 200_000  # was 95.6 MB
    # The citizen's own next page still works: no call was left behind on a closed socket.
    ws = await http.ws_connect(harness.url("/api/v1/ws"))
    last = Peer(http, ws)
    harness.peers.append(last)
    await last.send(type="call_request")
    assert (await _first_reply(last))["type"] == "call_waiting"
    waiting = [s for s in switchboard.sessions.values() if s.state is SessionState.WAITING]
    assert [s.caller for s in waiting] == [switchboard.connections[last_id(switchboard)]]


def last_id(switchboard: Any) -> str:
    (conn,) = [c for c in switchboard.connections.values() if c.role == "citizen"]
    return str(conn.participant_id)


async def test_security_walk_ins_from_one_address_are_capped(harness: Harness) -> None:
    passes = [await _walk_in_pass(harness, "127.0.5.1") for _ in range(4)]
    replies = []
    for http in passes:
        ws = await http.ws_connect(harness.url("/api/v1/ws"))
        harness.peers.append(Peer(http, ws))
        await harness.peers[-1].send(type="call_request")
        while (message := await harness.peers[-1].receive())["type"] not in (
            "call_waiting",
            "error",
        ):
            pass
        replies.append(message)
    assert [r["type"] for r in replies] == ["call_waiting"] * 3 + ["error"]
    assert replies[-1]["code"] == "queue_full"
    assert "from your network" in replies[-1]["message"]
    # Someone elsewhere may still wait.
    other = await _walk_in_pass(harness, "127.0.5.2")
    ws = await other.ws_connect(harness.url("/api/v1/ws"))
    harness.peers.append(Peer(other, ws))
    await harness.peers[-1].send(type="call_request")
    assert await harness.peers[-1].receive_type("call_waiting")


async def test_security_the_walk_in_queue_has_a_total_cap(make_harness: MakeHarness) -> None:
    harness = await make_harness(walk_in_queue_limit=2)
    codes = []
    for n in range(3):
        http = await _walk_in_pass(harness, f"127.0.6.{n + 1}")
        ws = await http.ws_connect(harness.url("/api/v1/ws"))
        peer = Peer(http, ws)
        harness.peers.append(peer)
        await peer.send(type="call_request")
        message = await _first_reply(peer)
        codes.append(message.get("code", message["type"]))
    assert codes == ["call_waiting", "call_waiting", "queue_full"]


async def test_security_a_burst_of_changes_is_one_queue_update(harness: Harness) -> None:
    await harness.add_advisor("alice")
    advisor = await harness.advisor("alice")
    await advisor.receive_queue()
    booths = [await harness.booth(await harness.add_booth(f"Booth {n}")) for n in range(50)]
    _, queues = await _received_bytes(
        advisor, asyncio.gather(*(booth.send(type="call_request") for booth in booths))
    )
    print(f"\n50 booths asking at once: {len(queues)} queue updates to the advisor")
    assert len(queues[-1]["waiting"]) == 50
    assert len(queues) <= 10
