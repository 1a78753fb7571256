"""sd_notify (shared by the booth and the server) against a real AF_UNIX datagram socket, as
systemd listens: a path and an abstract name; the watchdog pings come from the event loop and
stop when it hangs. The server's aiohttp hooks and a real server process: tests/server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.systemd import Notifier, to_journal


class Listener:
    """The systemd end: a datagram socket bound where NOTIFY_SOCKET points."""

    def __init__(self, sock: socket.socket, notify_socket: str) -> None:
        self.sock = sock
        self.notify_socket = notify_socket

    def drain(self) -> list[bytes]:
        """Every datagram received so far, without waiting."""
        received: list[bytes] = []
        while True:
            try:
                received.append(self.sock.recv(4096))
            except BlockingIOError:
                return received


@pytest.fixture(params=["path", "abstract"])
def listener(request: pytest.FixtureRequest) -> Iterator[Listener]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setblocking(False)
    with contextlib.ExitStack() as stack:
        stack.callback(sock.close)
        if request.param == "path":
            # A short directory: socket paths are limited to 107 bytes.
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sd-")))
            path = str(directory / "notify")
            sock.bind(path)
            yield Listener(sock, path)
        else:
            name = f"videobooth-test-{secrets.token_hex(6)}"
            sock.bind(b"\0" + name.encode())
            yield Listener(sock, "@" + name)


def test_each_notification_is_one_datagram(listener: Listener) -> None:
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": listener.notify_socket})
    assert notifier.enabled and notifier.watchdog_interval is None
    assert notifier.ready()
    assert notifier.status("in call\nwith  an advisor")  # systemd shows one line
    assert notifier.watchdog()
    assert notifier.stopping()
    assert listener.drain() == [
        b"READY=1",
        b"STATUS=in call with an advisor",
        b"WATCHDOG=1",
        b"STOPPING=1",
    ]


async def test_watchdog_pings_at_half_the_timeout_from_the_loop(listener: Listener) -> None:
    notifier = Notifier.from_environ(
        {"NOTIFY_SOCKET": listener.notify_socket, "WATCHDOG_USEC": "40000"}
    )
    assert notifier.watchdog_interval == 0.02
    task = asyncio.create_task(notifier.watchdog_task(asyncio.get_running_loop()))
    try:
        await asyncio.sleep(0.11)
        pings = listener.drain()
        assert set(pings) == {b"WATCHDOG=1"}
        assert 3 <= len(pings) <= 7  # every 20 ms, loosely
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_hung_loop_stops_the_pings(listener: Listener) -> None:
    notifier = Notifier(listener.notify_socket, watchdog_usec=40_000)
    task = asyncio.create_task(notifier.watchdog_task())
    try:
        await asyncio.sleep(0.05)
        assert listener.drain()  # alive: pinging
        time.sleep(0.2)  # the loop hangs in a blocking call, five watchdog intervals
        assert listener.drain() == []  # so systemd hears nothing and restarts the process
        await asyncio.sleep(0.05)
        assert listener.drain()  # and a loop that recovers pings again
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_outside_systemd_everything_is_a_no_op() -> None:
    notifier = Notifier.from_environ({})
    assert not notifier.enabled
    assert not notifier.ready()
    assert not notifier.status("idle")
    assert not notifier.watchdog()
    assert not notifier.stopping()
    await asyncio.wait_for(notifier.watchdog_task(), timeout=1)  # returns at once


async def test_a_watchdog_meant_for_another_process_is_not_ours(listener: Listener) -> None:
    environ = {
        "NOTIFY_SOCKET": listener.notify_socket,
        "WATCHDOG_USEC": "40000",
        "WATCHDOG_PID": str(os.getpid() + 1),
    }
    assert Notifier.from_environ(environ).watchdog_interval is None
    environ["WATCHDOG_PID"] = str(os.getpid())
    assert Notifier.from_environ(environ).watchdog_interval == 0.02
    await asyncio.wait_for(
        Notifier.from_environ({**environ, "WATCHDOG_USEC": "0"}).watchdog_task(), timeout=1
    )
    assert listener.drain() == []


async def test_the_watchdog_refuses_to_vouch_for_another_loop() -> None:
    other = asyncio.new_event_loop()
    try:
        with pytest.raises(RuntimeError, match="must run on the loop it watches"):
            await Notifier("@x", watchdog_usec=40_000).watchdog_task(other)
    finally:
        other.close()


def test_unsupported_or_unreadable_settings_disable_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": "vsock:2:1234", "WATCHDOG_USEC": "x"})
    assert not notifier.enabled and notifier.watchdog_interval is None
    assert [r.getMessage() for r in caplog.records] == [
        "systemd: NOTIFY_SOCKET 'vsock:2:1234' is not a socket path; not notifying",
        "systemd: WATCHDOG_USEC 'x' or WATCHDOG_PID None unreadable; no watchdog",
    ]


def test_a_missing_socket_is_logged_once_per_outage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="protocol.systemd")
    path = tmp_path / "n"
    notifier = Notifier(str(path))
    assert not notifier.watchdog()
    assert not notifier.watchdog()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        assert notifier.watchdog()
        assert sock.recv(100) == b"WATCHDOG=1"
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert messages[0].startswith(f"systemd: cannot notify {path}: ")
    assert messages[1] == f"systemd: notifying {path} works again"


# ---------------------------------------------------------------- log lines for the journal


def _journal_stream(path: Path) -> str:
    status = path.stat()
    return f"{status.st_dev}:{status.st_ino}"


def test_a_process_whose_standard_error_is_the_journal_writes_priorities(tmp_path: Path) -> None:
    """journald reads a ``<N>`` prefix as the line's priority; the booth's errors are then
    found by ``journalctl -p err`` (and reach the console of a test machine that forwards
    warnings). A process whose standard error is redirected elsewhere keeps time stamps."""
    program = (
        "import logging\n"
        "from protocol.systemd import configure_logging\n"
        "configure_logging('info')\n"
        "log = logging.getLogger('kiosk.booth')\n"
        "log.info('started')\n"
        "log.warning('slow')\n"
        "log.error('self-test: microphone: %s', 'no frame')\n"
        "try:\n"
        "    raise ValueError('broken')\n"
        "except ValueError:\n"
        "    log.exception('failed')\n"
    )
    stream = tmp_path / "journal"
    with stream.open("w") as sink:
        environ = {**os.environ, "JOURNAL_STREAM": _journal_stream(stream)}
        done = subprocess.run([sys.executable, "-c", program], stderr=sink, env=environ)
    assert done.returncode == 0
    lines = stream.read_text().splitlines()
    assert lines[:3] == [
        "<6>INFO kiosk.booth: started",
        "<4>WARNING kiosk.booth: slow",
        "<3>ERROR kiosk.booth: self-test: microphone: no frame",
    ]
    assert lines[3] == "<3>ERROR kiosk.booth: failed"
    assert all(line.startswith("<3>") for line in lines[4:]) and "ValueError: broken" in lines[-1]

    # The same variable, but standard error is another file: not the journal.
    other = tmp_path / "other"
    with other.open("w") as sink:
        environ = {**os.environ, "JOURNAL_STREAM": _journal_stream(stream)}
        subprocess.run([sys.executable, "-c", program], stderr=sink, env=environ, check=True)
    first = other.read_text().splitlines()[0]
    assert not first.startswith("<") and first.endswith(" INFO kiosk.booth: started")


@pytest.mark.parametrize("value", ["", "nonsense", "1:2:3", "x:y"])
def test_an_unreadable_journal_stream_is_not_the_journal(value: str, tmp_path: Path) -> None:
    with (tmp_path / "log").open("w") as stream:
        assert to_journal({"JOURNAL_STREAM": value}, stream) is False
    assert to_journal({}, sys.stderr) is False
