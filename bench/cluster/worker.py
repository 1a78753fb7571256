"""One load generator process: its share of the booths and advisors, and its share of the
set-ups, driven by the coordinating process over standard input and output.

The booths, advisors and calls are bench/load's (:class:`bench.load.session.Run`), so a set-up
here is the same exchange as in the single-server load. What this adds is the process
boundary: 5,000 booths with heartbeats and 100 set-ups a second are more than one event loop
keeps up with, and a loop that falls behind would show up as the server's latency. Each worker
gets a job (JSON, one line) and then commands, one JSON line each, and answers each with one
JSON line:

``advisors``
    connect the worker's advisors (their workspaces' WebSockets);
``booths``
    connect its booths (signed logins) and start their heartbeats;
``reference``
    set up ``count`` calls one at a time;
``load``
    from ``start`` (``time.time()``) set up ``rate`` calls a second for ``seconds``;
``finish``
    report what is still connected and every error, close everything and exit.

Through HAProxy a booth's challenge and its WebSocket may reach different nodes. The nodes share
their nonces (server/boothauth.py), so no login should be refused for that; before they did, two
logins in three were, and a booth logging in alone through round robin never got in. A refused
login (401) is counted and tried again at once with a fresh nonce; a booth refused
REFUSALS_BEFORE_DIRECT times in a row logs in at a node directly (counted too), so that every
booth is connected when the load begins and the count says what the balancer cost.

A worker runs at :data:`NICENESS`: in a deployment the booths and browsers are other machines,
here they share the two cores with the nodes, PostgreSQL, NATS and HAProxy. When the cores are
all busy the server's processes go first, so that what the API's latency shows is the server
and not the scheduler handing the load generator its turn. The workers' CPU is still counted
in the machine's, and a load they cannot keep up with still shows as set-ups not kept up.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from yarl import URL

from bench.load.clients import Booth, BoothIdentity
from bench.load.server import ServerProcess
from bench.load.session import Run
from bench.load.settings import LoadSettings, Progress, _quiet
from kiosk.identity import Identity, ServerAccess

#: Logins refused in a row through HAProxy before a booth logs in at a node directly (were the
#: nonces per node, one booth in 3,000 would get that far by chance, and every booth logging in
#: alone through round robin: its challenge and its login would always reach two nodes).
REFUSALS_BEFORE_DIRECT = 20
#: Attempts a booth makes at all (other failures, such as HAProxy's 502, count too).
LOGIN_ATTEMPTS = 50


def target(url: str) -> ServerProcess:
    """Where a worker's clients connect (a node or HAProxy on 127.0.0.1), in the shape
    :class:`Run` takes: a server it does not start."""
    port = URL(url).port
    assert port is not None, url
    assert URL(url).host == "127.0.0.1", url
    return ServerProcess(data_dir=Path("."), port=port, log=Path("/dev/null"))


class WorkerRun(Run):
    """bench/load's run with booth logins that survive landing on another node."""

    def __init__(
        self,
        settings: LoadSettings,
        server: ServerProcess,
        progress: Progress,
        nodes: list[str] | None = None,
    ) -> None:
        super().__init__(settings, server, progress)
        #: The nodes themselves, for a booth refused REFUSALS_BEFORE_DIRECT times through
        #: HAProxy (none: no such fallback).
        self.nodes = nodes or []
        #: Logins refused (401) and tried again; booths that logged in at a node directly;
        #: other failures (tried again), by reason.
        self.login_retries = 0
        self.direct = 0
        self.connect_failures: Counter[str] = Counter()
        self.not_connected = 0

    async def connect_booths(self, http: aiohttp.ClientSession, ids: list[BoothIdentity]) -> None:
        gate = asyncio.Semaphore(self.settings.connect_parallel)

        async def login(access: ServerAccess) -> aiohttp.ClientWebSocketResponse | None:
            """One login: a fresh challenge, the signed WebSocket; None when refused."""
            try:
                headers = await access.headers(http)
                return await http.ws_connect(
                    f"{access.base}/api/v1/ws",
                    headers=headers,
                    heartbeat=self.settings.heartbeat_seconds * 2,
                )
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status != 401:
                    raise
                self.login_retries += 1
                return None

        async def one(number: int, identity: BoothIdentity) -> None:
            access = ServerAccess(
                server_url=self.server.url,
                identity=Identity(identity.booth_id, identity.name, identity.key),
            )
            ws, refused = None, 0
            async with gate:
                for _ in range(LOGIN_ATTEMPTS):
                    try:
                        ws = await login(access)
                    except (aiohttp.ClientError, OSError) as exc:
                        # The booth would wait and try again: so does this one, after a while.
                        self.connect_failures[_reason(exc)] += 1
                        await asyncio.sleep(random.uniform(0.1, 0.5))
                        continue
                    if ws is not None:
                        break
                    refused += 1
                    if refused == REFUSALS_BEFORE_DIRECT and self.nodes:
                        node = self.nodes[number % len(self.nodes)]
                        access = dataclasses.replace(access, server_url=node)
                        self.direct += 1
            if ws is None:
                self.error(f"{identity.name}: not connected after {LOGIN_ATTEMPTS} logins")
                self.not_connected += 1
                return
            booth = Booth(ws, identity, self)
            self.booths.append(booth)
            self.idle_booths.put_nowait(booth)
            await self._beat(booth)

        await asyncio.gather(*(one(n, identity) for n, identity in enumerate(ids)))
        self.result.booths_connected = sum(not b.ws.closed for b in self.booths)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"HTTP {exc.status} on {exc.request_info.url.path}"
    return type(exc).__name__


