"""The bus between several server nodes, over NATS (nats-py); the only module that imports it.

Connecting: to any of the configured servers, with the token read from its file at
:meth:`NatsBus.start` (never logged), over TLS checked against the configured CA for
``tls://`` URLs. A server that refuses the token or the handshake at start is an error at
once (:class:`~server.cluster.errors.BusRefusedError`); none answering within ``start_timeout`` is
:class:`~server.cluster.errors.BusUnavailableError`. Once connected the client never gives up: a
lost connection is retried every ``reconnect_wait`` seconds on each server in turn, for ever,
and the state goes ``connected -> disconnected -> connected``. A server that stops answering
without closing the connection is noticed after about three ``ping_interval``.

While disconnected, what is published waits in nats-py's pending buffer, at most
``pending_bytes`` (default :data:`PENDING_BYTES`); on reconnecting the subscriptions are made
again first, then the buffer is sent, so this node's own subscriptions get it and other nodes
only if they are back already. Beyond the buffer, :meth:`NatsBus.publish` raises
:class:`~server.cluster.errors.BacklogFullError` and the message is lost; NATS core stores nothing,
so messages other nodes sent during the outage are lost too. Listeners of
:meth:`~server.cluster.bus.Bus.on_state` resynchronise on ``reconnected``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription

from server.cluster.bus import Bus, BusState, Message, Subscription, check_subject
from server.cluster.errors import (
    BacklogFullError,
    BadSettingError,
    BusRefusedError,
    BusUnavailableError,
)

log = logging.getLogger(__name__)

#: Bytes published while disconnected that are kept to send on reconnecting.
PENDING_BYTES = 4 * 1024 * 1024
#: Seconds between attempts to reach a server again.
RECONNECT_WAIT = 1
#: Seconds between pings; a server that misses two in a row is taken for lost.
PING_INTERVAL = 5
#: Seconds to wait for one server to answer while connecting.
CONNECT_TIMEOUT = 2
#: Seconds :meth:`NatsBus.start` waits for the first connection.
START_TIMEOUT = 15.0
#: Seconds a subscription waits for the server to confirm it.
SUBSCRIBE_TIMEOUT = 5


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    return text or type(error).__name__


def _refusal(error: BaseException) -> str | None:
    """What to tell the technician when ``error`` means a server will not have this node."""
    if (
        isinstance(error, nats.errors.AuthorizationError)
        or "authorization violation" in str(error).lower()
    ):
        return "the token was not accepted (check cluster.nats_token_file)"
    if isinstance(error, ssl.SSLError | nats.errors.SecureConnFailedError):
        return f"the TLS handshake failed: {_describe(error)} (check cluster.nats_ca_file)"
    if isinstance(error, nats.errors.SecureConnRequiredError | nats.errors.SecureConnWantedError):
        return f"TLS is set differently on each side: {_describe(error)} (tls:// or nats://)"
    return None


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


class NatsBus(Bus):
    """A node's bus over NATS; ``name`` is the node's id (logs, the server's connection list)."""

    def __init__(
        self,
        *,
        urls: Sequence[str],
        name: str,
        token_file: Path | None = None,
        ca_file: Path | None = None,
        pending_bytes: int = PENDING_BYTES,
        reconnect_wait: int = RECONNECT_WAIT,
        ping_interval: int = PING_INTERVAL,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        super().__init__(name=name)
        if not urls:
            raise BadSettingError("the bus needs at least one nats:// or tls:// URL")
        self.urls = tuple(urls)
        self.token_file = token_file
        self.ca_file = ca_file
        self.pending_bytes = pending_bytes
        self.reconnect_wait = reconnect_wait
        self.ping_interval = ping_interval
        self.start_timeout = start_timeout
        self._client: Client | None = None
        self._closing = False
        self._last_error = ""
        self._nats_subscriptions: dict[Subscription, NatsSubscription] = {}

    def __str__(self) -> str:
        return ", ".join(_without_userinfo(url) for url in self.urls)

    async def start(self) -> None:
        if self.state is BusState.CLOSED:
            raise BusUnavailableError(f"bus {self.name} is closed: make a new one")
        if self.state is not BusState.NEW:
            return
        token, tls = self._read_token(), self._tls_context()
        client = Client()
        refused: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def on_error(error: Exception) -> None:
            reason = _refusal(error)
            if reason is not None and self.state is BusState.CONNECTING and not refused.done():
                refused.set_result(reason)
            self._log_error(error)

        self._set_state(BusState.CONNECTING, str(self))
        connecting = asyncio.create_task(
            client.connect(
                servers=list(self.urls),
                name=self.name,
                token=token,
                tls=tls,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=self.reconnect_wait,
                connect_timeout=CONNECT_TIMEOUT,
                ping_interval=self.ping_interval,
                max_outstanding_pings=2,
                pending_size=self.pending_bytes,
                error_cb=on_error,
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
                closed_cb=self._on_closed,
            ),
            name=f"bus {self.name}: connect",
        )
        waiting: list[asyncio.Future[Any]] = [connecting, refused]
        try:
            done, _ = await asyncio.wait(
                waiting, timeout=self.start_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        except asyncio.CancelledError:
            # The server is stopping while it starts: no connection may stay behind.
            await self._abandon(connecting, client, "start cancelled")
            raise
        if connecting in done and connecting.exception() is None:
            self._client = client
            self._set_state(BusState.CONNECTED, f"to {self._connected_url()}")
            return
        if refused.done():
            await self._abandon(connecting, client, "refused")
            raise BusRefusedError(
                f"bus {self.name}: NATS at {self} refused this node: {refused.result()}"
            )
        failed = connecting.done() and connecting.exception()
        why = _describe(failed) if failed else self._last_error or "no answer"
        await self._abandon(connecting, client, "no server")
        raise BusUnavailableError(
            f"bus {self.name}: no NATS server answered within {self.start_timeout:g} s at "
            f"{self} (last: {why})"
        )

    async def _abandon(self, connecting: asyncio.Task[None], client: Client, why: str) -> None:
        """Stop connecting and let go of the client; the bus is closed."""
        self._closing = True
        connecting.cancel()
        await asyncio.wait([connecting])
        await client.close()
        self._set_state(BusState.CLOSED, why)

    async def publish(self, subject: str, payload: bytes) -> None:
        check_subject(subject)
        self._check_payload(subject, payload)
        client = self._open_client()
        try:
            await client.publish(subject, payload)
        except nats.errors.OutboundBufferLimitError as exc:
            raise BacklogFullError(
                f"bus {self.name}: disconnected, and its pending buffer ({self.pending_bytes} "
                f"bytes) is full: a message on {subject} is dropped"
            ) from exc
        except nats.errors.ConnectionClosedError as exc:
            raise BusUnavailableError(f"bus {self.name} is closed") from exc

    async def request(
        self,
        subject: str,
        payload: bytes,
        *,
        timeout: float,  # noqa: ASYNC109 (the request's own deadline, as in NATS)
    ) -> bytes:
        check_subject(subject)
        self._check_payload(subject, payload)
        client = self._open_client()
        try:
            answer = await client.request(subject, payload, timeout=timeout)
        except nats.errors.NoRespondersError as exc:
            raise self._no_responders(subject) from exc
        except nats.errors.TimeoutError as exc:
            raise self._timed_out(subject, timeout) from exc
        except nats.errors.OutboundBufferLimitError as exc:
            raise BacklogFullError(
                f"bus {self.name}: disconnected, and its pending buffer ({self.pending_bytes} "
                f"bytes) is full: a request on {subject} is dropped"
            ) from exc
        except nats.errors.ConnectionClosedError as exc:
            raise BusUnavailableError(f"bus {self.name} is closed") from exc
        return answer.data

    async def _subscribe(self, subscription: Subscription) -> None:
        client = self._open_client()

        async def forward(msg: Msg) -> None:
            subscription.offer(Message(msg.subject, msg.data, msg.reply or None))

        self._nats_subscriptions[subscription] = await client.subscribe(
            subscription.pattern, queue=subscription.queue or "", cb=forward
        )
        if client.is_connected:
            # A PING answered: the server has the subscription, so messages other nodes
            # publish from now on reach it. While disconnected it is made on reconnecting.
            # nats-py writes a flush's PING to the socket at once, ahead of the SUB still
            # waiting for its flusher task: that task is made to write the SUB first (the
            # private call nats-py's own publish uses when its buffer is full; nats-py is
            # pinned, and the cluster tests fail if it goes), so one round trip suffices.
            try:
                await asyncio.wait_for(client._flush_pending(force_flush=True), SUBSCRIBE_TIMEOUT)
                await client.flush(SUBSCRIBE_TIMEOUT)
            except (nats.errors.Error, TimeoutError) as exc:
                log.warning(
                    "bus %s: the server did not confirm %s yet: %s",
                    self.name,
                    subscription,
                    _describe(exc),
                )

    async def _unsubscribe(self, subscription: Subscription) -> None:
        found = self._nats_subscriptions.pop(subscription, None)
        if found is None or self._client is None or self._client.is_closed:
            return
        try:
            await found.unsubscribe()
        except nats.errors.Error as exc:
            log.debug("bus %s: unsubscribing %s: %s", self.name, subscription, _describe(exc))

    async def _answer(self, reply: str, payload: bytes) -> None:
        await self._open_client().publish(reply, payload)

    async def _disconnect(self) -> None:
        self._closing = True
        client = self._client
        if client is None:
            return
        if not client.is_connected and client.pending_data_size:
            # nats-py's close writes what is pending to the lost connection, fails half-way
            # (ConnectionResetError) and leaves its tasks running; it is lost either way.
            log.info(
                "bus %s: closed while disconnected: %d bytes of messages not sent",
                self.name,
                client.pending_data_size,
            )
            client._pending.clear()
            client._pending_data_size = 0
        try:
            await client.close()
        except (OSError, nats.errors.Error) as exc:
            log.warning("bus %s: closing the NATS client: %s", self.name, _describe(exc))

    def _open_client(self) -> Client:
        if self._client is None or self.state is BusState.CLOSED:
            self._check_open()
            raise BusUnavailableError(f"bus {self.name} is {self.state}")
        return self._client

    def _read_token(self) -> str | None:
        if self.token_file is None:
            return None
        try:
            token = self.token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise BadSettingError(
                f"cluster.nats_token_file {self.token_file} cannot be read: {_describe(exc)}"
            ) from exc
        if not token:
            raise BadSettingError(f"cluster.nats_token_file {self.token_file} is empty")
        return token

    def _tls_context(self) -> ssl.SSLContext | None:
        if self.ca_file is None:
            # tls:// URLs are then checked against the system's certificate authorities.
            return None
        try:
            return ssl.create_default_context(cafile=str(self.ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise BadSettingError(
                f"cluster.nats_ca_file {self.ca_file} is not a usable CA: {_describe(exc)}"
            ) from exc

    def _connected_url(self) -> str:
        url = self._client.connected_url if self._client is not None else None
        return _without_userinfo(url.geturl()) if url is not None else "?"

    def _log_error(self, error: Exception) -> None:
        text = _describe(error)
        # An outage repeats the same error every few seconds: say it once until it changes.
        if text != self._last_error:
            self._last_error = text
            log.warning("bus %s: NATS: %s", self.name, text)
        else:
            log.debug("bus %s: NATS: %s", self.name, text)

    async def _on_disconnected(self) -> None:
        if not self._closing and self.state is BusState.CONNECTED:
            self._set_state(BusState.DISCONNECTED, self._last_error or "connection lost")

    async def _on_reconnected(self) -> None:
        if not self._closing:
            self._last_error = ""
            self._set_state(BusState.CONNECTED, f"to {self._connected_url()}")

    async def _on_closed(self) -> None:
        if not self._closing:
            self._set_state(BusState.CLOSED, "the NATS client stopped")
