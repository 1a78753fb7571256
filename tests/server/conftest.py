"""An in-process server on a real SQLite file, with helpers to connect booths and advisors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.config import ServerConfig, TurnConfig
from server.keys import DATABASE
from server.storage import create_booth, create_user

PASSWORD = "correct horse battery staple"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Storage tests run on SQLite and PostgreSQL, except those that read the SQLite file."""
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and callspec.params.get("db") == "postgresql"
        if on_postgres and "db_path" in getattr(item, "fixturenames", ()):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


TURN_SECRET = "test-static-auth-secret-0123456789"


@dataclass
class Peer:
    """One WebSocket client with its own HTTP session (and cookie jar)."""

    http: aiohttp.ClientSession
    ws: aiohttp.ClientWebSocketResponse

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

    async def expect_silence(self, seconds: float = 0.3) -> None:
        """Nothing but queue updates arrives within ``seconds``."""
        while True:
            try:
                message = await self.receive(seconds)
            except TimeoutError:
                return
            if message["type"] != "queue":
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

    async def make(*, turn: bool = False) -> Harness:
        config = ServerConfig(
            data_dir=tmp_path / "data",
            turn=TurnConfig(urls=("turn:127.0.0.1:3478",), secret=TURN_SECRET) if turn else None,
        )
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
