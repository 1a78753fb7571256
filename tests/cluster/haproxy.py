"""HAProxy in front of the cluster tests' nodes, and what its statistics say about them.

The configuration is the one ``videobooth-server proxy-config --kind haproxy`` writes
(``server/proxy.py``), with what a test needs instead of a data centre's: plain HTTP on a free
port of 127.0.0.1, a check every 250 ms (two failures take a node out, two successes bring it
back; a node may take 2 s to answer one, so a node busy on a loaded test machine is not taken
out, while a dead one, which refuses the connection, is at once), the stats socket in the test's
folder, no chroot and no change of user. HAProxy connects to the nodes from 127.0.0.2, the one
address the nodes' ``trusted_proxies`` name: the tests' own requests come from 127.0.0.1, so
they are a client's, and a client's X-Forwarded-For is not believed.

HAProxy runs in the foreground (``-db``) and is ended by its own pid only.
"""

from __future__ import annotations

import csv
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from server.proxy import BalancerSettings, Node, haproxy_config
from tests.e2e.conftest import free_port, stop_process, wait_until

BINARY = "/usr/sbin/haproxy"
WHY = "the cluster tests' load balancer (Debian package haproxy)"
#: The address HAProxy reaches the nodes from; the nodes trust X-Forwarded-* from it alone.
PROXY_ADDRESS = "127.0.0.2"
#: Health checks: every CHECK_SECONDS; FALL failures mark a node DOWN, RISE successes UP.
CHECK_SECONDS, FALL, RISE = 0.25, 2, 2
#: How long a node may take to answer a check (HAProxy's ``timeout check``). With 250 ms (the
#: default: ``inter``), a node answering 200 booths' logins beside an emulated booth on two
#: cores missed two checks and lost its 69 connections (a full test run: "Layer7 timeout").
CHECK_TIMEOUT_SECONDS: float | None = 2.0
#: HAProxy's name for the group of nodes (``backend`` in the generated configuration).
BACKEND = "videobooth_nodes"


@dataclass
class HAProxy:
    port: int
    config: Path
    stats_socket: Path
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def longest_down_seconds(self) -> float:
        """The longest a dead node can take to be marked DOWN: FALL checks, the one under way
        and the check's connection, refused at once or given up after ``inter`` (HAProxy
        connects for a check within the smaller of ``timeout connect`` and ``inter``)."""
        return (FALL + 2) * CHECK_SECONDS

    def show_stat(self) -> list[dict[str, str]]:
        """``show stat`` on the stats socket: one row a frontend, backend and server."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.stats_socket))
            sock.sendall(b"show stat\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        text = b"".join(chunks).decode()
        if not text.startswith("# "):
            raise AssertionError(f"HAProxy's stats socket answered {text[:200]!r}")
        return list(csv.DictReader(text[2:].splitlines()))

    def servers(self) -> dict[str, dict[str, str]]:
        """The nodes' rows of ``show stat``, by node name."""
        return {
            row["svname"]: row
            for row in self.show_stat()
            if row["pxname"] == BACKEND and row["svname"] not in {"FRONTEND", "BACKEND"}
        }

    def status(self, name: str) -> str:
        """What HAProxy says of the node: UP, DOWN, or on its way (``UP 1/2``, ``DOWN 1/2``)."""
        return self.servers()[name]["status"]

    def statuses(self) -> dict[str, str]:
        return {name: row["status"] for name, row in self.servers().items()}

    def served(self) -> dict[str, int]:
        """Requests (HAProxy's streams) each node has been given so far."""
        return {name: int(row["stot"]) for name, row in self.servers().items()}

    def current(self) -> dict[str, int]:
        """Requests and upgraded sockets each node holds now."""
        return {name: int(row["scur"]) for name, row in self.servers().items()}

    def wait_for_status(self, name: str, status: str, timeout: float) -> float:
        """Wait until the node is ``status`` (``UP`` or ``DOWN``); the seconds it took."""
        started = time.monotonic()
        deadline = started + timeout
        while (now := self.status(name)) != status:
            if self.process.poll() is not None:
                raise AssertionError(f"HAProxy exited:\n{self.log.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"HAProxy still says {name} is {now!r} after {timeout} s, not {status}; "
                    f"all: {self.statuses()}"
                )
            time.sleep(0.02)
        return time.monotonic() - started

    def stop(self) -> None:
        stop_process(self.process)


def start_haproxy(
    binary: str,
    directory: Path,
    nodes: Sequence[Node],
    *,
    balance: str = "roundrobin",
) -> HAProxy:
    """HAProxy in front of ``nodes``, its files in ``directory``; it returns once the stats
    socket answers and every node is UP (the nodes must be answering already)."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    stats_socket = directory / "haproxy.sock"
    config = directory / "haproxy.cfg"
    config.write_text(
        haproxy_config(
            BalancerSettings(
                nodes=tuple(nodes),
                certificate=None,
                listen=f"127.0.0.1:{port}",
                balance=balance,
                check_seconds=CHECK_SECONDS,
                fall=FALL,
                rise=RISE,
                check_timeout_seconds=CHECK_TIMEOUT_SECONDS,
                stats_socket=stats_socket,
                system_user=None,
                source=PROXY_ADDRESS,
            )
        )
    )
    log = directory / "haproxy.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [binary, "-db", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    haproxy = HAProxy(port=port, config=config, stats_socket=stats_socket, log=log, process=process)

    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"HAProxy exited:\n{log.read_text()}")
        try:
            return set(haproxy.statuses().values()) == {"UP"}
        except OSError:
            return False

    try:
        wait_until(answers, 10, "HAProxy to answer on its stats socket with every node UP")
    except AssertionError:
        haproxy.stop()
        raise
    return haproxy
