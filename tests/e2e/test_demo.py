"""The README's first command: the demo starts everything, works, and Ctrl-C stops it all; a
second demo on a busy port says which port is taken and starts nothing."""

from __future__ import annotations

import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp
import pytest

from protocol import QueueView
from tests.e2e.conftest import REPO, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def _read_until(process: subprocess.Popen[str], pattern: str, timeout: float) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError("demo ended early:\n" + "".join(lines))
        lines.append(line)
        if re.search(pattern, line):
            return lines
    raise AssertionError(f"no {pattern!r} within {timeout} s:\n" + "".join(lines))


async def test_demo_runs_server_and_booth_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server.demo",
            "--data-dir",
            str(tmp_path / "demo"),
            "--port",
            str(port),
            "--display",
            "headless",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
        env=env,
    )
    try:
        lines = _read_until(process, r"Press Ctrl-C", 60)
        text = "".join(lines)
        assert f"http://127.0.0.1:{port}/advisor/" in text
        password = re.search(r"Password:\s+(\S+)\s+\(shown once\)", text)
        assert password, text

        # The printed password logs in, and the demo booth is waiting for an advisor.
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            login = {"username": "advisor", "password": password.group(1)}
            async with http.post(f"{base}/api/v1/auth/login", json=login) as response:
                assert response.status == 200
            async with http.ws_connect(f"{base}/api/v1/ws") as ws:
                deadline = time.monotonic() + 30
                queue = QueueView()
                while not queue.waiting and time.monotonic() < deadline:
                    queue.apply(json.loads((await ws.receive(timeout=30)).data))
                waiting = queue.waiting
                assert waiting and waiting[0]["caller_name"].startswith("Demo booth")
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
        assert process.stdout is not None
        process.stdout.close()
    assert code == 0
    # Everything it started is gone: the port is free again.
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


class _Health(http.server.BaseHTTPRequestHandler):
    """Another server on the port: it answers the health check as a running demo would."""

    def do_GET(self) -> None:
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_second_demo_on_a_busy_port_says_which_port_and_starts_nothing(
    tmp_path: Path,
) -> None:
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    port = other.server_address[1]
    serving = threading.Thread(target=other.serve_forever, daemon=True)
    serving.start()
    data_dir = tmp_path / "second-demo"
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "server.demo",
                "--data-dir",
                str(data_dir),
                "--port",
                str(port),
                "--display",
                "headless",
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            env={**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"},
            timeout=60,
            check=False,
        )
    finally:
        other.shutdown()
        other.server_close()
    assert result.returncode == 1, result.stdout + result.stderr
    # Not a word of a running demo or a password (they would belong to the other server) ...
    assert "running" not in result.stdout and "Password" not in result.stdout, result.stdout
    # ... one line naming the port and what to do, and no traceback.
    assert f"TCP port {port} on 127.0.0.1 is taken" in result.stderr, result.stderr
    assert "--port" in result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert not data_dir.exists()  # nothing prepared
