"""A real NATS server for the cluster tests: Debian's ``nats-server`` on a free port of
127.0.0.1, with a token (and TLS with a certificate of :mod:`tests.pki` if given), its
configuration and log in a folder of the test's.

:meth:`NatsServer.start` returns once the server answers on its port; :meth:`stop` ends it by
its process id (and waits); :meth:`restart` starts it again on the same port;
:meth:`freeze` and :meth:`thaw` stop and continue it (SIGSTOP, SIGCONT) for a server that
hangs without closing its connections. Without ``nats-server`` the tests are skipped with the
reason, except in CI (``CI=true``), where that is a failure.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.components import require, unavailable
from tests.pki import Issued

WHY = "NATS for the cluster tests (package nats-server)"
#: Seconds the server has to answer on its port.
START_SECONDS = 10.0


def nats_server_binary() -> str:
    """The path of nats-server; skips (fails in CI) when it is not installed."""
    if os.access("/usr/sbin/nats-server", os.X_OK):
        return "/usr/sbin/nats-server"
    return require("nats-server", WHY)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class NatsServer:
    """One nats-server process, configured in ``folder``."""

    def __init__(
        self, folder: Path, *, token: str | None = None, tls: Issued | None = None
    ) -> None:
        self.binary = nats_server_binary()
        self.folder = folder
        self.token = token or secrets.token_urlsafe(24)
        self.port = free_port()
        self.url = f"{'tls' if tls else 'nats'}://127.0.0.1:{self.port}"
        self.config = folder / "nats-server.conf"
        self.log = folder / "nats-server.log"
        self.token_file = folder / "nats-token"
        self.token_file.write_text(self.token + "\n")
        self.config.write_text(
            f'listen: "127.0.0.1:{self.port}"\n'
            f'authorization {{\n  token: "{self.token}"\n}}\n'
            # NATS's default, said here as MAX_PAYLOAD says it in server/cluster/bus.py.
            "max_payload: 1MB\n"
        )
        if tls is not None:
            with self.config.open("a") as config:
                config.write(
                    f'tls {{\n  cert_file: "{tls.certificate}"\n  key_file: "{tls.key}"\n}}\n'
                )
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start the server and wait until it answers on its port."""
        assert self._process is None, "nats-server is running already"
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [self.binary, "-c", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + START_SECONDS
        while not self._answers():
            if self._process.poll() is not None:
                self._process = None
                unavailable(f"nats-server did not start ({WHY}): {self._log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                unavailable(
                    f"nats-server did not answer on port {self.port} within "
                    f"{START_SECONDS:g} s: {self._log_tail()}"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        """End the server by its process id and wait for it; nothing if it is not running."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            with suppress(ProcessLookupError):  # it may have ended just now
                os.kill(process.pid, signal.SIGCONT)  # a frozen server cannot end
                os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()

    def restart(self) -> None:
        """Stop the server if it runs and start it again on the same port."""
        self.stop()
        self.start()

    def freeze(self) -> None:
        """Stop the process (SIGSTOP): it keeps its connections open but answers nothing."""
        assert self._process is not None, "nats-server is not running"
        os.kill(self._process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """Let a frozen server go on (SIGCONT)."""
        assert self._process is not None, "nats-server is not running"
        os.kill(self._process.pid, signal.SIGCONT)

    def _answers(self) -> bool:
        """Whether the server greets a new connection with its INFO line."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                return sock.recv(5) == b"INFO "
        except OSError:
            return False

    def _log_tail(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return " / ".join(lines[-3:]) or "nothing logged"


@contextmanager
def running_nats_server(
    folder: Path, *, token: str | None = None, tls: Issued | None = None
) -> Iterator[NatsServer]:
    """A started :class:`NatsServer` in ``folder``, stopped at the end."""
    server = NatsServer(folder, token=token, tls=tls)
    server.start()
    try:
        yield server
    finally:
        server.stop()
