"""Whether the call's relays answer, asked a few times a second while the media is silent.

A probe is a STUN Binding request (RFC 8489) to the relay's address: coturn answers it without
credentials and without an allocation, so it costs the relay one small packet and tells the
booth the moment its network (or the relay) is back. A relay reached over TCP (``turns:``,
``?transport=tcp``) is probed by opening a TCP connection. :class:`RelayWatch` keeps each
relay's recent answers for the connection keeper (:mod:`kiosk.booth.keeper`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol
from urllib.parse import parse_qs

from aioice import stun

from protocol import IceServer

log = logging.getLogger(__name__)

#: How often a relay is asked while the keeper wants to know ...
PROBE_SECONDS = 0.2
#: ... and how long each probe waits for its answer (a round trip to a relay far away).
PROBE_WAIT_SECONDS = 0.4
#: Probes in a row a relay leaves unanswered (or one refused) before it counts as gone: a relay
#: that just continued works through what it queued meanwhile and may miss one.
GONE_AFTER_MISSES = 2
DEFAULT_PORTS = {"stun": 3478, "turn": 3478, "stuns": 5349, "turns": 5349}


class Answer(StrEnum):
    """What one probe found."""

    ANSWERED = "answered"
    #: No answer in time (the path is cut, or the relay is frozen).
    SILENT = "silent"
    #: Refused at once (ICMP port unreachable, TCP reset): nothing listens there.
    REFUSED = "refused"


@dataclass(frozen=True)
class RelayAddress:
    host: str
    port: int
    transport: str  # "udp" or "tcp"

    def __str__(self) -> str:
        return f"{self.host}:{self.port}/{self.transport}"


def relay_address(server: IceServer) -> RelayAddress | None:
    """Where ``server`` is probed: its first URL the booth uses (aiortc uses only the first
    TURN URL of a server), or None for one it cannot probe."""
    for url in server.urls:
        scheme, _, rest = url.partition(":")
        if scheme not in DEFAULT_PORTS:
            continue
        where, _, query = rest.partition("?")
        if where.startswith("["):  # an IPv6 address, maybe with a port after it
            host, _, port = where[1:].partition("]")
            port = port.removeprefix(":")
        else:
            host, _, port = where.partition(":")
        transport = parse_qs(query).get("transport", ["udp"])[0]
        if scheme in ("stuns", "turns"):
            transport = "tcp"
        try:
            return RelayAddress(host, int(port or DEFAULT_PORTS[scheme]), transport)
        except ValueError:
            continue
    return None


class Probe(Protocol):
    async def __call__(self, relay: RelayAddress, wait: float) -> Answer: ...


async def stun_probe(relay: RelayAddress, wait: float) -> Answer:
    """Ask ``relay`` once, waiting ``wait`` seconds for the answer: a STUN Binding request
    over UDP (a TCP connection for TCP)."""
    if relay.transport == "tcp":
        return await _tcp_probe(relay, wait)
    loop = asyncio.get_running_loop()
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    answer: asyncio.Future[Answer] = loop.create_future()

    class Receiver(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            try:
                message = stun.parse_message(data)
            except ValueError:
                return
            if message.transaction_id == request.transaction_id and not answer.done():
                answer.set_result(Answer.ANSWERED)

        def error_received(self, exc: Exception) -> None:
            if isinstance(exc, ConnectionRefusedError) and not answer.done():
                answer.set_result(Answer.REFUSED)

    try:
        transport, _ = await loop.create_datagram_endpoint(
            Receiver, remote_addr=(relay.host, relay.port)
        )
    except OSError:
        return Answer.SILENT  # no route or no name: the network is not there
    try:
        transport.sendto(bytes(request))
        async with asyncio.timeout(wait):
            return await answer
    except TimeoutError:
        return Answer.SILENT
    finally:
        transport.close()


async def _tcp_probe(relay: RelayAddress, wait: float) -> Answer:
    try:
        async with asyncio.timeout(wait):
            _, writer = await asyncio.open_connection(relay.host, relay.port)
    except TimeoutError:
        return Answer.SILENT
    except ConnectionRefusedError:
        return Answer.REFUSED
    except OSError:
        return Answer.SILENT
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return Answer.ANSWERED


@dataclass
class RelayHealth:
    """A relay's recent answers (monotonic times)."""

    #: Since when it has answered every probe (None: its newest probe went unanswered).
    up_since: float | None = None
    #: When it last answered.
    answered_at: float | None = None
    #: When a probe last went unanswered, and how many in a row did (0: the newest answered).
    missed_at: float | None = None
    misses: int = 0
    refused: bool = False
    #: When it last went away (refused, or :data:`GONE_AFTER_MISSES` probes unanswered).
    gone_at: float | None = None

    @property
    def gone(self) -> bool:
        return self.up_since is None and (self.refused or self.misses >= GONE_AFTER_MISSES)

    def record(self, answer: Answer, now: float) -> None:
        if answer is Answer.ANSWERED:
            if self.up_since is None:
                self.up_since = now
            self.answered_at = now
            self.misses = 0
            self.refused = False
        else:
            was_gone = self.gone
            self.up_since = None
            self.missed_at = now
            self.misses += 1
            self.refused = answer is Answer.REFUSED
            if self.gone and not was_gone:
                self.gone_at = now

    def answers_since(self, since: float) -> bool:
        """Its newest probe was answered, and came after ``since``."""
        return self.up_since is not None and (self.answered_at or 0.0) > since


