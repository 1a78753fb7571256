"""The relay probe (kiosk/booth/relayprobe.py) against a real coturn started by the test: a STUN
Binding request is answered while it runs, goes unanswered while it is frozen (SIGSTOP) and is
answered again once it continues; a killed relay refuses at once. And the relays' addresses
from the ICE servers a call gets, and :class:`RelayWatch`'s record of answers on a fake clock."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiosk.booth.relayprobe import (
    PROBE_SECONDS,
    Answer,
    RelayAddress,
    RelayWatch,
    relay_address,
    stun_probe,
)
from protocol import IceServer
from tests.components import require
from tests.e2e.conftest import Coturn, start_coturn, stop_process


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Coturn]:
    relay = start_coturn(require("turnserver", "the TURN relay (Debian package coturn)"), tmp_path)
    yield relay
    if relay.process.poll() is None:
        os.kill(relay.process.pid, signal.SIGCONT)  # never leave it stopped
    stop_process(relay.process)


async def test_a_relay_answers_runs_frozen_silent_and_killed_refused(coturn: Coturn) -> None:
    relay = RelayAddress("127.0.0.1", coturn.port, "udp")
    started = time.monotonic()
    assert await stun_probe(relay, 2.0) is Answer.ANSWERED
    assert time.monotonic() - started < 1.0  # a round trip on loopback, not the wait

    os.kill(coturn.process.pid, signal.SIGSTOP)
    try:
        _wait_stopped(coturn.process.pid)
        assert await stun_probe(relay, PROBE_SECONDS) is Answer.SILENT
    finally:
        os.kill(coturn.process.pid, signal.SIGCONT)
    assert await stun_probe(relay, 1.0) is Answer.ANSWERED

    coturn.process.kill()
    coturn.process.wait(10)
    assert await stun_probe(relay, 1.0) is Answer.REFUSED


def _wait_stopped(pid: int) -> None:
    """Until every thread of ``pid`` is stopped: kill() returns before they all are, and a
    thread under way may answer one more packet."""
    deadline = time.monotonic() + 5
    while not all(
        (task / "stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
        for task in Path(f"/proc/{pid}/task").iterdir()
    ):
        assert time.monotonic() < deadline, "coturn did not stop"
        time.sleep(0.01)


async def test_a_relay_over_tcp_is_probed_by_connecting(coturn: Coturn) -> None:
    relay = RelayAddress("127.0.0.1", coturn.port, "tcp")
    assert await stun_probe(relay, 1.0) is Answer.ANSWERED
    coturn.process.kill()
    coturn.process.wait(10)
    assert await stun_probe(relay, 1.0) is Answer.REFUSED


def test_relay_addresses_come_from_the_first_usable_url() -> None:
    def address(*urls: str) -> RelayAddress | None:
        return relay_address(IceServer(urls=list(urls), username="u", credential="c"))

    assert address("turn:relay.example.org:3478?transport=udp") == RelayAddress(
        "relay.example.org", 3478, "udp"
    )
    assert address("turn:relay.example.org") == RelayAddress("relay.example.org", 3478, "udp")
    assert address("turns:relay.example.org:443?transport=tcp") == RelayAddress(
        "relay.example.org", 443, "tcp"
    )
    assert address("turn:relay.example.org:3478?transport=tcp") == RelayAddress(
        "relay.example.org", 3478, "tcp"
    )
    assert address("turn:[2001:db8::1]:3478") == RelayAddress("2001:db8::1", 3478, "udp")
    assert address("https://relay.example.org", "turn:10.0.0.1:3478") == RelayAddress(
        "10.0.0.1", 3478, "udp"
    )
    assert address("https://relay.example.org") is None


async def test_the_watch_asks_each_relay_once_a_period_and_keeps_its_answers() -> None:
    now = 10.0
    answers = {RelayAddress("10.0.0.1", 3478, "udp"): Answer.ANSWERED}
    asked: list[RelayAddress] = []

    async def probe(relay: RelayAddress, wait: float) -> Answer:
        asked.append(relay)
        return answers.get(relay, Answer.SILENT)

    watch = RelayWatch(probe=probe, clock=lambda: now, period=0.2)
    up, down = RelayAddress("10.0.0.1", 3478, "udp"), RelayAddress("10.0.0.2", 3478, "udp")
    for tick in range(5):  # 10.0 .. 10.4: asked at 10.0, 10.2 and 10.4
        now = 10.0 + tick / 10
        watch.want([up, down], now)
        await asyncio.sleep(0)
    assert asked == [up, down] * 3
    assert watch.health(up).up_since == 10.0 and watch.health(up).answered_at == 10.4
    assert watch.health(down).misses == 3 and watch.health(down).up_since is None
    assert not watch.health(down).answers_since(9.0)
    assert watch.health(up).answers_since(10.3) and not watch.health(up).answers_since(10.4)
    answers[down] = Answer.ANSWERED
    now = 10.6
    watch.want([down], now)
    await asyncio.sleep(0)
    assert watch.health(down).up_since == 10.6 and watch.health(down).misses == 0
    await watch.close()
    assert watch.health(up).up_since is None  # forgotten


async def test_probes_go_out_on_time_and_count_in_the_order_they_were_sent() -> None:
    relay = RelayAddress("10.0.0.1", 3478, "udp")
    first_silent = asyncio.Event()
    calls = 0

    async def probe(relay: RelayAddress, wait: float) -> Answer:
        nonlocal calls
        calls += 1
        if calls == 1:  # sent while the path was cut: its silence shows only after the wait
            await first_silent.wait()
            return Answer.SILENT
        return Answer.ANSWERED

    changes: list[bool] = []
    watch = RelayWatch(probe=probe, clock=lambda: 1.0, period=0.2)
    watch.on_change = lambda: changes.append(watch.health(relay).up_since is not None)
    watch.want([relay], 1.0)
    watch.want([relay], 1.2)  # not held back by the first one, still waiting
    await asyncio.sleep(0)
    assert calls == 2 and watch.health(relay).up_since == 1.0 and changes == [True]
    first_silent.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert watch.health(relay).up_since == 1.0  # the older probe's silence does not count
    assert changes == [True]
    await watch.close()
