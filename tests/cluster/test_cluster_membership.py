"""Membership on the in-process bus with a clock moved by hand: nodes hear each other, one that
falls silent is gone after GONE_AFTER (and ``on_gone`` is told once), a node whose own bus is
down concludes nothing, and a heartbeat that is not one is ignored."""

from __future__ import annotations

import asyncio

import pytest

from server.cluster import LocalBus
from server.cluster.bus import BusState
from server.cluster.membership import GONE_AFTER, Membership, node_subject

pytestmark = pytest.mark.cluster


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def _settle() -> None:
    for _ in range(20):  # the bus delivers in tasks of its own
        await asyncio.sleep(0)


async def test_cluster_membership_hears_nodes_and_gives_up_a_silent_one() -> None:
    bus, clock = LocalBus(), Clock()
    await bus.start()
    gone: list[str] = []
    a = Membership(bus, "node-a", clock=clock, on_gone=gone.append)
    b = Membership(bus, "node-b", clock=clock)
    await a.start()
    await b.start()
    await asyncio.sleep(0.05)  # each beats once on starting
    await _settle()
    assert a.alive() == ["node-a", "node-b"] == b.alive()

    await b.stop()  # node-b falls silent
    clock.now += GONE_AFTER - 0.5
    await bus.publish(node_subject("node-a"), b'{"node": "node-a", "started": 1.0}')
    await _settle()
    a.check()
    assert a.alive() == ["node-a", "node-b"]  # not yet
    clock.now += 1.0
    a.check()
    assert (a.alive(), gone) == (["node-a"], ["node-b"])
    a.check()
    assert gone == ["node-b"]  # told once
    await a.stop()
    await bus.close()


async def test_cluster_membership_concludes_nothing_while_its_bus_is_down() -> None:
    bus, clock = LocalBus(), Clock()
    await bus.start()
    a = Membership(bus, "node-a", clock=clock)
    await a.start()
    await bus.publish(node_subject("node-b"), b'{"node": "node-b", "started": 5.0}')
    await _settle()
    assert a.alive() == ["node-a", "node-b"]
    bus._set_state(BusState.DISCONNECTED, "test")  # this node cut off from the others
    clock.now += 10 * GONE_AFTER
    a.check()
    assert a.alive() == ["node-a", "node-b"]
    bus._set_state(BusState.CONNECTED, "test")  # back: everyone gets time to be heard again
    a.check()
    assert a.alive() == ["node-a", "node-b"]
    clock.now += GONE_AFTER + 0.1
    a.check()
    assert a.alive() == ["node-a"]
    await a.stop()
    await bus.close()


async def test_cluster_membership_ignores_what_is_not_a_heartbeat(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = LocalBus()
    await bus.start()
    a = Membership(bus, "node-a")
    await a.start()
    for junk in (b"not json", b'{"node": "x.y", "started": 1}', b'{"started": 1}', b"[]"):
        await bus.publish(node_subject("node-z"), junk)
    await _settle()
    assert "node-z" not in a.alive() and "x.y" not in a.alive()
    assert caplog.text.count("a heartbeat that is not one") == 4
    await a.stop()
    await bus.close()
