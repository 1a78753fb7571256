"""Real processes for end-to-end tests: coturn, the server, booths and Chromium."""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kiosk.booth.status import BoothStatus
from server.relay import RelaySettings, coturn_config
from tests.components import CHROMIUM, CHROMIUM_ARGS, require
from tests.e2e import axe

REPO = Path(__file__).resolve().parents[2]
RELAY_MIN_PORT, RELAY_MAX_PORT = 49160, 49260


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The accessibility audits of the run (rule set, states, elements checked), printed even
    when every test passed."""
    lines = axe.summary()
    if lines:
        terminalreporter.section("accessibility audits (axe-core)")
        for line in lines:
            terminalreporter.write_line(line)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def listener_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1, below the kernel's range of ephemeral
    ports (32768 and up): a server listening on both (coturn) must not find its TCP port taken
    by some client's outgoing connection meanwhile, which one picked among the ephemeral ports
    can be (coturn then retries binding it for a minute and answers nothing meanwhile)."""
    for port in random.sample(range(20_000, 32_000), 200):
        try:
            with (
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
            ):
                udp.bind(("127.0.0.1", port))
                tcp.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise AssertionError("no port free for both UDP and TCP between 20000 and 32000")


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Coturn:
    port: int
    secret: str
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"


def start_coturn(
    turnserver: str,
    directory: Path,
    *,
    min_port: int = RELAY_MIN_PORT,
    max_port: int = RELAY_MAX_PORT,
    secret: str | None = None,
) -> Coturn:
    """coturn on 127.0.0.1 (``use-auth-secret``), its files in ``directory``; also used by
    bench/, which passes its own relay port range, and by the relay pool's test, whose relays
    share one ``secret``."""
    port, secret = listener_port(), secret or secrets.token_hex(24)
    log = directory / "turnserver.log"
    conf = directory / "turnserver.conf"
    conf.write_text(
        coturn_config(
            RelaySettings(
                secret=secret,
                port=port,
                realm="videobooth.test",
                min_port=min_port,
                max_port=max_port,
                allow_loopback=True,
                log_file=log,
                pid_file=directory / "turnserver.pid",
                verbose=True,
            )
        )
    )
    process = subprocess.Popen(
        [turnserver, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_until(
            lambda: log.exists() and "listener opened on" in log.read_text(errors="replace"),
            10,
            "coturn to listen",
        )
    except AssertionError:
        stop_process(process)
        raise
    return Coturn(port=port, secret=secret, log=log, process=process)


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Coturn]:
    turnserver = require("turnserver", "the TURN relay (Debian package coturn)")
    relay = start_coturn(turnserver, tmp_path)
    yield relay
    stop_process(relay.process)


def _run_cli(args: list[str], *, stdin: str | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "server", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"videobooth-server {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


@dataclass
class Server:
    url: str
    config: Path
    data_dir: Path
    log: Path
    advisor_password: str
    process: subprocess.Popen[bytes] | None = None
    port: int = 0

    def add_booth(self, name: str) -> str:
        out = _run_cli(["--config", str(self.config), "booth", "add", name])
        return out.strip().splitlines()[-1]

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "server", "--config", str(self.config), "serve"],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )

        def healthy() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"server exited:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/v1/health", timeout=1) as r:
                    return bool(r.status == 200)
            except OSError:
                return False

        wait_until(healthy, 30, "the server to answer")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


def make_server(tmp_path: Path, coturn: Coturn | None) -> Server:
    data_dir = tmp_path / "server-data"
    port = free_port()
    lines = [f'data_dir = "{data_dir}"', f"port = {port}"]
    if coturn is not None:
        lines += [
            'browser_ice_policy = "relay"',
            "[turn]",
            f'urls = ["{coturn.url}"]',
            f'secret = "{coturn.secret}"',
            "ttl_seconds = 600",
        ]
    config = tmp_path / "server.toml"
    config.write_text("\n".join(lines) + "\n")
    password = secrets.token_urlsafe(16)
    _run_cli(
        [
            "--config",
            str(config),
            "user",
            "add",
            "advisor",
            "--name",
            "Alex Advisor",
            "--password-stdin",
        ],
        stdin=password + "\n",
    )
    return Server(
        url=f"http://127.0.0.1:{port}",
        config=config,
        data_dir=data_dir,
        log=tmp_path / "server.log",
        advisor_password=password,
        port=port,
    )


@pytest.fixture
def relayed_server(tmp_path: Path, coturn: Coturn) -> Iterator[Server]:
    server = make_server(tmp_path, coturn)
    server.start()
    yield server
    server.stop()


