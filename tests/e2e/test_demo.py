"""The README's first command: the demo starts everything, works, and Ctrl-C stops it all."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

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
                waiting: list[dict[str, str]] = []
                while not waiting and time.monotonic() < deadline:
                    message = json.loads((await ws.receive(timeout=30)).data)
                    if message["type"] == "queue":
                        waiting = message["waiting"]
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