class RelayWatch:
    """Probes the relays it is asked about every :data:`PROBE_SECONDS` and keeps their
    :class:`RelayHealth`. A probe waits :data:`PROBE_WAIT_SECONDS` for its answer while the
    next ones go out on time (a relay that comes back answers the first probe sent after it),
    and answers count in the order the probes were sent. ``on_change`` is called when a relay
    starts or stops answering (the keeper acts on a return at once, not at its next tick)."""

    def __init__(
        self,
        *,
        probe: Probe = stun_probe,
        clock: Callable[[], float] = time.monotonic,
        period: float = PROBE_SECONDS,
        wait: float = PROBE_WAIT_SECONDS,
    ) -> None:
        self._probe = probe
        self._clock = clock
        self._period = period
        self._wait = wait
        self._health: dict[RelayAddress, RelayHealth] = {}
        self._asked_at: dict[RelayAddress, float] = {}
        #: Probes sent to each relay, and the newest whose answer (or silence) counted.
        self._sent: dict[RelayAddress, int] = {}
        self._counted: dict[RelayAddress, int] = {}
        self._flying: set[asyncio.Task[None]] = set()
        self.on_change: Callable[[], None] = _nothing

    def want(self, relays: Iterable[RelayAddress], now: float) -> None:
        """Probe each of ``relays`` that was not asked within the period."""
        for relay in relays:
            # (a millisecond's slack: ticks of a tenth of a second do not add up exactly)
            if now < self._asked_at.get(relay, -1e9) + self._period - 0.001:
                continue
            self._asked_at[relay] = now
            number = self._sent[relay] = self._sent.get(relay, 0) + 1
            task = asyncio.get_running_loop().create_task(
                self._ask(relay, number), name=f"relay-probe {relay}"
            )
            self._flying.add(task)
            task.add_done_callback(self._flying.discard)

    async def _ask(self, relay: RelayAddress, number: int) -> None:
        try:
            answer = await self._probe(relay, self._wait)
        except Exception:  # a probe must never take the keeper down
            log.exception("probing relay %s failed", relay)
            answer = Answer.SILENT
        if number <= self._counted.get(relay, 0):
            return  # a newer probe has counted already
        self._counted[relay] = number
        health = self._health.setdefault(relay, RelayHealth())
        was_up = health.up_since is not None
        health.record(answer, self._clock())
        if (health.up_since is not None) != was_up or health.misses == 1:
            log.info("relay %s: %s", relay, answer)
        if (health.up_since is not None) != was_up:
            self.on_change()

    def health(self, relay: RelayAddress) -> RelayHealth:
        return self._health.get(relay, RelayHealth())

    async def close(self) -> None:
        """Stop probing and forget every relay."""
        flying = list(self._flying)
        for task in flying:
            task.cancel()
        for task in flying:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._flying.clear()
        self._health.clear()
        self._asked_at.clear()
        self._sent.clear()
        self._counted.clear()


def addresses(servers: Sequence[IceServer]) -> list[RelayAddress | None]:
    """Each server's probe address, in order (None where it cannot be probed)."""
    return [relay_address(server) for server in servers]


def _nothing() -> None:
    pass