@dataclass
class BoothProcess:
    status_file: Path
    log: Path
    process: subprocess.Popen[bytes]
    started_at: float = field(default_factory=time.time)

    def report(self) -> BoothStatus | None:
        """The booth's status file, parsed; None before it is written."""
        return BoothStatus.read(self.status_file)

    def status(self) -> dict[str, Any]:
        """The status file as a dictionary (empty before it is written)."""
        report = self.report()
        return report.model_dump() if report is not None else {}

    def wait_for_report(
        self, check: Callable[[BoothStatus], bool], timeout: float, what: str
    ) -> BoothStatus:
        result: BoothStatus | None = None

        def ok() -> bool:
            nonlocal result
            if self.process.poll() is not None:
                raise AssertionError(f"booth exited:\n{self.log.read_text()}")
            result = self.report()
            return result is not None and check(result)

        try:
            wait_until(ok, timeout, what)
        except AssertionError as exc:
            last = result.to_json() if result is not None else "none"
            raise AssertionError(f"{exc}\nlast status: {last}") from exc
        assert result is not None
        return result

    def wait_for(
        self, check: Callable[[dict[str, Any]], bool], timeout: float, what: str
    ) -> dict[str, Any]:
        """:meth:`wait_for_report` for checks that read the file's keys."""
        return self.wait_for_report(lambda r: check(r.model_dump()), timeout, what).model_dump()


def launch_booth(
    config: Path, prefix: Path, *extra: str, wrapper: tuple[str, ...] = ()
) -> BoothProcess:
    """A headless booth process for ``config``; status and log at ``prefix``.status.json/.log.
    ``wrapper`` runs it inside something (``ip netns exec <branch>``)."""
    status_file = prefix.with_name(prefix.name + ".status.json")
    log = prefix.with_name(prefix.name + ".log")
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                *wrapper,
                sys.executable,
                "-m",
                "kiosk",
                "--config",
                str(config),
                "--display",
                "headless",
                "--status-file",
                str(status_file),
                *extra,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env,
        )
    return BoothProcess(status_file=status_file, log=log, process=process)


@pytest.fixture
def start_booth(tmp_path: Path) -> Iterator[Callable[..., BoothProcess]]:
    booths: list[BoothProcess] = []

    def start(server: Server, name: str = "Branch 1 booth", *extra: str) -> BoothProcess:
        credential = server.add_booth(name)
        slug = name.lower().replace(" ", "-")
        config = tmp_path / f"{slug}.toml"
        config.write_text(
            f'server_url = "{server.url}"\ncredential = "{credential}"\n'
            '[camera]\nkind = "test-pattern"\n'
        )
        booth = launch_booth(config, tmp_path / slug, *extra)
        booths.append(booth)
        return booth

    yield start
    for booth in booths:
        stop_process(booth.process)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    require(CHROMIUM, "the advisor's browser (Debian package chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            await instance.close()


#: The time zone of these tests' servers (the default): the pages take and show times in it.
SERVER_ZONE = ZoneInfo("Europe/Berlin")


async def appointment_start() -> str:
    """A start time for the appointment form, a minute ahead and on today's date, as the
    organisation's clock reads it (the form takes times in the server's zone).

    The workspace lists the appointments of the organisation's day, so an appointment made just
    before midnight would land on tomorrow's list: close to midnight, wait for the new day.
    """
    now = datetime.now(SERVER_ZONE)
    if (now + timedelta(minutes=3)).date() != now.date():
        midnight = datetime.combine(
            now.date() + timedelta(days=1), datetime.min.time(), tzinfo=SERVER_ZONE
        )
        await asyncio.sleep((midnight - now).total_seconds() + 1)
        now = datetime.now(SERVER_ZONE)
    return (now + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")


async def login_advisor(browser: Any, server: Server) -> Any:
    context = await browser.new_context(permissions=["camera", "microphone"])
    page = await context.new_page()
    page.on("console", lambda msg: print(f"[advisor console] {msg.type}: {msg.text}"))
    await page.goto(f"{server.url}/advisor/")
    await page.get_by_label("Username").fill("advisor")
    await page.get_by_label("Password").fill(server.advisor_password)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_selector("#queue-view:not([hidden])")
    return page


async def poll(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.fixture
async def firefox(tmp_path: Path) -> AsyncIterator[Any]:
    """Debian's Firefox ESR, headless, driven over WebDriver BiDi (tests/e2e/firefox.py)."""
    executable = require("firefox-esr", "the second browser engine (Debian package firefox-esr)")
    from tests.e2e.firefox import Firefox

    browser = await Firefox.launch(executable, tmp_path)
    try:
        yield browser
    finally:
        await browser.close()
