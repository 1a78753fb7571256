"""The relay pool with real processes: two coturn relays on 127.0.0.1 sharing one secret and a
real server probing them. Both up: a participant's ICE servers name both. One killed (kill -9):
within a few probe intervals the server stops handing it out and /metrics says it is down.
Started again: handed out again. And a booth's call (relay-only, the advisor in Chromium
relay-only too) whose relay is killed goes on through the other relay.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.components import require
from tests.e2e.conftest import (
    RELAY_MAX_PORT,
    RELAY_MIN_PORT,
    Coturn,
    Server,
    launch_booth,
    login_advisor,
    make_server,
    poll,
    start_coturn,
    stop_process,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

#: The server's probing in these tests: every second, down after two failures in a row.
PROBE_SECONDS = 1.0
DOWN_AFTER = 2
#: A relay's change must show within this many probe intervals.
INTERVALS = 5
METRICS_TOKEN = secrets.token_hex(16)


@dataclass
class Relay:
    """One coturn of the pool, which the test kills and starts again on the same port."""

    name: str
    directory: Path
    coturn: Coturn
    turnserver: str
    #: The ports it relays from.
    ports: tuple[int, int]

    @property
    def url(self) -> str:
        return self.coturn.url

    def kill(self) -> None:
        os.kill(self.coturn.process.pid, signal.SIGKILL)
        self.coturn.process.wait()

    def restart(self) -> None:
        log = self.coturn.log
        log.rename(log.with_suffix(f".{time.time_ns()}.log"))
        self.coturn.process = subprocess.Popen(
            [self.turnserver, "-c", str(self.directory / "turnserver.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(
            lambda: log.exists() and "listener opened on" in log.read_text(errors="replace"),
            10,
            f"coturn {self.name} to listen again",
        )


@pytest.fixture
def relays(tmp_path: Path) -> Iterator[list[Relay]]:
    turnserver = require("turnserver", "the TURN relay (Debian package coturn)")
    secret = secrets.token_hex(24)
    middle = (RELAY_MIN_PORT + RELAY_MAX_PORT) // 2
    ranges = {"relay-a": (RELAY_MIN_PORT, middle), "relay-b": (middle + 1, RELAY_MAX_PORT)}
    pool: list[Relay] = []
    try:
        for name, (low, high) in ranges.items():
            directory = tmp_path / name
            directory.mkdir()
            coturn = start_coturn(turnserver, directory, min_port=low, max_port=high, secret=secret)
            pool.append(Relay(name, directory, coturn, turnserver, (low, high)))
        yield pool
    finally:
        for relay in pool:
            stop_process(relay.coturn.process)


@pytest.fixture
def pool_server(tmp_path: Path, relays: list[Relay]) -> Iterator[Server]:
    server = make_server(tmp_path, None)
    lines = [
        f'metrics_token = "{METRICS_TOKEN}"',
        'browser_ice_policy = "relay"',
        "[turn]",
        f'secret = "{relays[0].coturn.secret}"',
        "ttl_seconds = 600",
        f"probe_seconds = {PROBE_SECONDS}",
        f"down_after_failures = {DOWN_AFTER}",
    ]
    for relay in relays:
        lines += ["[[turn.relays]]", f'name = "{relay.name}"', f'urls = ["{relay.url}"]']
    with server.config.open("a") as config:
        config.write("\n".join(lines) + "\n")
    server.start()
    yield server
    server.stop()


class Calls:
    """A booth and the advisor over the server's WebSocket: each call they make gives both
    their ``call_started``."""

    def __init__(self, server: Server, http: aiohttp.ClientSession) -> None:
        self.server = server
        self.http = http
        self.booth: aiohttp.ClientWebSocketResponse | None = None
        self.advisor: aiohttp.ClientWebSocketResponse | None = None

    async def connect(self, credential: str) -> None:
        login = {"username": "advisor", "password": self.server.advisor_password}
        async with self.http.post(f"{self.server.url}/api/v1/auth/login", json=login) as reply:
            assert reply.status == 200, await reply.text()
        self.advisor = await self.http.ws_connect(f"{self.server.url}/api/v1/ws")
        # The booth's own session: no advisor's cookie goes with it.
        booth_http = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        self.booth = await booth_http.ws_connect(
            f"{self.server.url}/api/v1/ws", headers={"Authorization": f"Bearer {credential}"}
        )
        self._booth_http = booth_http

    async def close(self) -> None:
        for ws in (self.booth, self.advisor):
            if ws is not None:
                await ws.close()
        await self._booth_http.close()

    @staticmethod
    async def send(ws: aiohttp.ClientWebSocketResponse | None, **message: Any) -> None:
        assert ws is not None
        await ws.send_json({"v": 1, **message})

    @staticmethod
    async def receive(ws: aiohttp.ClientWebSocketResponse | None, kind: str) -> dict[str, Any]:
        assert ws is not None
        async with asyncio.timeout(10):
            while True:
                message: dict[str, Any] = await ws.receive_json()
                if message["type"] == kind:
                    return message

    async def call(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """One call from the booth, accepted, then hung up: both sides' ``call_started``."""
        await self.send(self.booth, type="call_request")
        session_id = (await self.receive(self.booth, "call_waiting"))["session_id"]
        await self.send(self.advisor, type="call_accept", session_id=session_id)
        booth = await self.receive(self.booth, "call_started")
        advisor = await self.receive(self.advisor, "call_started")
        await self.send(self.booth, type="hangup", session_id=session_id)
        await self.receive(self.advisor, "hangup")
        return booth, advisor


@pytest.fixture
async def calls(pool_server: Server) -> AsyncIterator[Calls]:
    credential = await asyncio.to_thread(pool_server.add_booth, "Booth 1")
    # Cookies from 127.0.0.1: the advisor's login.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        talk = Calls(pool_server, http)
        await talk.connect(credential)
        yield talk
        await talk.close()


