"""How messages reach one client: the seam between the switchboard and the WebSocket.

The switchboard never awaits, so it never writes to a socket itself: it hands each message to
the participant's :class:`Transport`, which must not block. For a WebSocket that is an
:class:`Outbox`, a bounded queue drained by the connection's own writer task
(``server/websocket.py``); in tests it is :class:`~server.signalling.fakes.RecordingTransport`.
A later cluster reaches a participant connected to another node through a transport that
publishes to that node.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

#: Messages a connection may have queued for sending before it counts as stuck and is closed.
OUTBOX_LIMIT = 256


class Transport(Protocol):
    def send_text(self, text: str) -> bool:
        """Queue one encoded message; False when the client stopped reading (queue full)."""
        ...

    def close(self, code: int, reason: str) -> None:
        """Close the client's connection (soon: this must not block either)."""
        ...


class Outbox:
    """A WebSocket's messages on their way out, at most ``limit`` of them."""

    __slots__ = ("_close", "queue")

    def __init__(self, close: Callable[[int, str], None], *, limit: int = OUTBOX_LIMIT) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue(limit)
        self._close = close

    def send_text(self, text: str) -> bool:
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            return False
        return True

    def close(self, code: int, reason: str) -> None:
        self._close(code, reason)


class Unconnected:
    """The transport of a participant the call expects back but that has not connected (one
    known from a resume token): it is away, so nothing reaches this; closing it does nothing."""

    def send_text(self, text: str) -> bool:
        return True

    def close(self, code: int, reason: str) -> None:
        pass


UNCONNECTED = Unconnected()
