"""Signalling clients for the cluster tests: booths and advisors as plain WebSocket clients of
one chosen node (or of HAProxy), speaking the protocol as the real ones do.

The booths are real booth accounts in the cluster's database, logging in with their secret;
the advisors log in with a password. Each client is a :class:`tests.server.conftest.Peer`
(``receive_type``, ``receive_queue`` ...)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from server.storage import Database, create_booth, create_user
from tests.server.conftest import Peer

PASSWORD = "correct horse battery staple"

_numbers = itertools.count(1)


def unique(prefix: str) -> str:
    """A name no other account of the test run has (the module's cluster shares its database)."""
    return f"{prefix}{next(_numbers)}"


def _jar() -> aiohttp.CookieJar:
    return aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1, an address


async def login(url: str, username: str) -> aiohttp.ClientSession:
    """A browser's session logged in at ``url`` as ``username`` (password :data:`PASSWORD`)."""
    http = aiohttp.ClientSession(cookie_jar=_jar())
    async with http.post(
        f"{url}/api/v1/auth/login", json={"username": username, "password": PASSWORD}
    ) as response:
        assert response.status == 200, await response.text()
    return http


async def booth_account(database_url: str, name: str) -> str:
    """A new booth in the cluster's database; its secret."""
    db = await Database.open(database_url, migrate=False)
    try:
        _, credential = await create_booth(db, name)
    finally:
        await db.close()
    return credential


@dataclass
class Clients:
    """The clients a test opened, closed at its end."""

    database_url: str
    peers: list[Peer] = field(default_factory=list)
    _accounts: int = 0

    async def booth_account(self, name: str | None = None) -> str:
        """A new booth (named ``name``, or uniquely) in the cluster's database; its secret."""
        return await booth_account(self.database_url, name or unique("booth-"))

    async def advisor_account(self, username: str) -> None:
        db = await Database.open(self.database_url, migrate=False)
        try:
            await create_user(db, username=username, password=PASSWORD, role="advisor")
        finally:
            await db.close()

    async def new_advisor(self, url: str) -> Peer:
        """A new advisor account, logged in at ``url`` with its socket there."""
        username = unique("advisor-")
        await self.advisor_account(username)
        return await self.advisor(url, username)

    async def booth(self, url: str, credential: str) -> Peer:
        """A booth's signalling connection to ``url`` (a node or HAProxy); its welcome read."""
        http = aiohttp.ClientSession()
        ws = await http.ws_connect(
            f"{url}/api/v1/ws", headers={"Authorization": f"Bearer {credential}"}
        )
        peer = Peer(http, ws)
        self.peers.append(peer)
        await peer.receive_type("welcome")
        return peer

    async def advisor(self, url: str, username: str) -> Peer:
        """An advisor logged in at ``url``; its socket there, with welcome and queue read."""
        http = await login(url, username)
        ws = await http.ws_connect(f"{url}/api/v1/ws")
        peer = Peer(http, ws)
        self.peers.append(peer)
        await peer.receive_type("welcome")
        await peer.receive_queue()
        return peer

    async def close(self) -> None:
        for peer in self.peers:
            with contextlib.suppress(Exception):
                await peer.close()


@contextlib.asynccontextmanager
async def clients(database_url: str) -> AsyncIterator[Clients]:
    opened = Clients(database_url)
    try:
        yield opened
    finally:
        await opened.close()


async def until_in_queue(advisor: Peer, session_id: str, timeout: float = 5.0) -> float:
    """Seconds until ``advisor``'s queue shows ``session_id``."""
    started = time.monotonic()
    while not any(w["session_id"] == session_id for w in advisor.queue.waiting):
        left = timeout - (time.monotonic() - started)
        if left <= 0:
            raise AssertionError(f"{session_id} not in the queue: {advisor.queue.waiting}")
        await advisor.receive_queue(timeout=left)
    return time.monotonic() - started


async def until_not_in_queue(advisor: Peer, session_id: str, timeout: float = 5.0) -> None:
    started = time.monotonic()
    while any(w["session_id"] == session_id for w in advisor.queue.waiting):
        left = timeout - (time.monotonic() - started)
        if left <= 0:
            raise AssertionError(f"{session_id} still in the queue")
        await advisor.receive_queue(timeout=left)


async def drain(peer: Peer) -> None:
    """Take in what arrived already (queue updates applied), without waiting."""
    with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
        while True:
            peer.queue.apply(await peer.receive(timeout=0.05))


def offer(session_id: str) -> dict[str, Any]:
    return {"type": "offer", "session_id": session_id, "sdp": "v=0\r\n"}
