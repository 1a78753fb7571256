"""A booth's call across the nodes of a cluster, with everything real: PostgreSQL, NATS, three
server nodes behind HAProxy, two coturn relays (the pool), a headless booth (test pattern) and
two advisors in Chromium. The booth and the advisor who takes the call are connected to
different nodes; the other advisor sees the caller come and go. Video flows both ways, chat
too. Then the node holding the booth's socket is killed (kill -9), later the one holding the
advisor's: the video never stops (media does not pass through the nodes), each client
reconnects through HAProxy and resumes on a survivor, and chat flows again. Last, the relay the
call goes through is killed: the media comes back through the other relay of the pool. The
recovery times are shown in the run's output."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.natsserver import NatsServer
from tests.cluster.nodes import Cluster, NatsAccess, start_cluster
from tests.cluster.peers import PASSWORD, booth_account
from tests.components import require
from tests.e2e.conftest import (
    RELAY_MAX_PORT,
    RELAY_MIN_PORT,
    BoothProcess,
    Coturn,
    launch_booth,
    poll,
    start_coturn,
    stop_process,
    wait_until,
)
from tests.report import show

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

METRICS_TOKEN = secrets.token_hex(16)

#: Records when the advisor's page shows each frame of the booth's video, and the longest
#: gap between two frames since ``window.__gapsFrom`` (ms since the epoch).
WATCH_FRAMES = """
() => {
  const video = document.getElementById('remote-video');
  window.__frameAt = 0; window.__frames = 0; window.__maxGap = 0; window.__gapsFrom = Date.now();
  const tick = () => {
    const now = Date.now();
    if (window.__frameAt && window.__frameAt > window.__gapsFrom) {
      window.__maxGap = Math.max(window.__maxGap, now - window.__frameAt);
    }
    window.__frameAt = now; window.__frames += 1;
    video.requestVideoFrameCallback(tick);
  };
  video.requestVideoFrameCallback(tick);
}
"""


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    lines: list[str] = []
    yield lines
    show(request.config, [f"{request.node.name}: {line}" for line in lines])


#: Each relay's half of the relay ports (which one a call's path goes through).
HALVES = (
    (RELAY_MIN_PORT, (RELAY_MIN_PORT + RELAY_MAX_PORT) // 2),
    ((RELAY_MIN_PORT + RELAY_MAX_PORT) // 2 + 1, RELAY_MAX_PORT),
)


@pytest.fixture
def relays(tmp_path: Path) -> Iterator[list[Coturn]]:
    """Two coturn relays sharing one secret, each on its own half of the relay ports."""
    turnserver = require("turnserver", "the TURN relay (Debian package coturn)")
    secret = secrets.token_hex(24)
    started: list[Coturn] = []
    try:
        for name, (low, high) in zip(("relay-a", "relay-b"), HALVES, strict=True):
            directory = tmp_path / name
            directory.mkdir()
            started.append(
                start_coturn(turnserver, directory, min_port=low, max_port=high, secret=secret)
            )
        yield started
    finally:
        for relay in started:
            stop_process(relay.process)


@pytest.fixture
def media_cluster(
    tmp_path: Path,
    haproxy_binary: str,
    cluster_database: str,
    cluster_nats_server: NatsServer,
    relays: list[Coturn],
) -> Iterator[Cluster]:
    nats = NatsAccess(urls=(cluster_nats_server.url,), token_file=cluster_nats_server.token_file)
    settings = {
        "metrics_token": METRICS_TOKEN,
        "turn": {
            "secret": relays[0].secret,
            "probe_seconds": 1.0,
            "relays": [
                {"name": f"relay-{index}", "urls": [relay.url]}
                for index, relay in enumerate(relays, 1)
            ],
        },
    }
    (tmp_path / "cluster").mkdir()
    with start_cluster(
        tmp_path / "cluster",
        haproxy_binary=haproxy_binary,
        database_url=cluster_database,
        nats=nats,
        settings=settings,
    ) as cluster:
        # Every node hands out both relays before the call begins (each probes them itself).
        wait_until(lambda: _relays_up(cluster) == 2 * len(cluster.nodes), 20, "both relays up")
        yield cluster


def _relays_up(cluster: Cluster) -> int:
    """How many (node, relay) pairs the nodes' /metrics show up."""
    return sum(
        int(node.metric(METRICS_TOKEN, f'videobooth_relays{{relay="{relay}",state="up"}}'))
        for node in cluster.nodes
        for relay in ("relay-1", "relay-2")
    )


