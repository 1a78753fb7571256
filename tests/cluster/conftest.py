"""Several server nodes behind a load balancer, as real processes: a PostgreSQL database they
share, the nodes (``tests/cluster/nodes.py``) and HAProxy in front (``tests/cluster/
haproxy.py``).

One line gets three nodes, HAProxy and the database, started once a module and healthy for
each test::

    async def test_cluster_something(cluster: Cluster) -> None:
        await cluster.add_advisor("alice", PASSWORD)
        ... cluster.url ...                      # HAProxy
        cluster.kill(cluster.nodes[0])           # kill -9, wait for DOWN
        cluster.restart(cluster.nodes[0])        # start again, wait for UP

Other sizes or settings: ``with start_cluster(directory, haproxy_binary=haproxy_binary,
database_url=cluster_database, nats=cluster_nats, count=2, settings={"resume_grace_seconds":
5}) as cluster``.

Where NATS is: the ``cluster_nats`` fixture, a real nats-server with a token
(``tests/cluster/natsserver.py``), started once a module; its URL and token file go into every
node's ``[cluster]`` section. ``cluster_nats_server`` is that server itself (stop, freeze or
restart it to test the bus's failures).

Without haproxy, nats-server or PostgreSQL the tests are skipped with the reason, and fail in CI
(``CI=true``), which must not pass by skipping what it proves.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from tests.cluster.haproxy import BINARY, WHY
from tests.cluster.natsserver import NatsServer, running_nats_server
from tests.cluster.nodes import Cluster, NatsAccess, start_cluster
from tests.components import require
from tests.e2e.conftest import browser
from tests.server.postgres import create_database, drop_database

#: The e2e tests' Chromium, a fixture here too.
__all__ = ["browser"]

T = TypeVar("T")

#: The bearer token of the module cluster's ``/metrics``.
METRICS_TOKEN = "cluster-metrics-" + "0123456789abcdef"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "cluster: several server nodes behind HAProxy, on PostgreSQL (real processes)"
    )


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` to its end on a loop of its own in another thread: module fixtures are set
    up and torn down beside the tests' loops, which must not be touched."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, work).result()


@pytest.fixture(scope="session")
def haproxy_binary() -> str:
    return require(BINARY, WHY)


@pytest.fixture(scope="module")
def cluster_database(postgres_server: str) -> Iterator[str]:
    """A PostgreSQL database at the newest schema for one module's cluster; dropped after."""
    url = _run(create_database(postgres_server, migrated=True))
    yield url
    _run(drop_database(url))


@pytest.fixture(scope="module")
def cluster_nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A nats-server with a token for one module's cluster."""
    with running_nats_server(tmp_path_factory.mktemp("nats")) as server:
        yield server


@pytest.fixture(scope="module")
def cluster_nats(cluster_nats_server: NatsServer) -> NatsAccess:
    """Where the nodes find NATS: its URL and the file with its token."""
    return NatsAccess(urls=(cluster_nats_server.url,), token_file=cluster_nats_server.token_file)


@pytest.fixture(scope="module")
def cluster_module(
    tmp_path_factory: pytest.TempPathFactory,
    haproxy_binary: str,
    cluster_database: str,
    cluster_nats: NatsAccess,
) -> Iterator[Cluster]:
    """Three nodes and HAProxy, started once for the module (``/metrics`` for a bearer of
    :data:`METRICS_TOKEN`)."""
    with start_cluster(
        tmp_path_factory.mktemp("cluster"),
        haproxy_binary=haproxy_binary,
        database_url=cluster_database,
        nats=cluster_nats,
        settings={"metrics_token": METRICS_TOKEN},
    ) as cluster:
        yield cluster


@pytest.fixture
def cluster(cluster_module: Cluster) -> Cluster:
    """The module's cluster with every node running and UP (a test before may have killed
    one)."""
    cluster_module.ensure_all_up()
    return cluster_module
