"""Server nodes for the cluster tests, and the cluster they make behind HAProxy.

Each node is a ``python -m server --config <node>.toml serve`` process of its own on a free
port of 127.0.0.1, with its own data folder and its ``[cluster]`` node id; all share one
PostgreSQL database and one server key file (``secret_key_file``), so a login cookie, a guest
pass or a resume token one node issued is good on every other. Processes are ended by their own
pids only: :meth:`NodeProcess.kill` is ``kill -9`` of that one node.

:func:`start_cluster` starts the nodes, then HAProxy in front of them (``tests/cluster/
haproxy.py``); :class:`Cluster` kills and restarts nodes and waits for HAProxy to see it.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.keyfile import load_or_create_key
from server.proxy import Node
from server.storage import Database, create_user
from tests.cluster.haproxy import PROXY_ADDRESS, HAProxy, start_haproxy
from tests.e2e.conftest import REPO, free_port, stop_process, wait_until

#: How long a node may take to answer its health check after it was started.
START_SECONDS = 30.0


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))  # a JSON string is a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def toml_text(settings: Mapping[str, Any]) -> str:
    """``settings`` as a server.toml: plain values first, then one ``[table]`` a mapping (a
    list of mappings in one: ``[[table.name]]`` each)."""
    plain = [f"{key} = {_toml_value(v)}" for key, v in settings.items() if not isinstance(v, dict)]
    tables = []
    for key, table in settings.items():
        if not isinstance(table, dict):
            continue
        lines = [f"\n[{key}]"]
        arrays = []  # a list of tables: [[key.name]] blocks after the table's own values
        for name, item in table.items():
            if isinstance(item, list) and item and all(isinstance(i, dict) for i in item):
                arrays += [
                    f"[[{key}.{name}]]\n"
                    + "\n".join(f"{k} = {_toml_value(v)}" for k, v in i.items())
                    for i in item
                ]
            else:
                lines.append(f"{name} = {_toml_value(item)}")
        tables.append("\n".join([*lines, *arrays]))
    return "\n".join(plain) + "\n" + "\n".join(tables) + "\n"


@dataclass(frozen=True)
class NatsAccess:
    """Where the nodes find NATS: the [cluster] section's nats_urls and nats_token_file."""

    urls: tuple[str, ...]
    token_file: Path | None = None


@dataclass
class NodeProcess:
    """One server node: its configuration is written once; start, kill and start it again."""

    node_id: str
    port: int
    config: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def launch(self) -> None:
        """Start the process; :meth:`wait_ready` waits for it to answer."""
        if self.running:
            raise AssertionError(f"node {self.node_id} is running already")
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "server", "--config", str(self.config), "serve"],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )

    def health(self) -> dict[str, Any] | None:
        """The node's own health answer (not through HAProxy); None while it does not answer."""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/health", timeout=1) as response:
                body: dict[str, Any] = json.load(response)
                return body
        except OSError:
            return None

    def metric(self, token: str, name: str) -> float:
        """One sample of the node's ``/metrics`` (``name`` with its labels, as printed)."""
        request = urllib.request.Request(
            f"{self.url}/metrics", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=2) as response:
            for line in response.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"node {self.node_id}: no {name} in /metrics")

    def wait_ready(self, timeout: float = START_SECONDS) -> None:
        def ready() -> bool:
            if not self.running:
                raise AssertionError(f"node {self.node_id} exited:\n{self.log.read_text()}")
            health = self.health() or {}
            return health.get("status") == "ok" and health.get("node") == self.node_id

        wait_until(ready, timeout, f"node {self.node_id} to answer its health check")

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def kill(self) -> None:
        """``kill -9`` of this node's process (its pid only), and wait for it to be gone."""
        if self.process is None or not self.running:
            raise AssertionError(f"node {self.node_id} is not running")
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