def _identity(entry: list[str]) -> BoothIdentity:
    booth_id, name, key = entry
    return BoothIdentity(booth_id, name, Ed25519PrivateKey.from_private_bytes(bytes.fromhex(key)))


async def _lines() -> AsyncIterator[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        yield json.loads(line)


def _say(answer: dict[str, Any]) -> None:
    print(json.dumps(answer), flush=True)


async def work() -> None:
    """The worker process's whole life: a job, then commands until ``finish``."""
    commands = _lines()
    job: dict[str, Any] = await anext(commands)
    settings = LoadSettings(**job["settings"])
    identities = [_identity(entry) for entry in job["booths"]]
    run = WorkerRun(settings, target(job["url"]), _quiet, job["nodes"])
    beating: asyncio.Task[None] | None = None
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        try:
            async for command in commands:
                do = command["do"]
                if do == "advisors":
                    await run.connect_advisors(job["advisor_sessions"])
                    _say({"advisors": len(run.advisors)})
                elif do == "booths":
                    started = time.monotonic()
                    beating = asyncio.create_task(run.heartbeats(), name="heartbeats")
                    await run.connect_booths(http, identities)
                    _say(
                        {
                            "connected": run.result.booths_connected,
                            "not_connected": run.not_connected,
                            "login_retries": run.login_retries,
                            "direct": run.direct,
                            "connect_failures": dict(run.connect_failures),
                            "seconds": time.monotonic() - started,
                        }
                    )
                    run.result.max_heartbeat_gap = 0.0  # from here on: connected booths' gaps
                elif do == "reference":
                    run.settings = dataclasses.replace(
                        run.settings, reference_setups=int(command["count"])
                    )
                    await run.reference_calls()
                    _say({"setup_ms": run.result.reference_setup_ms})
                elif do == "load":
                    _say(await _load(run, command))
                elif do == "finish":
                    _say(_finish(run))
                    return
        finally:
            run.stopping = True
            if beating is not None:
                beating.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beating
            await run.close()


async def _load(run: WorkerRun, command: dict[str, Any]) -> dict[str, Any]:
    """One load at the worker's share of the rate, from the agreed start."""
    run.settings = dataclasses.replace(
        run.settings, rate=float(command["rate"]), seconds=float(command["seconds"])
    )
    result = run.result
    result.setup_ms, result.negotiated_ms = [], []
    result.attempted = result.completed = result.waited_for_advisor = 0
    failed_before = len(result.errors)
    await asyncio.sleep(max(0.0, float(command["start"]) - time.time()))
    result.max_heartbeat_gap = 0.0  # the longest gap while calls are set up
    began = time.perf_counter()
    await run.load()
    return {
        # The last call set up, from this worker's first request (0: none was).
        "last_done": max(run.last_setup_done - began, 0.0),
        "attempted": result.attempted,
        "completed": result.completed,
        "setup_ms": result.setup_ms,
        "negotiated_ms": result.negotiated_ms,
        "load_seconds": result.load_seconds,
        "waited_for_advisor": result.waited_for_advisor,
        "max_heartbeat_gap": result.max_heartbeat_gap,
        "errors": result.errors[failed_before:],
    }


def _finish(run: WorkerRun) -> dict[str, Any]:
    result = run.result
    return {
        "connected_at_end": sum(not b.ws.closed for b in run.booths),
        "advisors_at_end": sum(not a.ws.closed for a in run.advisors),
        "heartbeats": result.heartbeats,
        "max_heartbeat_gap": result.max_heartbeat_gap,
        "messages_received": result.messages_received,
        "errors": result.errors,
    }


#: The load generator's niceness (see above): the CPU scheduler gives a process at 10 about a
#: tenth of the share of one at 0 while both want more than there is.
NICENESS = 10


def main() -> None:
    os.nice(NICENESS)
    asyncio.run(work())
