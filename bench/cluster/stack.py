"""What the cluster load runs on, started the way the cluster tests start it, and what its
processes cost.

PostgreSQL is ``tests/server/postgres.py``'s (its session fixture's own code, run as a context
manager here: ``initdb`` into a temporary folder, a free port of 127.0.0.1); nats-server is
``tests/cluster/natsserver.py``'s; the nodes and HAProxy are ``tests/cluster/nodes.py``'s
:func:`start_cluster`. Everything listens on 127.0.0.1 and is ended by its own pid.

CPU is read per process from /proc (through psutil): the nodes, NATS, PostgreSQL (the
postmaster and its backends), HAProxy, the load generator's workers and this coordinating
process, and the whole machine's busy time beside them: the machine's two cores are shared
with whatever else runs on it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import aiohttp
import psutil
import pytest
from yarl import URL

from bench.cluster.worker import target
from bench.load.settings import PASSWORD
from bench.procs import cpu_seconds
from server.proxy import BalancerSettings
from tests.cluster import haproxy
from tests.cluster.nodes import Cluster

# Imported by name: its asyncpg import has no type stubs, and mypy --strict would follow it.
_postgres = importlib.import_module("tests.server.postgres")


class ClusterUnavailableError(RuntimeError):
    """HAProxy, nats-server or PostgreSQL is not there (the tests would skip)."""


@contextlib.contextmanager
def unavailable_is_an_error() -> Iterator[None]:
    """The tests' helpers skip (or fail in CI) where a component is missing; here that is an
    error with the same reason."""
    try:
        yield
    except (pytest.skip.Exception, pytest.fail.Exception) as exc:
        raise ClusterUnavailableError(str(exc)) from None


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """A PostgreSQL of its own (or ``VIDEOBOOTH_TEST_POSTGRES_URL``'s): its base URL."""
    # The storage tests' session fixture is a generator function; outside pytest it is the
    # same start and the same clean-up as a context manager.
    fixture = _postgres.postgres_server._get_wrapped_function()
    with unavailable_is_an_error(), contextlib.contextmanager(fixture)() as url:
        yield str(url)


async def create_database(server: str) -> str:
    """A new database at the newest schema on ``server`` (the cluster tests' way); its URL."""
    url: str = await _postgres.create_database(server, migrated=True)
    return url


#: HAProxy's health checks (seconds between, failures to take a node out, successes to bring it
#: back, how long a node may take to answer one): the cluster tests' and production's
#: (server.proxy's defaults).
CHECKS = {
    "tests": (haproxy.CHECK_SECONDS, haproxy.FALL, haproxy.RISE, haproxy.CHECK_TIMEOUT_SECONDS),
    "production": (
        BalancerSettings.check_seconds,
        BalancerSettings.fall,
        BalancerSettings.rise,
        BalancerSettings.check_timeout_seconds,
    ),
}


@contextlib.contextmanager
def health_checks(kind: str) -> Iterator[None]:
    """HAProxy started meanwhile by :func:`start_cluster` checks the nodes as ``kind`` says
    (tests/cluster/haproxy.py reads its CHECK_SECONDS, FALL, RISE and CHECK_TIMEOUT_SECONDS
    when it writes HAProxy's configuration; they are the tests' again afterwards)."""
    saved = haproxy.CHECK_SECONDS, haproxy.FALL, haproxy.RISE, haproxy.CHECK_TIMEOUT_SECONDS
    (
        haproxy.CHECK_SECONDS,
        haproxy.FALL,
        haproxy.RISE,
        haproxy.CHECK_TIMEOUT_SECONDS,
    ) = CHECKS[kind]
    try:
        yield
    finally:
        (
            haproxy.CHECK_SECONDS,
            haproxy.FALL,
            haproxy.RISE,
            haproxy.CHECK_TIMEOUT_SECONDS,
        ) = saved


def marked_down(cluster: Cluster) -> list[str]:
    """HAProxy's log lines so far that took a node out (a failed health check)."""
    if not cluster.haproxy.log.exists():
        return []
    return [
        line.strip()
        for line in cluster.haproxy.log.read_text(errors="replace").splitlines()
        if line.startswith("Server ") and " is DOWN" in line
    ]


def postgres_pids(server_url: str) -> list[int]:
    """The postmaster listening on ``server_url``'s port and its backends."""
    port = str(URL(server_url.replace("postgresql+asyncpg", "postgresql")).port)
    for process in psutil.process_iter(["name", "cmdline"]):
        command = process.info["cmdline"] or []
        if (
            process.info["name"] == "postgres"
            and "-p" in command
            and command[command.index("-p") + 1] == port
        ):
            with contextlib.suppress(psutil.NoSuchProcess):
                return [process.pid, *(c.pid for c in process.children(recursive=True))]
    return []


def _machine_busy() -> float:
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


@dataclass
class CpuWatch:
    """CPU seconds of groups of processes between two moments, as cores."""

    #: Group name -> its processes now (a function: PostgreSQL's backends come and go).
    groups: Mapping[str, Callable[[], list[int]]]
    _before: dict[str, dict[int, float]] = field(default_factory=dict)
    _machine: float = 0.0

    def _sample(self) -> dict[str, dict[int, float]]:
        sample: dict[str, dict[int, float]] = {}
        for name, pids in self.groups.items():
            sample[name] = {}
            for pid in pids():
                with contextlib.suppress(psutil.NoSuchProcess):
                    sample[name][pid] = cpu_seconds(pid)
        return sample

    def start(self) -> None:
        self._before, self._machine = self._sample(), _machine_busy()

    def cores(self, seconds: float) -> dict[str, float]:
        """Cores each group used since :meth:`start` (``seconds`` ago), and ``machine``: all
        the machine's busy time, ours and anyone else's."""
        after = self._sample()
        used = {
            name: sum(cpu - self._before[name].get(pid, 0.0) for pid, cpu in pids.items()) / seconds
            for name, pids in after.items()
        }
        used["machine"] = (_machine_busy() - self._machine) / seconds
        return used


async def fleet_online(cluster: Cluster, http: aiohttp.ClientSession) -> int:
    """Booths online in the administrators' fleet view, asked of every node (each knows the
    booths connected to itself at least): how many distinct booths are online."""
    async with http.post(
        f"{cluster.url}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}
    ) as response:
        if response.status != 200:
            raise RuntimeError(f"the administrator cannot log in: HTTP {response.status}")
    online: set[str] = set()
    for node in cluster.nodes:  # the login cookie is good on every node (one key, one database)
        async with http.get(f"{node.url}/api/v1/fleet") as response:
            fleet = await response.json()
        online.update(booth["id"] for booth in fleet["booths"] if booth["online"])
    return len(online)


def node_errors(cluster: Cluster) -> list[str]:
    """Every node's log lines at ERROR or worse, and tracebacks (as bench/load reads its
    server's log)."""
    return [
        f"{node.node_id}: {line}"
        for node in cluster.nodes
        for line in dataclasses.replace(target(node.url), log=node.log).logged_errors()
    ]
