"""The cluster load benchmark (bench/cluster/), small: 200 booths connected across the three
nodes, 10 call set-ups a second for 5 s from three load generator processes, the advisors' API
probed meanwhile.

It runs on the module's cluster (``tests/cluster/conftest.py``: three nodes on one PostgreSQL
database and NATS, HAProxy in front, round robin). The figures (set-up and API latency, memory per
connection, every process's CPU) are shown in the run's output; asserted are the functional
properties only: every set-up completed, no message was refused, every booth is still
connected and online, the nodes stay up and log no error. Tests never assert wall-clock speed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from bench.cluster import ClusterSettings, run_phase
from bench.load.clients import populate
from tests.cluster.natsserver import NatsServer
from tests.cluster.nodes import Cluster
from tests.report import show

pytestmark = pytest.mark.cluster

SETTINGS = ClusterSettings(
    booths=200,
    advisors=30,
    rate=10.0,
    seconds=5.0,
    api_rate=20.0,
    api_reference_seconds=2.0,
    single=False,
    workers=3,
    reference_setups=3,
    steps=(),
    beyond=(),
)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """Lines shown in the run's output after the test, passed or not."""
    lines: list[str] = []
    yield lines
    show(request.config, [f"{request.node.name}: {line}" for line in lines])


@pytest.mark.timeout(150)
async def test_cluster_load_200_booths_10_setups_a_second(
    cluster: Cluster,
    postgres_server: str,
    cluster_nats_server: NatsServer,
    figures: list[str],
) -> None:
    accounts = await populate(cluster.database_url, SETTINGS.accounts(), figures.append)
    result = await run_phase(
        "3 nodes",
        cluster,
        SETTINGS,
        accounts,
        postgres_url=postgres_server,
        nats_pid=cluster_nats_server.pid,
        progress=figures.append,
    )
    figures += result.summary(os.cpu_count() or 1)
    summary = "\n".join(result.summary(os.cpu_count() or 1) + result.errors[:20])

    assert result.nodes_alive, summary
    assert result.booths_connected == SETTINGS.booths, summary
    assert result.load is not None
    assert result.load.attempted == int(SETTINGS.rate * SETTINGS.seconds), summary
    assert result.load.completed == result.load.attempted, summary
    assert result.refused == 0, summary
    assert result.booths_connected_at_end == SETTINGS.booths, summary
    assert result.booths_online_at_end == SETTINGS.booths, summary
    assert result.advisors_at_end == SETTINGS.advisors, summary
    assert result.errors == [], summary
    assert result.api_ms, summary
    # Every node served booths (through HAProxy's round robin, or pinned).
    assert len(result.per_node) == len(cluster.nodes), summary
    assert all(count > 0 for count in result.per_node.values()), summary
