"""sd_notify for the packaged unit: datagrams on a real AF_UNIX socket, as systemd receives them,
from the notifier and from a real ``videobooth-server serve`` process."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.systemd import SystemdNotifier


class NotifySocket:
    """systemd's side: a datagram socket that collects what the service says."""

    def __init__(self, sock: socket.socket, address: str) -> None:
        self.sock = sock
        #: As systemd writes it into ``$NOTIFY_SOCKET``.
        self.address = address

    def receive(self, timeout: float = 5.0) -> list[str]:
        """The next datagram's lines."""
        self.sock.settimeout(timeout)
        return self.sock.recv(4096).decode().split("\n")

    def receive_until(self, line: str, timeout: float = 20.0) -> list[list[str]]:
        """Every datagram up to and including the first with ``line``."""
        deadline = time.monotonic() + timeout
        seen: list[list[str]] = []
        while not seen or line not in seen[-1]:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {line!r} within {timeout} s; got {seen}")
            seen.append(self.receive(left))
        return seen


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        yield NotifySocket(sock, str(path))


@pytest.fixture
def abstract_socket() -> Iterator[NotifySocket]:
    name = f"videobooth-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        yield NotifySocket(sock, "@" + name)


def test_ready_status_stopping_and_watchdog_as_datagrams(notify_socket: NotifySocket) -> None:
    notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": notify_socket.address})
    assert notifier.enabled
    assert notifier.status("starting:\n opening   the database")
    assert notify_socket.receive() == ["STATUS=starting: opening the database"]
    assert notifier.ready("listening on http://127.0.0.1:8080/")
    assert notify_socket.receive() == ["READY=1", "STATUS=listening on http://127.0.0.1:8080/"]
    assert notifier.watchdog()
    assert notify_socket.receive() == ["WATCHDOG=1"]
    assert notifier.stopping("stopping")
    assert notify_socket.receive() == ["STOPPING=1", "STATUS=stopping"]


def test_an_abstract_socket_is_written_with_an_at_sign(abstract_socket: NotifySocket) -> None:
    notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": abstract_socket.address})
    assert notifier.ready("up")
    assert abstract_socket.receive() == ["READY=1", "STATUS=up"]


def test_outside_systemd_nothing_is_sent() -> None:
    notifier = SystemdNotifier.from_environ({})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    assert not notifier.ready("up")
    assert not notifier.watchdog()


def test_a_notify_socket_that_is_not_a_path_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not notifier.enabled
    assert "NOTIFY_SOCKET 'vsock:2:1234' is not a socket path" in caplog.text


def test_the_watchdog_pings_at_half_its_timeout_for_this_process_only() -> None:
    ours = SystemdNotifier.from_environ(
        {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}, pid=42
    )
    assert ours.watchdog_interval == 15.0
    # Inherited from a parent: the watchdog is the parent's.
    theirs = SystemdNotifier.from_environ(
        {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "41"}, pid=42
    )
    assert theirs.watchdog_interval is None
    unset_pid = SystemdNotifier.from_environ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "2000"})
    assert unset_pid.watchdog_interval == 0.001


def test_unreadable_watchdog_settings_mean_no_watchdog(caplog: pytest.LogCaptureFixture) -> None:
    notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "soon"})
    assert notifier.watchdog_interval is None
    assert "WATCHDOG_USEC 'soon' or WATCHDOG_PID None unreadable; no watchdog" in caplog.text


def test_a_vanished_socket_is_reported_once_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gone = tmp_path / "gone"
    notifier = SystemdNotifier(str(gone))
    with caplog.at_level(logging.WARNING):
        assert not notifier.watchdog()
        assert not notifier.watchdog()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"systemd: cannot notify {gone}: ")


async def test_the_watchdog_pings_from_the_event_loop(notify_socket: NotifySocket) -> None:
    notifier = SystemdNotifier(notify_socket.address, watchdog_usec=100_000)
    task = asyncio.create_task(notifier.watchdog_task())
    try:
        await asyncio.sleep(0.22)
    finally:
        task.cancel()
    pings = 0
    notify_socket.sock.setblocking(False)
    while True:
        try:
            assert notify_socket.sock.recv(100) == b"WATCHDOG=1"
        except BlockingIOError:
            break
        pings += 1
    # At 0, 0.05, 0.10, 0.15 and 0.20 s.
    assert 4 <= pings <= 6, pings


async def test_no_watchdog_task_without_a_watchdog() -> None:
    await asyncio.wait_for(SystemdNotifier("/run/x").watchdog_task(), 1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_the_server_says_ready_once_it_listens_pings_and_says_stopping(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    """``videobooth-server serve`` under a fake systemd: READY=1 when its port answers, pings
    at half of WATCHDOG_USEC, STOPPING=1 and a clean exit on SIGTERM (``systemctl stop``)."""
    port = _free_port()
    env = {
        **os.environ,
        "NOTIFY_SOCKET": notify_socket.address,
        "WATCHDOG_USEC": "400000",
        "WATCHDOG_PID": "",
    }
    command = [sys.executable, "-m", "server", "--data-dir", str(tmp_path / "data"), "serve"]
    log = tmp_path / "server.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [*command, "--port", str(port)], env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        before = notify_socket.receive_until("READY=1")
        assert before[0] == ["STATUS=starting: opening the database"]
        assert before[-1] == ["READY=1", f"STATUS=listening on http://127.0.0.1:{port}/"]
        # Said once the port listens, not before.
        url = f"http://127.0.0.1:{port}/api/v1/health"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200
        started = time.monotonic()
        pings = notify_socket.receive_until("WATCHDOG=1")
        pings += notify_socket.receive_until("WATCHDOG=1")
        pings += notify_socket.receive_until("WATCHDOG=1")
        assert time.monotonic() - started < 2, pings
        server.send_signal(signal.SIGTERM)
        last = notify_socket.receive_until("STOPPING=1")
        assert last[-1] == ["STOPPING=1", "STATUS=stopping: closing connections"]
        assert server.wait(timeout=20) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        print(log.read_text(errors="replace"))