def _connections(cluster: Cluster, role: str) -> dict[str, int]:
    """Each running node's open signalling connections of ``role`` (its /metrics)."""
    name = f'videobooth_connections{{role="{role}"}}'
    return {
        node.node_id: int(node.metric(METRICS_TOKEN, name))
        for node in cluster.nodes
        if node.running
    }


async def _holder(cluster: Cluster, role: str, count: int = 1) -> str:
    """The node holding the one connection of ``role`` (waits for it to be there)."""

    async def one() -> str | None:
        held = await asyncio.to_thread(_connections, cluster, role)
        holding = [node for node, n in held.items() if n >= count]
        return holding[0] if sum(held.values()) == count and holding else None

    found: str = await poll(one, 20, f"the {role}'s connection")
    return found


async def _advisor_page(browser: Any, cluster: Cluster, username: str) -> tuple[Any, Any]:
    context = await browser.new_context(permissions=["camera", "microphone"])
    page = await context.new_page()
    page.on("console", lambda msg: print(f"[{username} console] {msg.type}: {msg.text}"))
    await page.goto(f"{cluster.url}/advisor/")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_selector("#queue-view:not([hidden])")
    await _online(page)
    return context, page


async def _queue_length(page: Any, length: int) -> None:
    async def shown() -> bool:
        count: int = await page.evaluate("() => document.querySelectorAll('#queue li').length")
        return count == length

    await poll(shown, 10, f"{length} waiting in the advisor's queue")


async def _online(page: Any, timeout: float = 20) -> None:
    await poll(
        lambda: page.evaluate(
            "() => document.getElementById('connection-state').dataset.i18n === 'online'"
        ),
        timeout,
        "the advisor's page online",
    )


async def _chat_reaches_booth(page: Any, booth: BoothProcess, text: str) -> float:
    """Seconds until a chat line the advisor sends is counted at the booth."""
    before = (booth.status().get("call") or {}).get("chat_lines", 0)
    started = time.monotonic()
    await page.get_by_label("Message").fill(text)
    await page.get_by_role("button", name="Send").click()
    booth.wait_for(
        lambda s: (s.get("call") or {}).get("chat_lines", 0) > before, 20, f"chat {text!r}"
    )
    return time.monotonic() - started


async def _frames_go_on(page: Any, seconds: float = 2.0) -> int:
    """Frames the advisor's page showed in ``seconds`` from now."""
    before: int = await page.evaluate("() => window.__frames")
    await asyncio.sleep(seconds)
    after: int = await page.evaluate("() => window.__frames")
    return after - before


