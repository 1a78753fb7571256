"""One run of the load: booths connected, calls set up at a steady rate, every figure noted."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from yarl import URL

from bench.load.clients import (
    CANDIDATE,
    Advisor,
    Booth,
    BoothIdentity,
    SetupFailedError,
    fake_sdp,
)
from bench.load.result import LoadResult
from bench.load.server import ServerProcess
from bench.load.settings import SETUP_TIMEOUT, LoadSettings, Progress
from kiosk.identity import Identity, ServerAccess
from protocol import (
    Answer,
    CallRequest,
    Hangup,
    IceCandidate,
    Offer,
)
from server.auth import COOKIE_NAME

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
