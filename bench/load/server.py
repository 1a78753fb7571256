"""The server process under load, and the small process that probes its API from outside
the load generator's busy event loop."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.load.settings import API_PATHS, BOOTH_HEARTBEAT_SECONDS, PASSWORD, REPO
from bench.procs import rss_bytes

# ---------------------------------------------------------------- the server process


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_kib(pid: int) -> int:
    """Resident memory of process ``pid``, KiB."""
    return rss_bytes(pid) // 1024


@dataclass
class ServerProcess:
    data_dir: Path
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    #: The server's ``heartbeat_seconds``: the interval it asks booths to heartbeat at.
    heartbeat_seconds: float = BOOTH_HEARTBEAT_SECONDS

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        return f"sqlite+aiosqlite:///{(self.data_dir / 'videobooth.db').resolve()}"

    def _spawn(self) -> None:
        config = self.data_dir / "server.toml"
        config.write_text(f"heartbeat_seconds = {self.heartbeat_seconds!r}\n")
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "server",
                    "--config",
                    str(config),
                    "--data-dir",
                    str(self.data_dir),
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )

    async def start(self, http: aiohttp.ClientSession) -> None:
        """Start ``python -m server serve`` and wait until it answers."""
        self._spawn()
        deadline = time.monotonic() + 30
        while True:
            if not self.alive:
                raise RuntimeError(f"the server exited:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(f"{self.url}/api/v1/health") as response:
                    if response.status == 200:
                        return
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not answer within 30 s")
            await asyncio.sleep(0.1)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def logged_errors(self) -> list[str]:
        """Lines of the server's log at ERROR or worse, and tracebacks."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [
            line.strip()
            for line in text.splitlines()
            if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")
        ]


# ---------------------------------------------------------------- the API probe process


async def _probe() -> None:
    """The probe process: a job (JSON) on stdin; log in as an advisor, say ``ready``, wait for
    ``go``, then call the API at ``rate`` a second for ``seconds`` without waiting for one
    answer before the next request (a steady offered load), and print the samples (JSON)."""
    loop = asyncio.get_running_loop()
    job = json.loads(await loop.run_in_executor(None, sys.stdin.readline))
    url, rate, seconds = job["url"], float(job["rate"]), float(job["seconds"])
    samples: list[tuple[str, float]] = []
    failures: list[str] = []
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(
            f"{url}/api/v1/auth/login",
            json={"username": job["username"], "password": job["password"]},
        ) as response:
            if response.status != 200:
                failures.append(f"login: HTTP {response.status}")
        print("ready", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)

        async def one(path: str) -> None:
            start = time.perf_counter()
            try:
                async with http.get(f"{url}{path}") as response:
                    await response.read()
                    if response.status != 200:
                        failures.append(f"{path}: HTTP {response.status}")
                        return
            except (aiohttp.ClientError, OSError) as exc:
                failures.append(f"{path}: {exc}")
                return
            samples.append((path, (time.perf_counter() - start) * 1000))

        tasks = set()
        paths = itertools.cycle(API_PATHS)
        begin = time.perf_counter()
        for i in range(int(rate * seconds) if not failures else 0):
            delay = begin + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(next(paths)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
    print(json.dumps({"samples": samples, "failures": failures}), flush=True)


class ApiProbe:
    """The API's latency measured from its own small process, so that the load generator's
    busy event loop does not count as the server's latency."""

    def __init__(self, url: str, rate: float, seconds: float) -> None:
        self._job = {
            "url": url,
            "rate": rate,
            "seconds": seconds,
            "username": "probe",
            "password": PASSWORD,
        }
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start the process and let it log in (argon2 on the server: not during the load)."""
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.load",
            "--probe",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=REPO,
        )
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._process.stdin.write(json.dumps(self._job).encode() + b"\n")
        await self._process.stdin.drain()
        if await self._process.stdout.readline() != b"ready\n":
            await self._process.wait()
            raise RuntimeError(
                f"the API probe did not start (exit code {self._process.returncode})"
            )

    async def run(self) -> tuple[list[tuple[str, float]], list[str]]:
        """Measure now; the samples (path, ms) and the failures."""
        assert self._process is not None
        out, _ = await self._process.communicate(b"go\n")
        if self._process.returncode != 0:
            raise RuntimeError(f"the API probe failed (exit code {self._process.returncode})")
        answer: dict[str, Any] = json.loads(out)
        return [(p, float(ms)) for p, ms in answer["samples"]], list(answer["failures"])
