"""The real stack the end-to-end tests run, started for a benchmark: coturn, the server on a
temporary SQLite database, headless booths with the test-pattern camera, and Debian's Chromium
driven by Playwright. The processes are started by the e2e tests' own helpers
(``tests/e2e/conftest.py``), so the benchmark measures what the tests prove works."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procs import descendants
from tests.components import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.conftest import (
    BoothProcess,
    Coturn,
    Server,
    launch_booth,
    login_advisor,
    make_server,
    stop_process,
)
from tests.e2e.conftest import start_coturn as start_e2e_coturn

#: Apart from the e2e tests' range, so a benchmark and a test run can share the machine.
RELAY_MIN_PORT, RELAY_MAX_PORT = 49300, 49400


class BenchError(RuntimeError):
    """A benchmark cannot run or went wrong; the message says what to do."""


def start_coturn(workdir: Path) -> Coturn:
    """coturn on 127.0.0.1 in ``use-auth-secret`` mode, as the server's relay."""
    binary = shutil.which("turnserver")
    if binary is None:
        raise BenchError("coturn (turnserver) is not installed: apt-get install coturn")
    try:
        return start_e2e_coturn(binary, workdir, min_port=RELAY_MIN_PORT, max_port=RELAY_MAX_PORT)
    except AssertionError as exc:
        raise BenchError(f"coturn did not start: {exc}") from exc


def turn_credentials(coturn: Coturn, name: str = "bench") -> tuple[str, str]:
    """A user name and password for ``coturn``, valid for an hour (coturn's REST scheme)."""
    user = f"{int(time.time()) + 3600}:{name}"
    digest = hmac.new(coturn.secret.encode(), user.encode(), hashlib.sha1).digest()
    return user, base64.b64encode(digest).decode()


@dataclass
class Stack:
    """coturn, the server (relay-only ICE for browsers and booths) and Chromium, running."""

    workdir: Path
    coturn: Coturn
    server: Server
    browser: Any
    advisor: Any = None
    booths: list[BoothProcess] = field(default_factory=list)

    def start_booth(self, name: str, *extra: str, settings: str = "") -> BoothProcess:
        """A headless booth with the test-pattern camera, enrolled under ``name``; ``extra``:
        its command line's further arguments, ``settings``: further tables of its booth.toml."""
        credential = self.server.add_booth(name)
        slug = name.lower().replace(" ", "-")
        config = self.workdir / f"{slug}.toml"
        config.write_text(
            f'server_url = "{self.server.url}"\ncredential = "{credential}"\n'
            '[camera]\nkind = "test-pattern"\n' + settings
        )
        booth = launch_booth(config, self.workdir / slug, *extra)
        self.booths.append(booth)
        return booth

    async def login_advisor(self) -> Any:
        """The advisor's page, logged in and showing the queue."""
        self.advisor = await login_advisor(self.browser, self.server)
        return self.advisor

    def pids(self) -> dict[str, list[int]]:
        """The processes of the stack by role (Chromium: its whole process tree)."""
        result = {
            "server": [self.server.process.pid] if self.server.process else [],
            "coturn": [self.coturn.process.pid],
            "chromium": descendants(os.getpid(), "chromium"),
        }
        for n, booth in enumerate(self.booths):
            result["booth" if n == 0 else f"booth {n + 1}"] = [booth.process.pid]
        return result


@contextlib.asynccontextmanager
async def running_stack(workdir: Path) -> AsyncIterator[Stack]:
    """Start coturn, the server and Chromium in ``workdir``; stop everything on the way out."""
    if not os.access(CHROMIUM, os.X_OK):
        raise BenchError(f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.async_api import async_playwright

    coturn = start_coturn(workdir)
    server: Server | None = None
    stack: Stack | None = None
    try:
        server = make_server(workdir, coturn)
        server.start()
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                stack = Stack(workdir=workdir, coturn=coturn, server=server, browser=browser)
                yield stack
            finally:
                for booth in stack.booths if stack else []:
                    stop_process(booth.process)
                await browser.close()
    finally:
        if server is not None:
            server.stop()
        stop_process(coturn.process)
