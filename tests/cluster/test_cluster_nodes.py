"""The nodes know each other: each says on the bus (NATS) that it is alive, every second, and
each node's health lists the nodes it hears. A node killed with ``kill -9`` is gone for the
others within the membership's limit; started again, it is back. The timings are shown in the
run's output."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from server.cluster.membership import GONE_AFTER, HEARTBEAT_SECONDS
from tests.cluster.nodes import Cluster, NodeProcess
from tests.report import show

pytestmark = pytest.mark.cluster

ALL = ["node1", "node2", "node3"]


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    lines: list[str] = []
    yield lines
    show(request.config, [f"{request.node.name}: {line}" for line in lines])


def _until_all_hear(nodes: list[NodeProcess], expected: list[str], timeout: float) -> float:
    """Seconds until every one of ``nodes`` lists exactly ``expected``; fails after timeout."""
    start = time.monotonic()
    last: dict[str, object] = {}
    while time.monotonic() - start < timeout:
        last = {node.node_id: (node.health() or {}).get("nodes") for node in nodes}
        if all(heard == expected for heard in last.values()):
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"after {timeout} s the nodes hear {last}, not {expected}")


def test_cluster_nodes_hear_each_other_over_the_bus(cluster: Cluster) -> None:
    _until_all_hear(cluster.nodes, ALL, timeout=GONE_AFTER + 2)
    for node in cluster.nodes:
        health = node.health()
        assert health is not None
        assert (health["node"], health["bus"]) == (node.node_id, "connected")


def test_cluster_a_killed_node_is_gone_for_the_others_and_back_when_started(
    cluster: Cluster, figures: list[str]
) -> None:
    _until_all_hear(cluster.nodes, ALL, timeout=GONE_AFTER + 2)
    victim, survivors = cluster.nodes[2], cluster.nodes[:2]
    victim.kill()  # the seconds below count from here
    gone = _until_all_hear(survivors, ALL[:2], timeout=GONE_AFTER + 3 * HEARTBEAT_SECONDS + 2)
    figures.append(f"node3 killed: gone for node1 and node2 after {gone:.1f} s")
    # Not before the limit (a node is not given up at its first missed beat) ...
    assert gone >= GONE_AFTER - HEARTBEAT_SECONDS
    # ... and not much after it.
    assert gone <= GONE_AFTER + 2 * HEARTBEAT_SECONDS + 1
    started = time.monotonic()
    cluster.restart(victim)
    back = _until_all_hear(cluster.nodes, ALL, timeout=GONE_AFTER + 5)
    figures.append(
        f"node3 started again: heard by all after {time.monotonic() - started:.1f} s "
        f"({back:.1f} s after it answered)"
    )