async def test_cluster_booth_call_across_nodes_survives_both_nodes_dying(
    tmp_path: Path,
    media_cluster: Cluster,
    relays: list[Coturn],
    browser: Any,
    figures: list[str],
) -> None:
    cluster = media_cluster
    for name in ("alice", "bob"):
        await cluster.add_advisor(name, PASSWORD)
    credential = await booth_account(cluster.database_url, "Branch 1 booth")
    config = tmp_path / "booth.toml"
    config.write_text(
        f'server_url = "{cluster.url}"\ncredential = "{credential}"\n'
        '[camera]\nkind = "test-pattern"\n'
    )
    booth = launch_booth(config, tmp_path / "booth", "--call")
    try:
        booth.wait_for_report(lambda s: s.state == "waiting", 40, "the booth to wait")
        booth_node = await _holder(cluster, "booth")
        # Alice on another node than the booth (HAProxy spreads new connections round robin).
        for _ in range(8):
            context, alice = await _advisor_page(browser, cluster, "alice")
            alice_node = await _holder(cluster, "advisor")
            if alice_node != booth_node:
                break
            await context.close()
        else:
            raise AssertionError(f"alice's socket always landed on {booth_node}")
        _, bob = await _advisor_page(browser, cluster, "bob")
        figures.append(f"booth on {booth_node}, alice on {alice_node}")
        for page in (alice, bob):
            await _queue_length(page, 1)
        await alice.get_by_role("button", name="Accept call from Branch 1 booth").click()
        await _queue_length(bob, 0)
        await poll(
            lambda: alice.evaluate(
                "() => document.getElementById('remote-video').dataset.firstFrameAt"
            ),
            30,
            "the booth's video at alice",
        )
        booth.wait_for(
            lambda s: (s.get("call") or {}).get("video_frames_received", 0) > 30,
            20,
            "alice's video at the booth",
        )
        await alice.evaluate(WATCH_FRAMES)
        figures.append(
            f"chat across nodes: {await _chat_reaches_booth(alice, booth, 'Guten Tag'):.2f} s"
        )

        for victim, who in ((booth_node, "the booth"), (alice_node, "alice")):
            await alice.evaluate("() => { window.__maxGap = 0; window.__gapsFrom = Date.now(); }")
            received = (booth.status().get("call") or {}).get("video_frames_received", 0)
            killed = time.monotonic()
            cluster.kill(cluster.node(victim))
            if who == "alice":
                await poll(
                    lambda: alice.evaluate(
                        "() => document.getElementById('connection-state').dataset.i18n"
                        " !== 'online'"
                    ),
                    15,
                    "alice's page to notice",
                )
                await _online(alice, timeout=30)
            else:
                booth.wait_for(
                    lambda s: (
                        s.get("reconnecting") is False
                        and s.get("link") == "online"
                        and s.get("updated_at", 0) > time.time() - 1
                    ),
                    30,
                    "the booth back online",
                )
            back = time.monotonic() - killed
            chat = await _chat_reaches_booth(alice, booth, f"Noch da? ({who})")
            assert await _frames_go_on(alice) > 20, "the booth's video stopped at alice"
            status = booth.status()
            assert status["state"] == "in_call"
            assert (status.get("call") or {}).get("video_frames_received", 0) > received + 20
            gap: float = await alice.evaluate("() => window.__maxGap")
            assert await alice.is_visible("#call-view")
            figures.append(
                f"{victim} ({who}'s node) killed: {who} online again through HAProxy "
                f"{back:.1f} s later, "
                f"chat through the new path in {chat:.2f} s, longest gap in the booth's video "
                f"at alice {gap:.0f} ms"
            )
            assert gap < 1000, f"the video stalled for {gap:.0f} ms"
            cluster.restart(cluster.node(victim))

        # Now the relay the call goes through dies: the call moves to the other one.
        pair = booth.status()["call"]["selected_pair"]
        assert pair["local_type"] == "relay", pair
        port = int(pair["local_address"].rsplit(":", 1)[1])
        (used,) = [i for i, (low, high) in enumerate(HALVES) if low <= port <= high]
        os.kill(relays[used].process.pid, signal.SIGKILL)
        relays[used].process.wait(10)
        killed = time.time()

        async def fresh_frame() -> float | None:
            at: float = await alice.evaluate("() => window.__frameAt / 1000")
            return at - killed if at > killed + 0.5 else None

        try:
            at_alice = await poll(fresh_frame, 60, "the booth's video at alice again")
        except AssertionError as exc:  # once in four runs: say what the booth did meanwhile
            tail = "\n".join(booth.log.read_text(errors="replace").splitlines()[-80:])
            raise AssertionError(f"{exc}; the booth's log ends:\n{tail}") from None
        status = booth.wait_for(
            lambda s: ((s.get("call") or {}).get("media_resumed_at") or 0) > killed + 0.5,
            60,
            "alice's media at the booth again",
        )
        pair = status["call"]["selected_pair"]
        port = int(pair["local_address"].rsplit(":", 1)[1])
        low, high = HALVES[1 - used]
        assert low <= port <= high, pair
        figures.append(
            f"relay-{'ab'[used]} killed mid-call: media back through the other relay after "
            f"{at_alice:.1f} s at alice, {status['call']['media_resumed_at'] - killed:.1f} s "
            "at the booth"
        )
        chat = await _chat_reaches_booth(alice, booth, "Und jetzt?")
        figures.append(f"chat after the relay's death: {chat:.2f} s")
    finally:
        stop_process(booth.process)
