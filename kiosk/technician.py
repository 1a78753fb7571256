"""What technician mode checks: the way to the server and to the relay, the software version.

Each check gives one line a field technician can act on ("relay turn.example.org:3478
answers in 4 ms", "server refuses this booth's credential"), never a stack trace.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aioice import stun

from kiosk.clock import ClockReading, explain_connection_error, read_clock
from kiosk.health import package_version
from kiosk.identity import ServerAccess

log = logging.getLogger(__name__)

TIMEOUT = 5.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def software_version() -> str:
    return package_version()


def relay_address(url: str) -> tuple[str, int, str] | None:
    """(host, port, transport) of a ``turn:``/``turns:`` URL; None for anything else."""
    scheme, _, rest = url.partition(":")
    if scheme not in ("turn", "turns", "stun"):
        return None
    address, _, query = rest.partition("?")
    transport = "tcp" if scheme == "turns" else "udp"
    if "transport=tcp" in query:
        transport = "tcp"
    parts = urlsplit(f"//{address}")
    if parts.hostname is None:
        return None
    port = parts.port or (5349 if scheme == "turns" else 3478)
    return parts.hostname, port, transport


class _StunClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.answer.done():
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


async def stun_round_trip(host: str, port: int) -> float:
    """Seconds for a STUN binding request to the relay and its answer (UDP)."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(_StunClient, remote_addr=(host, port))
    try:
        request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
        started = time.monotonic()
        transport.sendto(bytes(request))
        async with asyncio.timeout(TIMEOUT):
            data = await protocol.answer
        answer = stun.parse_message(data)
        if answer.transaction_id != request.transaction_id:
            raise ValueError("the answer belongs to another request")
        return time.monotonic() - started
    finally:
        transport.close()


async def measure_round_trip(access: ServerAccess) -> float | None:
    """Milliseconds for one ``GET /api/v1/health`` (a cheap request that needs no login);
    None when the server does not answer."""
    try:
        async with access.session() as http:
            started = time.monotonic()
            async with http.get(f"{access.base}/api/v1/health") as response:
                response.raise_for_status()
            return (time.monotonic() - started) * 1000
    except (aiohttp.ClientError, TimeoutError):
        return None


async def network_checks(
    access: ServerAccess, *, clock: Callable[[], ClockReading] = read_clock
) -> list[Check]:
    """The server (reachable, accepts this booth) and every relay it names (answers STUN).

    A server certificate refused as not valid yet on a clock that is not set says "clock not
    set" (``clock`` reads the booth's clock).
    """
    base = access.base
    checks: list[Check] = []
    relays: list[str] = []
    try:
        async with access.session() as http:
            started = time.monotonic()
            async with http.get(f"{base}/api/v1/health") as response:
                response.raise_for_status()
            rtt = (time.monotonic() - started) * 1000
            checks.append(Check("server", True, f"{base} answers in {rtt:.0f} ms"))
            async with await access.get(http, "/api/v1/relay") as response:
                if response.status in (401, 403):
                    checks.append(Check("credential", False, "the server refuses this booth"))
                    return checks
                response.raise_for_status()
                relays = list((await response.json())["urls"])
            checks.append(Check("credential", True, "the server accepts this booth"))
    except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
        reason = explain_connection_error(exc, clock(), briefly=True) if str(exc) else "timeout"
        checks.append(Check("server", False, f"{base} cannot be reached: {reason}"))
        return checks
    if not relays:
        checks.append(Check("relay", True, "no relay configured (direct connections only)"))
    for url in relays:
        address = relay_address(url)
        if address is None:
            continue
        host, port, transport = address
        if transport != "udp":
            checks.append(Check("relay", True, f"{host}:{port} ({transport}) not tested here"))
            continue
        try:
            seconds = await stun_round_trip(host, port)
        except (OSError, TimeoutError, ValueError) as exc:
            checks.append(
                Check("relay", False, f"{host}:{port} does not answer: {exc or 'timeout'}")
            )
        else:
            checks.append(Check("relay", True, f"{host}:{port} answers in {seconds * 1000:.0f} ms"))
    return checks
