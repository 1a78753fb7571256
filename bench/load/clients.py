"""The load's accounts (stored before the server starts) and its clients: booths and
advisors as their WebSockets speak."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.load.settings import (
    CHATTER,
    PASSWORD,
    LoadSettings,
    Progress,
)
from kiosk.identity import public_key_hex
from protocol import (
    BoothHealth,
    CallAccept,
    Heartbeat,
    Message,
    encode,
)
from server.storage import (
    Database,
    Role,
    User,
    add_booth_for_enrolment,
    create_auth_session,
    create_branch,
    create_user,
    enrol_booth,
)
from server.storage.models import new_id

if TYPE_CHECKING:
    from bench.load.session import Run

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
            booth, _ = await enrol_booth(
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
                asked = data.get("heartbeat_seconds")
                if isinstance(self, Booth) and asked != self.run.settings.heartbeat_seconds:
                    self.run.error(
                        f"{self.name}: the server asks for a heartbeat every {asked} s, the "
                        f"load beats every {self.run.settings.heartbeat_seconds:g} s"
                    )
            future = self.waiting.pop(kind, None) if isinstance(kind, str) else None
            if future is not None and not future.done():
                future.set_result((now, data))
            elif kind in ("queue", "queue_changed"):
                self.on_queue(data)
            elif kind == "error":
                self.run.error(f"{self.name} got an error reply: {data}")
            elif kind not in CHATTER:
                self.run.error(f"{self.name} got an unexpected {kind}: {str(data)[:200]}")
        if not self.run.stopping:
            self.run.error(f"{self.name}: the server closed the connection ({self.ws.close_code})")

    def on_queue(self, data: dict[str, Any]) -> None:
        """A ``queue`` or ``queue_changed`` message arrived."""

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
        # The whole queue at first, then only the calls that joined or changed.
        for waiting in data.get("waiting", []) + data.get("upsert", []):
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
