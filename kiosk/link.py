"""The booth's WebSocket to the server: authentication, heartbeat, reconnect with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from enum import StrEnum

import aiohttp

from kiosk.clock import (
    ClockReading,
    certificate_not_yet_valid,
    explain_connection_error,
    read_clock,
)
from kiosk.identity import ServerAccess
from protocol import Heartbeat, Message, ProtocolError, decode_server, encode

log = logging.getLogger(__name__)

#: How soon a booth in a call tries again after losing the server.
URGENT_RETRY_SECONDS = 0.5


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
        heartbeat_seconds: float = 5.0,
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
        self._heartbeat_seconds = heartbeat_seconds
        self._reconnect_max = reconnect_max_seconds
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._state = LinkState.CLOSED
        self._closing = False
        #: While a call runs (or waits) the link comes back at once, not after a backoff.
        self.urgent = False

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
        task = asyncio.get_running_loop().create_task(ws.send_str(encode(message)))
        task.add_done_callback(_log_send_failure)
        return True

    async def run(self) -> None:
        """Connect, read, and reconnect after failures until :meth:`close`."""
        delay = 1.0
        async with self._access.session() as http:
            while not self._closing:
                self._set_state(LinkState.CONNECTING)
                try:
                    # A fresh signed nonce for every connection (or the development secret).
                    headers = await self._access.headers(http)
                    async with http.ws_connect(
                        self._url, headers=headers, heartbeat=self._heartbeat_seconds * 2
                    ) as ws:
                        self._ws = ws
                        self.problem = None
                        self._set_state(LinkState.ONLINE)
                        delay = 1.0
                        await self._read(ws)
                except aiohttp.WSServerHandshakeError as exc:
                    if exc.status in (401, 403):
                        log.error(
                            "the server refused this booth's credential (HTTP %d)", exc.status
                        )
                        self.problem = f"the server refuses this booth (HTTP {exc.status})"
                        self._set_state(LinkState.REFUSED)
                        delay = self._reconnect_max
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
                    self._ws = None
                if self._closing:
                    break
                if self._state not in (LinkState.REFUSED, LinkState.NOT_FOUND):
                    self._set_state(LinkState.OFFLINE)
                if self.urgent:  # a citizen is in a call: every second counts
                    await asyncio.sleep(URGENT_RETRY_SECONDS)
                    continue
                # Full jitter, so a branch's booths do not all come back in the same second.
                await asyncio.sleep(random.uniform(0.5, 1.0) * delay)
                delay = min(delay * 2, self._reconnect_max)
        self._set_state(LinkState.CLOSED)

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
        try:
            async for frame in ws:
                if frame.type is not aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    message = decode_server(frame.data)
                except ProtocolError as exc:
                    log.warning("ignored a message from the server: %s", exc)
                    continue
                self._on_message(message)
            log.info("server closed the connection (code %s)", ws.close_code)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    async def _heartbeat(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while not ws.closed:
            await ws.send_str(encode(self._make_heartbeat()))
            await asyncio.sleep(self._heartbeat_seconds)

    async def close(self) -> None:
        """Stop reconnecting and close the connection; safe to call twice."""
        self._closing = True
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()


def _log_send_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.info("send failed: %s", task.exception())
