"""Three server nodes behind HAProxy, on one PostgreSQL database and one server key: requests
reach every node, a login made on one node is good on the others, a node killed with
``kill -9`` is taken out within HAProxy's check interval while requests go on, a signalling
socket on it is closed and a new one lands on a live node, and the node started again is taken
back; a node frozen for a moment (answering its checks late) is not taken out. The timings are
shown in the run's output."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.cluster.haproxy import CHECK_SECONDS, CHECK_TIMEOUT_SECONDS, FALL, RISE
from tests.cluster.nodes import Cluster
from tests.report import show

pytestmark = pytest.mark.cluster

PASSWORD = "correct horse battery staple"


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """Lines shown in the run's output after the test, passed or not."""
    lines: list[str] = []
    yield lines
    show(request.config, [f"{request.node.name}: {line}" for line in lines])


def _jar() -> aiohttp.CookieJar:
    return aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1, an address


async def _health(http: aiohttp.ClientSession, cluster: Cluster) -> str:
    """Ask the cluster's health through HAProxy; the node that answered."""
    async with http.get(f"{cluster.url}/api/v1/health") as response:
        assert response.status == 200
        body = await response.json()
    assert body["status"] == "ok"
    node: str = body["node"]
    return node


async def _login(http: aiohttp.ClientSession, cluster: Cluster, username: str) -> None:
    async with http.post(
        f"{cluster.url}/api/v1/auth/login", json={"username": username, "password": PASSWORD}
    ) as response:
        assert response.status == 200, await response.text()


async def _signalling_socket(
    http: aiohttp.ClientSession, cluster: Cluster
) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any], str]:
    """A signalling socket through HAProxy (the session logged in): the socket, its welcome
    and the node that holds it."""
    before = cluster.haproxy.current()
    socket = await http.ws_connect(f"{cluster.url}/api/v1/ws")
    welcome: dict[str, Any] = await socket.receive_json(timeout=5)
    assert welcome["type"] == "welcome"
    now = cluster.haproxy.current()
    holder = next(name for name in now if now[name] > before[name])
    return socket, welcome, holder


def _who_served(cluster: Cluster, before: dict[str, int]) -> str:
    """The one node HAProxy gave a request since ``before`` (its counters)."""
    after = cluster.haproxy.served()
    served = [name for name in after if after[name] > before[name]]
    assert len(served) == 1, f"requests went to {served} ({before} -> {after})"
    return served[0]


async def test_cluster_spreads_requests_over_all_nodes(
    cluster: Cluster, figures: list[str]
) -> None:
    async with aiohttp.ClientSession() as http:
        started = time.monotonic()
        answered = Counter([await _health(http, cluster) for _ in range(9)])
        seconds = time.monotonic() - started
    # Round robin: three each.
    assert answered == {"node1": 3, "node2": 3, "node3": 3}
    figures.append(f"9 requests through HAProxy in {seconds * 1000:.0f} ms: {dict(answered)}")
    figures.append(f"cluster started in {cluster.timings['all']:.1f} s")


async def test_cluster_login_on_one_node_counts_on_the_others(
    cluster: Cluster, figures: list[str]
) -> None:
    await cluster.add_advisor("alice", PASSWORD)
    async with aiohttp.ClientSession(cookie_jar=_jar()) as http:
        before = cluster.haproxy.served()
        await _login(http, cluster, "alice")
        logged_in_on = _who_served(cluster, before)
        served_me = []
        for _ in range(3):
            before = cluster.haproxy.served()
            async with http.get(f"{cluster.url}/api/v1/me") as response:
                assert response.status == 200, await response.text()
                assert (await response.json())["name"] == "alice"
            served_me.append(_who_served(cluster, before))
    # The login's session row and the key are shared: every node knows the cookie.
    assert set(served_me) == {"node1", "node2", "node3"}
    figures.append(f"logged in on {logged_in_on}; /me answered by {served_me}")


async def test_cluster_forwarded_for_names_the_client_not_what_it_claims(
    cluster: Cluster,
) -> None:
    await cluster.add_advisor("bob", PASSWORD)
    async with aiohttp.ClientSession(cookie_jar=_jar()) as http:
        before = cluster.haproxy.served()
        async with http.post(
            f"{cluster.url}/api/v1/auth/login",
            json={"username": "bob", "password": PASSWORD},
            headers={"X-Forwarded-For": "198.51.100.7"},
        ) as response:
            assert response.status == 200, await response.text()
        node = cluster.node(_who_served(cluster, before))
    # HAProxy dropped the client's header and named the client (127.0.0.1), not itself
    # (127.0.0.2): the node trusts X-Forwarded-For from HAProxy's address only.
    log = node.log.read_text()
    assert "user bob logged in from 127.0.0.1" in log
    assert "198.51.100.7" not in log


