"""Shared fixtures: the storage tests' databases (SQLite and PostgreSQL), and an in-process
server on a real SQLite file with helpers to connect booths and advisors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from protocol import QueueView
from server.app import create_app
from server.config import ServerConfig, TurnConfig
from server.keys import DATABASE
from server.storage import Database, create_booth, create_user
from tests.server.postgres import create_database, drop_database, stored_rows

PASSWORD = "correct horse battery staple"


# --- the database of the storage tests: SQLite and PostgreSQL ---------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only: inspects the SQLite file; not run with the postgresql database"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Storage tests run on SQLite and PostgreSQL, except those marked ``sqlite_only``."""
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        on_postgres = "postgresql" in (params.get("db_url"), params.get("empty_db_url"))
        if on_postgres and item.get_closest_marker("sqlite_only"):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """The SQLite file of the ``sqlite`` runs."""
    return tmp_path / "videobooth.db"


class ManualClock:
    """A clock that moves only when the test says so."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


#: Where the storage tests' clock starts: a Monday morning.
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
async def db(db_url: str, clock: ManualClock) -> AsyncIterator[Database]:
    """The database of ``db_url``, opened with the test's clock."""
    database = await Database.open(db_url, clock=clock)
    yield database
    await database.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_db_url(request: pytest.FixtureRequest, db_path: Path) -> AsyncIterator[str]:
    """An empty database, once on SQLite (at ``db_path``) and once on PostgreSQL."""
    if request.param == "sqlite":
        yield sqlite_url(db_path)
        return
    url = await create_database(request.getfixturevalue("postgres_server"))
    yield url
    await drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, db_path: Path) -> AsyncIterator[str]:
    """A database to open, on SQLite (at ``db_path``) and on PostgreSQL: there a copy of one
    migrated in advance, so that opening it has nothing to migrate (much faster)."""
    if request.param == "sqlite":
        yield sqlite_url(db_path)
        return
    url = await create_database(request.getfixturevalue("postgres_server"), migrated=True)
    yield url
    await drop_database(url)


def file_bytes(db_path: Path) -> bytes:
    """Everything SQLite wrote: the database file and its write-ahead log, if any."""
    data = db_path.read_bytes()
    wal = db_path.with_name(db_path.name + "-wal")
    if wal.exists():
        data += wal.read_bytes()
    return data


async def stored_bytes(url: str) -> bytes:
    """What the database at ``url`` stores: the SQLite file and WAL, or every PostgreSQL row."""
    if url.startswith("sqlite"):
        return await asyncio.to_thread(file_bytes, Path(url.removeprefix("sqlite+aiosqlite:///")))
    return await stored_rows(url)


# --- an in-process server ----------------------------------------------------------------------


TURN_SECRET = "test-static-auth-secret-0123456789"


@dataclass
class Peer:
    """One WebSocket client with its own HTTP session (and cookie jar)."""

    http: aiohttp.ClientSession
    ws: aiohttp.ClientWebSocketResponse
    #: The advisor's queue as this client has been told it (see :meth:`receive_queue`).
    queue: QueueView = field(default_factory=QueueView)

    async def send(self, **message: Any) -> None:
        await self.ws.send_str(json.dumps({"v": 1, **message}))

    async def receive(self, timeout: float = 5.0) -> dict[str, Any]:
        frame = await self.ws.receive(timeout=timeout)
        assert frame.type is aiohttp.WSMsgType.TEXT, frame
        data: dict[str, Any] = json.loads(frame.data)
        return data

    async def receive_type(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next message of ``kind``, skipping queue updates and other chatter."""
        while True:
            message = await self.receive(timeout)
            if message["type"] == kind:
                return message

    async def receive_queue(self, timeout: float = 5.0) -> dict[str, Any]:
        """The advisor's queue after the next ``queue`` or ``queue_changed``, as a ``queue``
        message would carry it (``{"type": "queue", "waiting": [...]}``, oldest first)."""
        while True:
            if self.queue.apply(await self.receive(timeout)):
                return {"type": "queue", "waiting": self.queue.waiting}

    async def expect_silence(self, seconds: float = 0.3) -> None:
        """Nothing but queue updates arrives within ``seconds``."""
        while True:
            try:
                message = await self.receive(seconds)
            except TimeoutError:
                return
            if not self.queue.apply(message):  # queue updates are taken in, nothing else
                raise AssertionError(f"unexpected message: {message}")

    async def close(self) -> None:
        await self.ws.close()
        await self.http.close()


@dataclass
class Harness:
    client: TestClient[web.Request, web.Application]
    app: web.Application
    peers: list[Peer] = field(default_factory=list)

    def url(self, path: str) -> str:
        return str(self.client.make_url(path))

    async def add_booth(self, name: str) -> str:
        _, credential = await create_booth(self.app[DATABASE], name)
        return credential

    async def add_advisor(self, username: str) -> None:
        await create_user(self.app[DATABASE], username=username, password=PASSWORD, role="advisor")

    async def booth(self, credential: str) -> Peer:
        http = aiohttp.ClientSession()
        ws = await http.ws_connect(
            self.url("/api/v1/ws"), headers={"Authorization": f"Bearer {credential}"}
        )
        self.peers.append(Peer(http, ws))
        return self.peers[-1]

    async def login(self, username: str) -> aiohttp.ClientSession:
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        response = await http.post(
            self.url("/api/v1/auth/login"), json={"username": username, "password": PASSWORD}
        )
        assert response.status == 200, await response.text()
        return http

    async def advisor(self, username: str) -> Peer:
        http = await self.login(username)
        ws = await http.ws_connect(self.url("/api/v1/ws"))
        self.peers.append(Peer(http, ws))
        return self.peers[-1]


MakeHarness = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def make_harness(
    tmp_path: Path,
    aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
) -> AsyncIterator[MakeHarness]:
    harnesses: list[Harness] = []

    async def make(*, turn: bool | TurnConfig = False, **settings: Any) -> Harness:
        if turn is True:
            turn = TurnConfig(urls=("turn:127.0.0.1:3478",), secret=TURN_SECRET)
        config = ServerConfig(data_dir=tmp_path / "data", turn=turn or None, **settings)
        app = create_app(config)
        client = await aiohttp_client(app)
        harnesses.append(Harness(client=client, app=app))
        return harnesses[-1]

    yield make
    for harness in harnesses:
        for peer in harness.peers:
            await peer.close()


@pytest.fixture
async def harness(make_harness: MakeHarness) -> Harness:
    return await make_harness()