def relay_urls(started: dict[str, Any]) -> list[str]:
    return [url for server in started["ice_servers"] for url in server["urls"]]


async def relay_states(server: Server) -> dict[str, str]:
    """/metrics' ``videobooth_relays``: each relay's state."""
    headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{server.url}/metrics", headers=headers) as reply,
    ):
        text = await reply.text()
    states = {}
    for line in text.splitlines():
        if found := re.fullmatch(r'videobooth_relays\{relay="([^"]+)",state="(\w+)"\} 1\.0', line):
            states[found[1]] = found[2]
    return states


async def wait_for_states(server: Server, expected: dict[str, str], within: float) -> float:
    """Seconds until /metrics shows ``expected``; fails after ``within``."""
    started = time.monotonic()
    states: dict[str, str] = {}
    while time.monotonic() - started < within:
        states = await relay_states(server)
        if states == expected:
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError(f"relays still {states} after {within} s, expected {expected}")


async def test_cluster_relay_pool_follows_a_relay_killed_and_started_again(
    relays: list[Relay], pool_server: Server, calls: Calls
) -> None:
    a, b = relays
    both_up = {a.name: "up", b.name: "up"}
    assert await relay_states(pool_server) == both_up

    booth, advisor = await calls.call()
    assert sorted(relay_urls(booth)) == sorted([a.url, b.url])
    assert relay_urls(advisor) == relay_urls(booth)  # both ends prefer the same relay
    assert booth["ice_servers"][0]["username"] == booth["ice_servers"][1]["username"]

    a.kill()
    down = await wait_for_states(
        pool_server, {a.name: "down", b.name: "up"}, within=INTERVALS * PROBE_SECONDS
    )
    for _ in range(3):  # whichever relay a session prefers, the dead one is left out
        booth, advisor = await calls.call()
        assert relay_urls(booth) == relay_urls(advisor) == [b.url]

    a.restart()
    up = await wait_for_states(pool_server, both_up, within=INTERVALS * PROBE_SECONDS)
    booth, _ = await calls.call()
    assert sorted(relay_urls(booth)) == sorted([a.url, b.url])

    log = pool_server.log.read_text()
    assert log.count(f"relay {a.name}: up -> down (") == 1
    assert log.count(f"relay {a.name}: down -> up (an allocation succeeded)") == 1
    assert f"relay {b.name}: up -> down" not in log
    print(f"relay seen down {down:.1f} s after kill -9, up {up:.1f} s after its restart")


#: Counts the frames the advisor's page shows, and when the newest came.
WATCH_FRAMES = """
() => {
  const video = document.getElementById('remote-video');
  window.__frameAt = 0;
  const tick = () => {
    window.__frameAt = Date.now();
    video.requestVideoFrameCallback(tick);
  };
  video.requestVideoFrameCallback(tick);
}
"""


async def test_cluster_booth_call_goes_on_through_the_other_relay(
    tmp_path: Path, relays: list[Relay], pool_server: Server, browser: Any
) -> None:
    booth_config = tmp_path / "booth.toml"
    credential = await asyncio.to_thread(pool_server.add_booth, "Branch 1 booth")
    booth_config.write_text(
        f'server_url = "{pool_server.url}"\ncredential = "{credential}"\n'
        '[camera]\nkind = "test-pattern"\n'
    )
    booth = launch_booth(booth_config, tmp_path / "booth", "--call")
    try:
        page = await login_advisor(browser, pool_server)
        booth.wait_for_report(lambda s: s.state == "waiting", 40, "the booth to wait")
        await page.get_by_role("button", name="Accept call from Branch 1 booth").click(
            timeout=20_000
        )
        await poll(
            lambda: page.evaluate(
                "() => document.getElementById('remote-video').dataset.firstFrameAt"
            ),
            30,
            "the booth's video at the advisor",
        )
        await page.evaluate(WATCH_FRAMES)
        status = booth.wait_for(
            lambda s: (
                s.get("call", {}).get("selected_pair") is not None
                and s["call"].get("video_frames_received", 0) > 30
            ),
            20,
            "media both ways",
        )
        pair = status["call"]["selected_pair"]
        assert pair["local_type"] == "relay", pair
        port = int(pair["local_address"].rsplit(":", 1)[1])
        (used,) = [r for r in relays if r.ports[0] <= port <= r.ports[1]]
        (other,) = [r for r in relays if r is not used]

        used.kill()
        killed = time.time()

        async def advisor_frame() -> float | None:
            at: float = await page.evaluate("() => window.__frameAt / 1000")
            # Frames already on their way when the relay died come within a few milliseconds.
            return at - killed if at > killed + 0.5 else None

        def booth_media(s: dict[str, Any]) -> bool:
            call = s.get("call", {})
            resumed = call.get("media_resumed_at")
            return bool(resumed and resumed > killed + 0.5 and call.get("selected_pair"))

        at_advisor = await poll(advisor_frame, 60, "the booth's video at the advisor again")
        status = booth.wait_for(booth_media, 60, "the advisor's media at the booth again")
        at_booth = status["call"]["media_resumed_at"] - killed
        pair = status["call"]["selected_pair"]
        port = int(pair["local_address"].rsplit(":", 1)[1])
        assert other.ports[0] <= port <= other.ports[1], pair
        assert status["state"] == "in_call"
        assert status["repairs"] >= 1
        print(
            f"\nrelay {used.name} killed mid-call: media back through {other.name} after "
            f"{at_advisor:.1f} s at the advisor, {at_booth:.1f} s at the booth "
            f"({status['repairs']} new connection(s))"
        )
    finally:
        stop_process(booth.process)
