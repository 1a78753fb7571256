"""The booth's WebSocket to the server: authentication, heartbeat, reconnect with backoff.

Messages to the server go through an outbox that one writer per connection empties in order;
what a connection did not send when it ended is dropped with it (a new connection begins with
the resume, not with what was meant for the old one)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from enum import StrEnum

import aiohttp

from kiosk.backoff import Backoff
from kiosk.clock import (
    ClockReading,
    certificate_not_yet_valid,
    explain_connection_error,
    read_clock,
)
from kiosk.identity import ServerAccess
from protocol import Heartbeat, Message, ProtocolError, Welcome, decode_server, encode

log = logging.getLogger(__name__)

#: How soon a booth in a call tries again after losing the server.
URGENT_RETRY_SECONDS = 0.5
#: A connection attempt this old is given up for a new one when the network is known to be
#: back (:meth:`ServerLink.retry_now`): one begun while it was down may wait on a lost SYN.
STALE_ATTEMPT_SECONDS = 1.0
#: The heartbeat interval until the server says which it wants (its default), and the
#: range a server's wish is held to.
DEFAULT_HEARTBEAT_SECONDS = 15.0
HEARTBEAT_RANGE = (1.0, 300.0)
#: Longest a closing link waits for its outbox to be written.
CLOSE_FLUSH_SECONDS = 1.0


class LinkState(StrEnum):
    CONNECTING = "connecting"
    ONLINE = "online"
    OFFLINE = "offline"
    REFUSED = "refused"  # the server does not accept this booth's credential
    #: The address answers, but no Videobooth server is there (HTTP 404): server_url is wrong.
    NOT_FOUND = "not_found"
    CLOSED = "closed"


class ServerLink:
    """Keeps one signalling connection to the server up for as long as it runs."""

    def __init__(
        self,
        *,
        url: str,
        access: ServerAccess,
        on_message: Callable[[Message], None],
        on_state: Callable[[LinkState], None],
        heartbeat: Callable[[], Heartbeat],
        heartbeat_seconds: float | None = None,
        reconnect_max_seconds: float = 30.0,
        clock: Callable[[], ClockReading] = read_clock,
    ) -> None:
        self._url = url
        self._clock = clock
        #: Why the last connection failed, for technician mode ("clock not set: ..."); None
        #: while online.
        self.problem: str | None = None
        self._access = access
        self._on_message = on_message
        self._on_state = on_state
        self._make_heartbeat = heartbeat
        #: The booth's own setting wins; without one the server's welcome sets the interval.
        self._fixed_heartbeat = heartbeat_seconds is not None
        self._heartbeat_seconds = (
            DEFAULT_HEARTBEAT_SECONDS if heartbeat_seconds is None else heartbeat_seconds
        )
        #: Set when the interval changes, so that the next heartbeat is timed by the new one.
        self._retime = asyncio.Event()
        self._backoff = Backoff(ceiling=reconnect_max_seconds, jitter=True)
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        #: Messages for the server, sent in order by the connection's writer.
        self._outbox: asyncio.Queue[Message] = asyncio.Queue()
        self._state = LinkState.CLOSED
        self._closing = False
        #: While a call runs (or waits) the link comes back at once, not after a backoff.
        self.urgent = False
        #: The connection attempt under way (its deadline can be moved), and since when.
        self._attempt: asyncio.Timeout | None = None
        self._attempt_started = 0.0
        #: Set to end the wait between attempts early.
        self._wake = asyncio.Event()

    @property
    def state(self) -> LinkState:
        return self._state

    def _set_state(self, state: LinkState) -> None:
        if state is not self._state:
            log.info("link %s -> %s", self._state, state)
            self._state = state
            self._on_state(state)

    def send(self, message: Message) -> bool:
        """Send without waiting; False when offline (the caller decides what that means)."""
        ws = self._ws
        if ws is None or ws.closed:
            log.info("not sent while offline: %s", message.type)
            return False
        self._outbox.put_nowait(message)
        return True

    async def run(self) -> None:
        """Connect, read, and reconnect after failures until :meth:`close`."""
        async with self._access.session() as http:
            while not self._closing:
                self._set_state(LinkState.CONNECTING)
                try:
                    self._wake.clear()
                    async with asyncio.timeout(None) as attempt:
                        self._attempt = attempt
                        self._attempt_started = asyncio.get_running_loop().time()
                        # A fresh signed nonce for every connection (or the development secret).
                        headers = await self._access.headers(http)
                        ws = await http.ws_connect(
                            self._url, headers=headers, heartbeat=self._heartbeat_seconds * 2
                        )
                    self._attempt = None
                    async with ws:
                        self._ws = ws
                        self.problem = None
                        self._set_state(LinkState.ONLINE)
                        self._backoff.reset()
                        await self._read(ws)
                except aiohttp.WSServerHandshakeError as exc:
                    if exc.status in (401, 403):
                        log.error(
                            "the server refused this booth's credential (HTTP %d)", exc.status
                        )
                        self.problem = f"the server refuses this booth (HTTP {exc.status})"
                        self._set_state(LinkState.REFUSED)
                        self._backoff.hold_off()
                    elif exc.status == 404:
                        self._not_found()
                    else:
                        log.warning("server handshake failed: HTTP %d", exc.status)
                except aiohttp.ClientResponseError as exc:  # the challenge was refused
                    if exc.status == 404:
                        self._not_found()
                    else:
                        log.warning("the server refused a login challenge: HTTP %d", exc.status)
                except (TimeoutError, aiohttp.ClientError, OSError, KeyError, ValueError) as exc:
                    self.problem = explain_connection_error(exc, self._clock())
                    # A clock that is not set does not heal by retrying: an error, not a warning.
                    level = logging.ERROR if certificate_not_yet_valid(exc) else logging.WARNING
                    log.log(level, "cannot reach the server at %s: %s", self._url, self.problem)
                finally:
                    self._attempt = None
                    self._ws = None
                    self._drop_unsent()
                if self._closing:
                    break
                if self._state not in (LinkState.REFUSED, LinkState.NOT_FOUND):
                    self._set_state(LinkState.OFFLINE)
                # A citizen in a call: every second counts.
                await self._pause(URGENT_RETRY_SECONDS if self.urgent else self._backoff.next())
        self._set_state(LinkState.CLOSED)

    async def _pause(self, seconds: float) -> None:
        """Wait between attempts, ``seconds`` or until :meth:`retry_now` (since the attempt
        began: the network may have come back while it failed)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    def retry_now(self) -> None:
        """The network is back (the connection keeper heard from a relay): a link that is down
        tries again now, not after its pause; an attempt begun while the network was down and
        still hanging (a TCP handshake waits seconds to send its SYN again) is given up for a
        new one."""
        if self._state is LinkState.ONLINE or self._closing:
            return
        self._wake.set()
        now = asyncio.get_running_loop().time()
        if self._attempt is not None and now - self._attempt_started >= STALE_ATTEMPT_SECONDS:
            log.info("the network is back: a new attempt to reach the server")
            self._attempt.reschedule(now)

    def _not_found(self) -> None:
        self.problem = "no Videobooth server at this address (HTTP 404): correct server_url"
        log.error(
            "%s answered HTTP 404: no Videobooth server there; correct server_url in booth.toml "
            "(the server's address, without a path)",
            self._url,
        )
        self._set_state(LinkState.NOT_FOUND)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        beat = asyncio.create_task(self._heartbeat(ws))
        writer = asyncio.create_task(self._write(ws))
        try:
            async for frame in ws:
                if frame.type is not aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    message = decode_server(frame.data)
                except ProtocolError as exc:
                    log.warning("ignored a message from the server: %s", exc)
                    continue
                if isinstance(message, Welcome):
                    self._follow(message.heartbeat_seconds)
                self._on_message(message)
            log.info("server closed the connection (code %s)", ws.close_code)
        finally:
            for task in (beat, writer):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    @property
    def heartbeat_seconds(self) -> float:
        """The interval the booth heartbeats at now."""
        return self._heartbeat_seconds

    def _follow(self, asked: float) -> None:
        """Heartbeat as often as the server asks (within reason), unless configured."""
        low, high = HEARTBEAT_RANGE
        interval = min(max(asked, low), high)
        if self._fixed_heartbeat or interval == self._heartbeat_seconds:
            return
        log.info("heartbeat every %g s, as the server asks", interval)
        self._heartbeat_seconds = interval
        self._retime.set()

    async def _heartbeat(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        loop = asyncio.get_running_loop()
        while not ws.closed:
            self._outbox.put_nowait(self._make_heartbeat())
            sent = loop.time()
            # Until the interval is over; a new one (the server's welcome) re-times the wait.
            while (due := sent + self._heartbeat_seconds - loop.time()) > 0:
                self._retime.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._retime.wait(), due)

    async def _write(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """The connection's one writer: the outbox, in order."""
        while True:
            message = await self._outbox.get()
            try:
                await ws.send_str(encode(message))
            except (ConnectionError, RuntimeError, aiohttp.ClientError) as exc:
                log.info("send failed: %s", exc)
            finally:
                self._outbox.task_done()

    def _drop_unsent(self) -> None:
        dropped = self._outbox.qsize()
        self._outbox = asyncio.Queue()
        if dropped:
            log.info("%d message(s) not sent before the connection ended", dropped)

    async def close(self) -> None:
        """Stop reconnecting and close the connection; safe to call twice."""
        self._closing = True
        if self._ws is not None and not self._ws.closed:
            # What was sent before closing goes out before the close frame (a last hang-up).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_FLUSH_SECONDS):
                    await self._outbox.join()
            await self._ws.close()
