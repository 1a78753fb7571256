"""Trying a relay the way a participant uses it: a TURN Allocate with a short-lived
credential (aioice's TURN client, which the booths' ICE uses too), released at once.

A relay with no turn: or turns: URL (a STUN server only) gets a STUN Binding request instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from dataclasses import dataclass
from typing import Any, Protocol

from aioice import stun
from aioice.turn import TurnClientTcpProtocol, TurnClientUdpProtocol

from server.config import RelayConfig
from server.relay_pool.errors import RelayProbeError

#: Default ports of RFC 7064/7065 URLs.
DEFAULT_PORTS = {"stun": 3478, "turn": 3478, "turns": 5349}
#: Allocation lifetime asked for: it is deleted at once anyway.
PROBE_LIFETIME_SECONDS = 60


@dataclass(frozen=True)
class ProbeTarget:
    """Where and how one URL of a relay is reached."""

    scheme: str
    host: str
    port: int
    transport: str

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}:{host}:{self.port} ({self.transport})"


def parse_relay_url(url: str) -> ProbeTarget | None:
    """A ``turn:``, ``turns:`` or ``stun:`` URL (RFC 7064/7065) as a target; None if it is not
    one."""
    scheme, _, rest = url.partition(":")
    if scheme not in DEFAULT_PORTS:
        return None
    address, _, query = rest.partition("?")
    transport = "tcp" if scheme == "turns" else "udp"
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == "transport" and value in ("udp", "tcp"):
            transport = value
    if address.startswith("["):
        host, _, after = address[1:].partition("]")
        port_text = after.removeprefix(":")
    else:
        host, _, port_text = address.partition(":")
    if not host:
        return None
    try:
        port = int(port_text) if port_text else DEFAULT_PORTS[scheme]
    except ValueError:
        return None
    return ProbeTarget(scheme=scheme, host=host, port=port, transport=transport)


def probe_target(urls: tuple[str, ...]) -> ProbeTarget | None:
    """The URL a probe tries: TURN over UDP (what media uses) before TURN over TCP, TLS, and a
    STUN server last."""
    targets = [t for t in (parse_relay_url(url) for url in urls) if t is not None]
    preference = [("turn", "udp"), ("turn", "tcp"), ("turns", "tcp"), ("stun", "udp")]
    for scheme, transport in preference:
        for target in targets:
            if (target.scheme, target.transport) == (scheme, transport):
                return target
    return None


def _why(exc: Exception) -> str:
    """An OS error as the system words it ("Connection refused"), without asyncio's dressing."""
    if isinstance(exc, OSError) and exc.errno is not None and exc.errno > 0:
        return os.strerror(exc.errno)
    if isinstance(exc, OSError) and exc.strerror:  # a name that does not resolve
        return exc.strerror
    return str(exc)


class RelayProbe(Protocol):
    """One try of one relay; raises :class:`RelayProbeError` saying why it failed."""

    async def check(self, relay: RelayConfig, username: str, password: str) -> None: ...


class _UdpClient(TurnClientUdpProtocol):
    """aioice's client, also told when the network says the relay's port is closed (ICMP),
    which is quicker than waiting for the retransmissions to run out."""

    def __init__(self, server: tuple[str, int], username: str, password: str) -> None:
        super().__init__(server, username, password, PROBE_LIFETIME_SECONDS, 300)
        self.unreachable: asyncio.Future[Exception] = asyncio.get_running_loop().create_future()

    def error_received(self, exc: Exception) -> None:
        if not self.unreachable.done():
            self.unreachable.set_result(exc)


class TurnAllocateProbe:
    """Allocates on the relay (a Binding request for a STUN-only relay) and releases the
    allocation."""

    async def check(self, relay: RelayConfig, username: str, password: str) -> None:
        target = probe_target(relay.urls)
        if target is None:
            raise RelayProbeError(f"no URL to try among {', '.join(relay.urls)}")
        loop = asyncio.get_running_loop()
        server = (target.host, target.port)
        client: TurnClientUdpProtocol | TurnClientTcpProtocol
        unreachable: asyncio.Future[Exception] = loop.create_future()
        try:
            if target.transport == "udp":
                _, client = await loop.create_datagram_endpoint(
                    lambda: _UdpClient(server, username, password), remote_addr=server
                )
                assert isinstance(client, _UdpClient)
                unreachable = client.unreachable
            else:
                tls = ssl.create_default_context() if target.scheme == "turns" else None
                _, client = await loop.create_connection(
                    lambda: TurnClientTcpProtocol(
                        server,
                        username=username,
                        password=password,
                        lifetime=PROBE_LIFETIME_SECONDS,
                        channel_refresh_time=300,
                    ),
                    host=target.host,
                    port=target.port,
                    ssl=tls,
                )
        except OSError as exc:
            raise RelayProbeError(f"{target}: {_why(exc)}") from exc
        try:
            await self._try(client, target, unreachable)
        finally:
            client.transport.close()

    async def _try(
        self,
        client: TurnClientUdpProtocol | TurnClientTcpProtocol,
        target: ProbeTarget,
        unreachable: asyncio.Future[Exception],
    ) -> None:
        if target.scheme == "stun":
            binding = stun.Message(
                message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST
            )
            work: asyncio.Future[Any] = asyncio.ensure_future(client.request(binding))
        else:
            work = asyncio.ensure_future(client.connect())
        try:
            await asyncio.wait({work, unreachable}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            work.cancel()
            raise
        if not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
            raise RelayProbeError(f"{target}: {_why(unreachable.result())}")
        try:
            work.result()
        except stun.TransactionFailed as exc:
            code, reason = exc.response.attributes.get("ERROR-CODE", (0, "error"))
            raise RelayProbeError(f"{target}: refused ({code} {reason})") from exc
        except (stun.TransactionError, ConnectionError) as exc:
            raise RelayProbeError(f"{target}: {exc}") from exc
        if target.scheme != "stun":
            # Free the allocation now rather than at its lifetime's end.
            await client.delete()
