"""Server load: one server process holds 500 connected booths while it sets up 50 calls a second.

What it does, in order, against a real ``python -m server`` on a fresh temporary data directory:

1. Stores 500 enrolled booths (each its own Ed25519 key, enrolled with a one-time token as the
   fleet does), advisors and one administrator, before the server starts.
2. Logs the advisors in and opens their WebSockets; measures the API's latency on the idle
   server (the reference) and the server's resident memory (VmRSS).
3. Connects the 500 booths the way a booth does (a fresh signed nonce, ``GET /api/v1/ws``) from
   this one process, each sending heartbeats with health at the booth's interval; measures the
   memory again: the difference per booth is the memory of an idle booth.
4. Sets up calls one at a time (the reference), then ``--rate`` a second for ``--seconds``: a
   booth asks for an advisor, the advisor sees it in its queue and accepts, both exchange an
   offer, an answer and ICE candidates through the server, and one of them hangs up. Meanwhile
   a separate small process calls the advisors' API at a steady rate (so the load generator's
   own busy event loop does not count as server latency).
5. Checks that the server is up, logged no error, that every booth is still connected and
   online in the fleet view, and that no message was refused.

``python -m bench.load`` (or ``python bench/load.py``) prints the figures; :func:`bench_rows`
returns them in the shape of ``bench/run.py``'s table; ``tests/server/test_load.py`` runs it in
CI. Set-up latencies are measured by the load generator, which shares the machine's cores with
the server: they include its own scheduling delay.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as ``python bench/load.py``
    sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402 - needs the path above
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from yarl import URL  # noqa: E402

from bench.procs import cpu_seconds, percentile, rss_bytes  # noqa: E402
from kiosk.identity import Identity, ServerAccess, public_key_hex  # noqa: E402
from protocol import (  # noqa: E402
    Answer,
    BoothHealth,
    CallAccept,
    CallRequest,
    Hangup,
    Heartbeat,
    IceCandidate,
    Message,
    Offer,
    encode,
)
from server.auth import COOKIE_NAME  # noqa: E402
from server.storage import (  # noqa: E402
    Database,
    Role,
    User,
    add_booth_for_enrolment,
    create_auth_session,
    create_branch,
    create_user,
    enrol_booth,
)
from server.storage.models import new_id  # noqa: E402

PASSWORD = "load-test-password-" + "x" * 8
#: The booth's heartbeat interval (``kiosk.config.BoothConfig.heartbeat_seconds``).
BOOTH_HEARTBEAT_SECONDS = 5.0
#: Server messages that arrive unasked and need no answer.
CHATTER = frozenset({"welcome", "queue", "queue_position", "call_waiting"})
#: The advisors' API as their workspace calls it, and the load balancer's health check.
API_PATHS = ("/api/v1/health", "/api/v1/me", "/api/v1/appointments", "/api/v1/topics")
API_GOAL_MS = 100.0
#: A set-up not done by then counts as failed (generous: the machine may be shared).
SETUP_TIMEOUT = 30.0

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def timed_progress() -> Progress:
    """Progress lines on standard output, each with the seconds since the start."""
    began = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - began:5.1f} s] {text}", flush=True)

    return say


@dataclass(frozen=True)
class LoadSettings:
    booths: int = 500
    advisors: int = 60
    #: Call set-ups started per second, and for how long.
    rate: float = 50.0
    seconds: float = 20.0
    #: API requests per second from the probe process, under load and idle (the reference).
    api_rate: float = 20.0
    api_reference_seconds: float = 5.0
    heartbeat_seconds: float = BOOTH_HEARTBEAT_SECONDS
    #: How long a call lasts once set up (the advisor is busy meanwhile).
    hold_seconds: float = 0.3
    #: Calls set up one at a time on the quiet server (the reference for set-up latency).
    reference_setups: int = 20
    #: Booths connecting at once.
    connect_parallel: int = 25


@dataclass
class LoadResult:
    """Everything one run measured; :meth:`rows` and :meth:`table` present it."""

    settings: LoadSettings
    baseline_rss_kib: int = 0
    booths_rss_kib: int = 0
    booths_connected: int = 0
    booths_connected_at_end: int = 0
    booths_online_at_end: int = 0
    #: Longest time between two heartbeats of one booth (seconds).
    max_heartbeat_gap: float = 0.0
    heartbeats: int = 0
    setup_ms: list[float] = field(default_factory=list)
    negotiated_ms: list[float] = field(default_factory=list)
    reference_setup_ms: list[float] = field(default_factory=list)
    reference_negotiated_ms: list[float] = field(default_factory=list)
    attempted: int = 0
    completed: int = 0
    #: Set-ups that waited for an advisor to be free (the earlier calls were slow to end).
    waited_for_advisor: int = 0
    load_seconds: float = 0.0
    api_ms: list[float] = field(default_factory=list)
    api_by_path: dict[str, list[float]] = field(default_factory=dict)
    api_failures: int = 0
    reference_api_ms: list[float] = field(default_factory=list)
    server_cpu_idle: float = 0.0  # cores, booths connected, no calls
    server_cpu_load: float = 0.0  # cores, during the set-ups
    server_alive: bool = False
    #: Unexpected errors: refused messages, failed set-ups, errors in the server's log, ...
    errors: list[str] = field(default_factory=list)
    messages_received: int = 0

    @property
    def per_booth_kib(self) -> float:
        return (self.booths_rss_kib - self.baseline_rss_kib) / max(self.booths_connected, 1)

    @property
    def achieved_rate(self) -> float:
        return self.completed / self.load_seconds if self.load_seconds else 0.0

    def rows(self) -> list[dict[str, Any]]:
        """The figures as rows of ``bench/run.py``'s table (figure, value, reference,
        reference_is, ratio, goal)."""
        s = self.settings
        n = s.booths
        rows = [
            _row(
                f"load: booths connected at the end (of {n})",
                self.booths_connected_at_end,
                n,
                "booths started",
                f"all {n}",
            ),
            _row(
                "load: booths online in the fleet view at the end",
                self.booths_online_at_end,
                n,
                "booths started",
                f"all {n}",
            ),
            _row(
                f"load: server RSS with {n} idle booths, MiB",
                self.booths_rss_kib / 1024,
                self.baseline_rss_kib / 1024,
                "server RSS before the booths, MiB",
                "",
            ),
            _row(
                "load: server memory per idle booth, KiB",
                self.per_booth_kib,
                self.baseline_rss_kib / 1024,
                "server RSS before the booths, MiB",
                "measured",
                ratio=False,
            ),
            _row(
                "load: call set-ups completed per second",
                self.achieved_rate,
                s.rate,
                "set-ups started per second",
                f">= {s.rate * 0.95:g}/s",
            ),
        ]
        for p in (50, 95, 99):
            rows.append(
                _row(
                    f"load: call set-up p{p} ms (request -> call_started, both)",
                    percentile(self.setup_ms, p),
                    percentile(self.reference_setup_ms, p),
                    "one set-up at a time",
                    "",
                )
            )
        for p in (50, 99):
            rows.append(
                _row(
                    f"load: set-up to offer/answer/ICE relayed p{p} ms",
                    percentile(self.negotiated_ms, p),
                    percentile(self.reference_negotiated_ms, p),
                    "one set-up at a time",
                    "",
                )
            )
        for p in (50, 95, 99):
            rows.append(
                _row(
                    f"load: API p{p} ms",
                    percentile(self.api_ms, p),
                    percentile(self.reference_api_ms, p),
                    "same requests, idle server",
                    f"<= {API_GOAL_MS:g} ms" if p == 99 else "",
                )
            )
        rows.append(
            _row(
                "load: server CPU during the set-ups, cores",
                self.server_cpu_load,
                self.server_cpu_idle,
                f"{n} booths connected, no calls",
                "",
            )
        )
        return rows

    def goals(self) -> dict[str, bool]:
        """Each goal of the issue and whether this run met it."""
        return {
            f"all {self.settings.booths} booths connected and online": (
                self.booths_connected_at_end == self.settings.booths
                and self.booths_online_at_end == self.settings.booths
            ),
            f"{self.settings.rate:g} set-ups/s (>= 95 %)": self.completion_ratio >= 0.95,
            f"API p99 <= {API_GOAL_MS:g} ms": percentile(self.api_ms, 99) <= API_GOAL_MS,
            "server up, no unexpected errors": self.server_alive and not self.errors,
        }

    @property
    def completion_ratio(self) -> float:
        return self.completed / self.attempted if self.attempted else 0.0

    def table(self) -> str:
        """A plain-text table of the rows and the goals."""
        lines = [f"{'figure':58} {'value':>9} {'reference':>9} {'ratio':>6}  goal"]
        for row in self.rows():
            ratio = f"{row['ratio']:.2f}" if row["ratio"] is not None else "-"
            lines.append(
                f"{row['figure']:58} {row['value']:>9.1f} {row['reference']:>9.1f} {ratio:>6}"
                f"  {row['goal']}"
            )
        lines.append("")
        for goal, met in self.goals().items():
            lines.append(f"goal: {goal:56} {'met' if met else 'NOT MET'}")
        s = self.settings
        lines.append(
            f"set-ups: {self.completed} of {self.attempted} completed in {self.load_seconds:.1f} s"
            f" ({self.waited_for_advisor} waited for a free advisor); heartbeats sent: "
            f"{self.heartbeats}, longest gap {self.max_heartbeat_gap:.1f} s "
            f"(booth interval {s.heartbeat_seconds:g} s); API requests: {len(self.api_ms)} "
            f"({self.api_failures} failed); messages received: {self.messages_received}"
        )
        for path, values in sorted(self.api_by_path.items()):
            lines.append(
                f"  API {path:28} p50 {percentile(values, 50):6.1f} ms"
                f"  p99 {percentile(values, 99):6.1f} ms  ({len(values)} requests)"
            )
        for error in self.errors[:20]:
            lines.append(f"error: {error}")
        if len(self.errors) > 20:
            lines.append(f"... and {len(self.errors) - 20} more errors")
        return "\n".join(lines)


def _row(
    figure: str, value: float, reference: float, reference_is: str, goal: str, ratio: bool = True
) -> dict[str, Any]:
    return {
        "figure": figure,
        "value": float(value),
        "reference": float(reference),
        "reference_is": reference_is,
        "ratio": value / reference if ratio and reference else None,
        "goal": goal,
    }


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

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        return f"sqlite+aiosqlite:///{(self.data_dir / 'videobooth.db').resolve()}"

    def _spawn(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "server",
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


# ---------------------------------------------------------------- accounts, before the start


@dataclass(frozen=True)
class BoothIdentity:
    booth_id: str
    name: str
    key: Ed25519PrivateKey


@dataclass
class Accounts:
    booths: list[BoothIdentity]
    #: Login session tokens of the advisors (their ``vb_session`` cookies).
    advisor_sessions: list[str]


async def populate(database_url: str, settings: LoadSettings, progress: Progress) -> Accounts:
    """Branches, enrolled booths (key pair, one-time token, enrolment), advisors with a login
    session each, an administrator and the API probe's account, through the server's own
    storage functions."""
    db = await Database.open(database_url)
    try:
        branches = [
            await create_branch(db, f"Branch {i}", region=f"Region {i % 4}") for i in range(20)
        ]
        first = await create_user(db, username="probe", password=PASSWORD, role=Role.ADVISOR)
        # The others have the same password, so the same argon2id hash serves them all (one
        # hash costs a tenth of a second of CPU or more, by design: 60 would take a minute).
        names = [(f"advisor{i:03d}", Role.ADVISOR) for i in range(settings.advisors)]
        users = [
            User(
                id=new_id(),
                username=name,
                display_name=name,
                password_hash=first.password_hash,
                role=role,
                created_at=db.now(),
                disabled=False,
            )
            for name, role in [*names, ("admin", Role.ADMIN)]
        ]
        async with db.session() as session:
            session.add_all(users)
            await session.commit()
        # The advisors' workspaces come with a login session each, as logging in makes it
        # (the probe and the administrator log in through the API).
        sessions = [
            await create_auth_session(db, user, timedelta(hours=2))
            for user in users[: settings.advisors]
        ]
        progress(f"  {len(users) + 1} users created")
        booths = []
        for i in range(settings.booths):
            key = Ed25519PrivateKey.generate()
            new = await add_booth_for_enrolment(
                db,
                f"Booth {i:04d}",
                branch_id=branches[i % len(branches)].id,
                ttl=timedelta(hours=1),
            )
            booth = await enrol_booth(
                db, new.token, public_key_hex(key), {"machine": "load-test", "model": "bench"}
            )
            booths.append(BoothIdentity(booth.id, booth.name, key))
            if (i + 1) % 100 == 0:
                progress(f"  {i + 1} booths enrolled")
        return Accounts(booths=booths, advisor_sessions=sessions)
    finally:
        await db.close()


# ---------------------------------------------------------------- the clients


class SetupFailedError(Exception):
    pass


class Client:
    """One signalling WebSocket (a booth or an advisor's workspace) and its reader."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, name: str, run: Run) -> None:
        self.ws = ws
        self.name = name
        self.run = run
        self.participant_id = ""
        #: Futures for the next message of a type, with the time it arrived.
        self.waiting: dict[str, asyncio.Future[tuple[float, dict[str, Any]]]] = {}
        self.reader = asyncio.create_task(self._read(), name=f"read-{name}")

    def expect(self, *kinds: str) -> list[asyncio.Future[tuple[float, dict[str, Any]]]]:
        loop = asyncio.get_running_loop()
        futures = []
        for kind in kinds:
            future: asyncio.Future[tuple[float, dict[str, Any]]] = loop.create_future()
            self.waiting[kind] = future
            futures.append(future)
        return futures

    def forget(self) -> None:
        for future in self.waiting.values():
            future.cancel()
        self.waiting.clear()

    async def send(self, message: Message) -> None:
        await self.ws.send_str(encode(message))

    async def _read(self) -> None:
        async for frame in self.ws:
            if frame.type is not aiohttp.WSMsgType.TEXT:
                continue
            now = time.perf_counter()
            self.run.result.messages_received += 1
            data: dict[str, Any] = json.loads(frame.data)
            kind = data.get("type")
            if kind == "welcome":
                self.participant_id = data["participant_id"]
            future = self.waiting.pop(kind, None) if isinstance(kind, str) else None
            if future is not None and not future.done():
                future.set_result((now, data))
            elif kind == "queue":
                self.on_queue(data)
            elif kind == "error":
                self.run.error(f"{self.name} got an error reply: {data}")
            elif kind not in CHATTER:
                self.run.error(f"{self.name} got an unexpected {kind}: {str(data)[:200]}")
        if not self.run.stopping:
            self.run.error(f"{self.name}: the server closed the connection ({self.ws.close_code})")

    def on_queue(self, data: dict[str, Any]) -> None:
        pass

    async def close(self) -> None:
        self.forget()
        await self.ws.close()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader


class Booth(Client):
    def __init__(
        self, ws: aiohttp.ClientWebSocketResponse, identity: BoothIdentity, run: Run
    ) -> None:
        super().__init__(ws, identity.name, run)
        self.identity = identity
        self.state = "idle"
        self.started = time.monotonic()
        self.last_beat = 0.0

    def heartbeat(self) -> str:
        health = BoothHealth(
            version="0.1.0",
            uptime_seconds=time.monotonic() - self.started,
            cpu_temperature_c=52.0,
            load_1m=0.4,
            disk_free_mb=12_000.0,
            camera_ok=True,
            microphone_ok=True,
            speaker_ok=True,
            server_rtt_ms=3.0,
            state=self.state,
        )
        return encode(Heartbeat(state=self.state, health=health))


class Advisor(Client):
    def __init__(
        self, ws: aiohttp.ClientWebSocketResponse, name: str, http: aiohttp.ClientSession, run: Run
    ) -> None:
        super().__init__(ws, name, run)
        self.http = http
        #: The booth whose call this advisor is to take once its queue shows it.
        self.takes: str | None = None
        self.accepted: asyncio.Future[str] | None = None

    def on_queue(self, data: dict[str, Any]) -> None:
        if self.takes is None:
            return
        for waiting in data["waiting"]:
            if waiting["caller_id"] == self.takes:
                self.takes = None
                session_id = waiting["session_id"]
                task = asyncio.get_running_loop().create_task(
                    self.send(CallAccept(session_id=session_id))
                )
                self.run.background.add(task)
                task.add_done_callback(self.run.background.discard)
                if self.accepted is not None and not self.accepted.done():
                    self.accepted.set_result(session_id)
                return

    async def close(self) -> None:
        await super().close()
        await self.http.close()


# Protocol-valid stand-ins for a browser's and a booth's session descriptions: realistic size
# (an audio and a video section, a few kilobytes), never parsed by the server.
_SDP_MEDIA = (
    "m={kind} 9 UDP/TLS/RTP/SAVPF 96 97 98 99\r\nc=IN IP4 0.0.0.0\r\n"
    "a=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\n"
    "a=fingerprint:sha-256 {fingerprint}\r\na=setup:{setup}\r\na=mid:{mid}\r\n"
    "a=sendrecv\r\na=rtcp-mux\r\n"
    + "".join(
        f"a=rtpmap:{pt} {codec}/90000\r\na=rtcp-fb:{pt} nack\r\na=rtcp-fb:{pt} nack pli\r\n"
        f"a=rtcp-fb:{pt} goog-remb\r\na=fmtp:{pt} level-asymmetry-allowed=1;"
        f"packetization-mode=1;profile-level-id=42e01f\r\n"
        for pt, codec in ((96, "H264"), (97, "rtx"), (98, "H264"), (99, "rtx"))
    )
)


def fake_sdp(setup: str) -> str:
    fingerprint = ":".join(f"{b:02X}" for b in secrets.token_bytes(32))
    head = (
        f"v=0\r\no=- {secrets.randbits(62)} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
        "a=group:BUNDLE 0 1\r\na=msid-semantic: WMS *\r\n"
    )
    ufrag, pwd = secrets.token_hex(2), secrets.token_hex(11)
    return head + "".join(
        _SDP_MEDIA.format(
            kind=kind, ufrag=ufrag, pwd=pwd, fingerprint=fingerprint, setup=setup, mid=mid
        )
        for mid, kind in enumerate(("audio", "video"))
    )


CANDIDATE = "candidate:1 1 udp 41885439 192.0.2.10 50000 typ relay raddr 0.0.0.0 rport 0"


# ---------------------------------------------------------------- one run


class Run:
    """The state of one load run: its clients, its counters, its errors."""

    def __init__(self, settings: LoadSettings, server: ServerProcess, progress: Progress) -> None:
        self.settings = settings
        self.server = server
        self.progress = progress
        self.result = LoadResult(settings=settings)
        self.booths: list[Booth] = []
        self.advisors: list[Advisor] = []
        self.idle_booths: asyncio.Queue[Booth] = asyncio.Queue()
        self.free_advisors: asyncio.Queue[Advisor] = asyncio.Queue()
        self.background: set[asyncio.Task[None]] = set()
        self.stopping = False
        #: When the latest call was fully set up (perf_counter).
        self.last_setup_done = 0.0

    def error(self, text: str) -> None:
        self.result.errors.append(text)

    # ------------------------------------------------------------ connecting

    async def connect_advisors(self, sessions: list[str]) -> None:
        """Each advisor's workspace: its session cookie, its WebSocket (with the Origin header
        a browser sends)."""
        url = f"{self.server.url}/api/v1/ws"
        for i, token in enumerate(sessions):
            http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
            http.cookie_jar.update_cookies({COOKIE_NAME: token}, URL(self.server.url))
            try:
                ws = await http.ws_connect(url, origin=self.server.url)
            except BaseException:
                await http.close()
                raise
            self.advisors.append(Advisor(ws, f"advisor{i:03d}", http, self))
        for advisor in self.advisors:
            self.free_advisors.put_nowait(advisor)

    async def connect_booths(self, http: aiohttp.ClientSession, ids: list[BoothIdentity]) -> None:
        url = f"{self.server.url}/api/v1/ws"
        gate = asyncio.Semaphore(self.settings.connect_parallel)

        async def one(identity: BoothIdentity) -> None:
            # The booth's own login: a fresh nonce from the server, signed with its key.
            access = ServerAccess(
                server_url=self.server.url,
                identity=Identity(identity.booth_id, identity.name, identity.key),
            )
            async with gate:
                headers = await access.headers(http)
                ws = await http.ws_connect(
                    url, headers=headers, heartbeat=self.settings.heartbeat_seconds * 2
                )
            booth = Booth(ws, identity, self)
            self.booths.append(booth)
            self.idle_booths.put_nowait(booth)
            await self._beat(booth)

        await asyncio.gather(*(one(identity) for identity in ids))
        self.result.booths_connected = sum(not b.ws.closed for b in self.booths)

    async def _beat(self, booth: Booth) -> None:
        now = time.monotonic()
        if booth.last_beat:
            gap = now - booth.last_beat
            self.result.max_heartbeat_gap = max(self.result.max_heartbeat_gap, gap)
        booth.last_beat = now
        await booth.ws.send_str(booth.heartbeat())
        self.result.heartbeats += 1

    async def heartbeats(self) -> None:
        """Every booth beats once per interval, spread evenly (as independent booths do)."""
        while not self.stopping:
            start = time.monotonic()
            for i, booth in enumerate(list(self.booths)):
                due = start + self.settings.heartbeat_seconds * i / max(len(self.booths), 1)
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if self.stopping:
                    return
                if not booth.ws.closed:
                    try:
                        await self._beat(booth)
                    except (ConnectionError, RuntimeError) as exc:
                        self.error(f"{booth.name}: heartbeat not sent: {exc}")
            rest = start + self.settings.heartbeat_seconds - time.monotonic()
            if rest > 0:
                await asyncio.sleep(rest)

    # ------------------------------------------------------------ one call

    async def setup(
        self, booth: Booth, advisor: Advisor, booth_hangs_up: bool, hold: float
    ) -> tuple[float, float]:
        """One call from request to hangup; returns (ms to call_started at both sides, ms to
        offer, answer and candidates relayed)."""
        loop = asyncio.get_running_loop()
        b_started, b_answer, b_ice = booth.expect("call_started", "answer", "ice_candidate")
        a_started, a_offer, a_ice = advisor.expect("call_started", "offer", "ice_candidate")
        advisor.accepted = loop.create_future()
        advisor.takes = booth.identity.booth_id
        booth.state = "waiting"
        t0 = time.perf_counter()
        await booth.send(CallRequest())
        try:
            async with asyncio.timeout(SETUP_TIMEOUT):
                session_id = await advisor.accepted
                (tb, started), (ta, _) = await asyncio.gather(b_started, a_started)
                if not started["offerer"]:
                    raise SetupFailedError(f"{booth.name} is not the offerer")
                booth.state = "in_call"
                await booth.send(Offer(session_id=session_id, sdp=fake_sdp("actpass")))
                await booth.send(
                    IceCandidate(
                        session_id=session_id, candidate=CANDIDATE, sdp_mid="0", sdp_mline_index=0
                    )
                )
                await a_offer
                await advisor.send(Answer(session_id=session_id, sdp=fake_sdp("active")))
                await advisor.send(
                    IceCandidate(
                        session_id=session_id, candidate=CANDIDATE, sdp_mid="0", sdp_mline_index=0
                    )
                )
                done = await asyncio.gather(b_answer, b_ice, a_ice)
                finished = max(t for t, _ in done)
                negotiated = finished - t0
                self.last_setup_done = max(self.last_setup_done, finished)
                await asyncio.sleep(hold)
                leaver, other = (booth, advisor) if booth_hangs_up else (advisor, booth)
                (told,) = other.expect("hangup")
                await leaver.send(Hangup(session_id=session_id))
                await told
        except TimeoutError:
            raise SetupFailedError(
                f"{booth.name} with {advisor.name}: no answer within {SETUP_TIMEOUT:g} s"
            ) from None
        finally:
            advisor.takes = None
            booth.forget()
            advisor.forget()
            booth.state = "idle"
        return (max(tb, ta) - t0) * 1000, negotiated * 1000

    async def one_call(
        self, into: tuple[list[float], list[float]], booth_hangs_up: bool, hold: float
    ) -> bool:
        if self.free_advisors.empty():
            self.result.waited_for_advisor += 1
        booth = await self.idle_booths.get()
        advisor = await self.free_advisors.get()
        try:
            setup_ms, negotiated_ms = await self.setup(booth, advisor, booth_hangs_up, hold)
        except (SetupFailedError, ConnectionError, RuntimeError) as exc:
            self.error(f"set-up failed: {exc}")
            return False
        finally:
            self.idle_booths.put_nowait(booth)
            self.free_advisors.put_nowait(advisor)
        into[0].append(setup_ms)
        into[1].append(negotiated_ms)
        return True

    async def reference_calls(self) -> None:
        into = (self.result.reference_setup_ms, self.result.reference_negotiated_ms)
        for i in range(self.settings.reference_setups):
            await self.one_call(into, booth_hangs_up=i % 2 == 0, hold=0.0)

    async def load(self) -> None:
        """Start ``rate`` set-ups a second for ``seconds``, each on its own task."""
        s, result = self.settings, self.result
        into = (result.setup_ms, result.negotiated_ms)
        tasks: set[asyncio.Task[bool]] = set()
        total = int(s.rate * s.seconds)
        start = time.perf_counter()
        for i in range(total):
            delay = start + i / s.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            result.attempted += 1
            task = asyncio.create_task(
                self.one_call(into, booth_hangs_up=i % 2 == 0, hold=s.hold_seconds)
            )
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if i % int(s.rate * 5) == 0 and i:
                self.progress(f"  {i} set-ups started, {len(result.setup_ms)} done")
        await asyncio.gather(*tasks)
        result.completed = len(result.setup_ms)
        # From the first request to the last call set up (the hold and hangup do not count).
        result.load_seconds = max(self.last_setup_done, start + total / s.rate) - start

    async def close(self) -> None:
        self.stopping = True
        for task in list(self.background):
            task.cancel()
        await asyncio.gather(*(c.close() for c in (*self.booths, *self.advisors)))


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
            str(REPO / "bench" / "load.py"),
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


# ---------------------------------------------------------------- the whole run


async def run_load(
    settings: LoadSettings | None = None,
    *,
    workdir: Path | None = None,
    progress: Progress = _quiet,
) -> LoadResult:
    """Run the load against a fresh server in ``workdir`` (default: a temporary folder)."""
    settings = settings or LoadSettings()
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vb-load-")))
        return await _run(settings, workdir, progress)
    raise AssertionError("unreachable")  # pragma: no cover - for mypy's return check


async def _run(settings: LoadSettings, workdir: Path, progress: Progress) -> LoadResult:
    server = ServerProcess(
        data_dir=workdir / "server-data", port=_free_port(), log=workdir / "server.log"
    )
    server.data_dir.mkdir(parents=True, exist_ok=True)
    progress(f"preparing {settings.booths} booths and {settings.advisors} advisors ...")
    accounts = await populate(server.database_url, settings, progress)
    run = Run(settings, server, progress)
    result = run.result
    connector = aiohttp.TCPConnector(limit=0)
    beating: asyncio.Task[None] | None = None
    async with aiohttp.ClientSession(connector=connector) as http:
        try:
            await server.start(http)
            progress(f"server pid {server.pid} on {server.url}; connecting the advisors ...")
            await run.connect_advisors(accounts.advisor_sessions)
            progress(f"API on the idle server, {settings.api_reference_seconds:g} s ...")
            idle = ApiProbe(server.url, settings.api_rate, settings.api_reference_seconds)
            await idle.start()
            samples, failures = await idle.run()
            result.reference_api_ms = [ms for _, ms in samples]
            result.errors += [f"API (idle): {f}" for f in failures]
            await asyncio.sleep(1.0)
            result.baseline_rss_kib = rss_kib(server.pid)
            progress(f"connecting {settings.booths} booths ...")
            connected_at = time.monotonic()
            # Each booth beats once it is connected, then every interval.
            beating = asyncio.create_task(run.heartbeats(), name="heartbeats")
            await run.connect_booths(http, accounts.booths)
            progress(
                f"  {result.booths_connected} connected in "
                f"{time.monotonic() - connected_at:.1f} s; heartbeats every "
                f"{settings.heartbeat_seconds:g} s"
            )
            # A full heartbeat round, so every booth has reported its health once more.
            cpu_before = cpu_seconds(server.pid)
            await asyncio.sleep(settings.heartbeat_seconds + 1.0)
            result.server_cpu_idle = (cpu_seconds(server.pid) - cpu_before) / (
                settings.heartbeat_seconds + 1.0
            )
            result.booths_rss_kib = rss_kib(server.pid)
            result.max_heartbeat_gap = 0.0  # from here on: the gaps of connected booths
            progress(
                f"  server RSS {result.baseline_rss_kib / 1024:.1f} -> "
                f"{result.booths_rss_kib / 1024:.1f} MiB: {result.per_booth_kib:.1f} KiB a booth"
            )
            progress(f"{settings.reference_setups} set-ups one at a time ...")
            await run.reference_calls()
            progress(f"{settings.rate:g} set-ups a second for {settings.seconds:g} s ...")
            loaded = ApiProbe(server.url, settings.api_rate, settings.seconds)
            await loaded.start()
            probe = asyncio.create_task(loaded.run())
            cpu_before, cpu_at = cpu_seconds(server.pid), time.monotonic()
            await run.load()
            result.server_cpu_load = (cpu_seconds(server.pid) - cpu_before) / (
                time.monotonic() - cpu_at
            )
            samples, failures = await probe
            for path, ms in samples:
                result.api_ms.append(ms)
                result.api_by_path.setdefault(path, []).append(ms)
            result.api_failures = len(failures)
            result.errors += [f"API: {f}" for f in failures]
            progress(
                f"  {result.completed} of {result.attempted} set-ups completed "
                f"({result.achieved_rate:.1f}/s)"
            )
            await _check_fleet(run, http)
            result.booths_connected_at_end = sum(not b.ws.closed for b in run.booths)
            result.server_alive = server.alive
        finally:
            run.stopping = True
            if beating is not None:
                beating.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beating
            await run.close()
            server.stop()
    result.errors += [f"server log: {line}" for line in server.logged_errors()]
    return result


async def _check_fleet(run: Run, http: aiohttp.ClientSession) -> None:
    """The administrators' fleet view: every booth online (heartbeats arrived in time)."""
    url = run.server.url
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as admin:
        async with admin.post(
            f"{url}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}
        ) as response:
            if response.status != 200:
                run.error(f"the administrator cannot log in: HTTP {response.status}")
                return
        async with admin.get(f"{url}/api/v1/fleet") as response:
            fleet = await response.json()
    online = [b for b in fleet["booths"] if b["online"]]
    run.result.booths_online_at_end = len(online)


# ---------------------------------------------------------------- entry points


def bench_rows(
    settings: LoadSettings | None = None, progress: Progress = print
) -> list[dict[str, Any]]:
    """Run the load and return its rows for ``bench/run.py``'s table."""
    result = asyncio.run(run_load(settings, progress=progress))
    return result.rows()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load",
        description=(
            "Start a server, connect booths and advisors to it, set up calls at a steady rate "
            "and measure memory per booth, set-up latency and API latency."
        ),
    )
    defaults = LoadSettings()
    parser.add_argument("--booths", type=int, default=defaults.booths, help="booths (500)")
    parser.add_argument("--advisors", type=int, default=defaults.advisors, help="advisors (60)")
    parser.add_argument("--rate", type=float, default=defaults.rate, help="set-ups/s (50)")
    parser.add_argument(
        "--seconds", type=float, default=defaults.seconds, help="length of the load (20 s)"
    )
    parser.add_argument(
        "--api-rate", type=float, default=defaults.api_rate, help="API requests/s (20)"
    )
    parser.add_argument("--json", type=Path, help="also write the rows and figures here")
    parser.add_argument("--keep", type=Path, help="keep the server's data and log in this folder")
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.probe:  # the API probe process: a job on stdin, the samples on stdout
        asyncio.run(_probe())
        return 0

    settings = LoadSettings(
        booths=args.booths,
        advisors=args.advisors,
        rate=args.rate,
        seconds=args.seconds,
        api_rate=args.api_rate,
    )
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    try:
        result = asyncio.run(run_load(settings, workdir=args.keep, progress=timed_progress()))
    except (RuntimeError, OSError) as exc:
        print(f"bench.load: {exc}", file=sys.stderr)
        return 1
    print()
    print(result.table())
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "command": "python -m bench.load " + " ".join(argv or sys.argv[1:]),
                    "rows": result.rows(),
                    "goals": result.goals(),
                    "errors": result.errors,
                },
                indent=1,
            )
            + "\n"
        )
    return 0 if all(result.goals().values()) else 1


if __name__ == "__main__":
    sys.exit(main())