async def test_cluster_killed_node_is_marked_down_and_requests_go_on(
    cluster: Cluster, figures: list[str]
) -> None:
    victim = cluster.nodes[1]
    failures: list[tuple[float, str]] = []
    answered: list[tuple[float, str]] = []
    stop = asyncio.Event()

    async def keep_asking(http: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            try:
                answered.append((time.monotonic(), await _health(http, cluster)))
            except (aiohttp.ClientError, AssertionError) as exc:
                failures.append((time.monotonic(), f"{type(exc).__name__}: {exc}"))
            await asyncio.sleep(0.01)

    async with aiohttp.ClientSession() as http:
        asker = asyncio.create_task(keep_asking(http))
        await asyncio.sleep(0.5)
        killed_at = time.monotonic()
        down_seconds = await asyncio.to_thread(cluster.kill, victim)
        marked_down_at = time.monotonic()
        await asyncio.sleep(1.0)
        stop.set()
        await asker

    during = [node for at, node in answered if killed_at <= at < marked_down_at]
    after = [node for at, node in answered if at >= marked_down_at]
    figures.append(
        f"kill -9 {victim.node_id}: DOWN after {down_seconds * 1000:.0f} ms "
        f"(checks every {CHECK_SECONDS * 1000:.0f} ms, fall {FALL}); {len(answered)} requests "
        f"answered, {len(during)} between the kill and DOWN, {len(failures)} failed: "
        f"{[what for _, what in failures]}"
    )
    assert down_seconds <= cluster.haproxy.longest_down_seconds
    # A request the dead node refused is sent to another one (option redispatch); only the
    # one request under way on the node when it died can fail (they are sent one at a time).
    assert len(failures) <= 1
    assert all(killed_at <= at < marked_down_at for at, _ in failures)
    assert victim.node_id not in after
    assert set(after) == {"node1", "node3"}


async def test_cluster_websocket_on_a_killed_node_moves_to_a_live_one(
    cluster: Cluster, figures: list[str]
) -> None:
    await cluster.add_advisor("carol", PASSWORD)
    async with aiohttp.ClientSession(cookie_jar=_jar()) as http:
        await _login(http, cluster, "carol")
        first, welcome, holder = await _signalling_socket(http, cluster)
        victim = cluster.node(holder)

        killed_at = time.monotonic()
        await asyncio.to_thread(victim.kill)
        # What the node sent before it died (the advisor's queue) comes first, then the end.
        async with asyncio.timeout(10):
            async for _ in first:
                pass
        closed_seconds = time.monotonic() - killed_at
        assert first.closed
        await first.close()

        # At once, before HAProxy has marked the node DOWN: a refused connection goes on to
        # a live node.
        second = await http.ws_connect(f"{cluster.url}/api/v1/ws")
        again = await second.receive_json(timeout=5)
        reconnected_seconds = time.monotonic() - killed_at
        assert again["type"] == "welcome"
        assert again["participant_id"] != welcome["participant_id"]
        now = cluster.haproxy.current()
        assert now[holder] == 0
        assert sum(now.values()) == 1
        await second.close()
    figures.append(
        f"socket on {holder}: closed {closed_seconds * 1000:.0f} ms after kill -9, "
        f"a new one welcomed by a live node {reconnected_seconds * 1000:.0f} ms after"
    )


async def test_cluster_a_node_busy_for_a_moment_keeps_its_sockets(
    cluster: Cluster, figures: list[str]
) -> None:
    # A node that answers its checks late for a moment (its loop busy with a burst of logins on
    # a loaded machine) is not taken out: taking it out closes every socket it holds (seen in a
    # full test run: 69 booths thrown off one node, "Layer7 timeout" after 249 ms, twice). Here
    # the node is frozen (SIGSTOP) for a second, three times: longer than FALL checks' worth of
    # ``inter``, shorter than ``timeout check``.
    await cluster.add_advisor("erin", PASSWORD)
    async with aiohttp.ClientSession(cookie_jar=_jar()) as http:
        await _login(http, cluster, "erin")
        socket, _, holder = await _signalling_socket(http, cluster)
        node = cluster.node(holder)
        assert node.process is not None
        log_before = cluster.haproxy.log.read_text(errors="replace")
        for _ in range(3):
            os.kill(node.process.pid, signal.SIGSTOP)
            try:
                await asyncio.sleep(1.0)
            finally:
                os.kill(node.process.pid, signal.SIGCONT)
            await asyncio.sleep(0.5)
        await asyncio.sleep(2 * CHECK_SECONDS)
        log_after = cluster.haproxy.log.read_text(errors="replace")
        taken_out = [
            line
            for line in log_after[len(log_before) :].splitlines()
            if f"/{holder} is DOWN" in line
        ]
        assert taken_out == [], taken_out
        assert cluster.haproxy.status(holder) == "UP"
        assert not socket.closed
        assert cluster.haproxy.current()[holder] >= 1
        await socket.close()
    figures.append(
        f"{holder} frozen three times for 1.0 s (checks every {CHECK_SECONDS * 1000:.0f} ms, "
        f"fall {FALL}, timeout check {CHECK_TIMEOUT_SECONDS} s): kept UP, its socket open"
    )


async def test_cluster_node_started_again_is_up_again(cluster: Cluster, figures: list[str]) -> None:
    victim = cluster.nodes[2]
    down_seconds = await asyncio.to_thread(cluster.kill, victim)
    up_seconds = await asyncio.to_thread(cluster.restart, victim)
    async with aiohttp.ClientSession() as http:
        answered = Counter([await _health(http, cluster) for _ in range(6)])
    assert answered[victim.node_id] == 2
    figures.append(
        f"{victim.node_id}: DOWN {down_seconds * 1000:.0f} ms after kill -9; started again and "
        f"UP after {up_seconds:.1f} s (rise {RISE})"
    )