@dataclass
class Cluster:
    """Server nodes behind HAProxy, on one PostgreSQL database and one server key."""

    nodes: list[NodeProcess]
    haproxy: HAProxy
    database_url: str
    key_file: Path
    nats: NatsAccess
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Where clients reach the cluster: HAProxy."""
        return self.haproxy.url

    def node(self, node_id: str) -> NodeProcess:
        return next(node for node in self.nodes if node.node_id == node_id)

    def kill(self, node: NodeProcess) -> float:
        """``kill -9`` the node and wait until HAProxy marks it DOWN; the seconds that took."""
        node.kill()
        return self.haproxy.wait_for_status(node.node_id, "DOWN", timeout=10)

    def restart(self, node: NodeProcess) -> float:
        """Start the node again and wait until HAProxy marks it UP; seconds from the start."""
        started = time.monotonic()
        node.start()
        self.haproxy.wait_for_status(node.node_id, "UP", timeout=10)
        return time.monotonic() - started

    def ensure_all_up(self) -> None:
        """Every node running and UP in HAProxy (after a test that killed one)."""
        for node in self.nodes:
            if not node.running:
                node.start()
        for node in self.nodes:
            self.haproxy.wait_for_status(node.node_id, "UP", timeout=10)

    async def add_advisor(self, username: str, password: str) -> None:
        """An advisor account in the shared database (any node can log it in)."""
        db = await Database.open(self.database_url, migrate=False)
        try:
            await create_user(db, username=username, password=password, role="advisor")
        finally:
            await db.close()


def write_node_config(
    directory: Path,
    node_id: str,
    *,
    database_url: str,
    key_file: Path,
    nats: NatsAccess,
    settings: Mapping[str, Any] | None = None,
) -> NodeProcess:
    """A node's folder and configuration in ``directory``/``node_id``; not started."""
    folder = directory / node_id
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "data_dir": folder / "data",
        "database_url": database_url,
        "secret_key_file": key_file,
        "trusted_proxies": [PROXY_ADDRESS],
        **(settings or {}),
        "cluster": {
            "node_id": node_id,
            "nats_urls": list(nats.urls),
            **({"nats_token_file": nats.token_file} if nats.token_file else {}),
        },
    }
    path = folder / "server.toml"
    path.write_text(toml_text(config))
    return NodeProcess(node_id=node_id, port=port, config=path, log=folder / "server.log")


@contextlib.contextmanager
def start_cluster(
    directory: Path,
    *,
    haproxy_binary: str,
    database_url: str,
    nats: NatsAccess,
    count: int = 3,
    settings: Mapping[str, Any] | None = None,
    balance: str = "roundrobin",
) -> Iterator[Cluster]:
    """``count`` nodes (``node1`` ...) on ``database_url`` (migrated already: nodes starting
    together must not race to migrate it), each with ``settings`` added to its configuration,
    and HAProxy in front; everything is stopped on leaving, by its own pid."""
    key_file = directory / "server.key"
    load_or_create_key(key_file)  # one key for all: made here, before any node starts
    nodes = [
        write_node_config(
            directory,
            f"node{number}",
            database_url=database_url,
            key_file=key_file,
            nats=nats,
            settings=settings,
        )
        for number in range(1, count + 1)
    ]
    haproxy: HAProxy | None = None
    started = time.monotonic()
    try:
        for node in nodes:  # all at once: each takes a second or two to import and open
            node.launch()
        for node in nodes:
            node.wait_ready()
        nodes_seconds = time.monotonic() - started
        haproxy = start_haproxy(
            haproxy_binary,
            directory / "haproxy",
            [Node(name=node.node_id, address=node.address) for node in nodes],
            balance=balance,
        )
        yield Cluster(
            nodes=nodes,
            haproxy=haproxy,
            database_url=database_url,
            key_file=key_file,
            nats=nats,
            timings={"nodes": nodes_seconds, "all": time.monotonic() - started},
        )
    finally:
        if haproxy is not None:
            haproxy.stop()
        for node in nodes:
            node.stop()
