"""Stand-ins for tests: a clock moved by hand and a transport that records what it is given.

They implement :class:`~server.signalling.clock.Clock` and
:class:`~server.signalling.transport.Transport`, so a switchboard built with them runs
without an event loop, a socket or waiting.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from protocol import QueueView


class FakeTimer:
    def __init__(self, due: float, callback: Callable[[], None]) -> None:
        self.due = due
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Starts at ``start`` (epoch seconds); :meth:`advance` moves every clock and runs the
    timers that fall due, in order."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._epoch = start
        self._monotonic = 1000.0
        self.timers: list[FakeTimer] = []

    def monotonic(self) -> float:
        return self._monotonic

    def time(self) -> float:
        return self._epoch

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._epoch, UTC)

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(self._monotonic + delay, callback)
        self.timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        end = self._monotonic + seconds
        while True:
            due = [t for t in self.timers if not t.cancelled and t.due <= end]
            if not due:
                break
            timer = min(due, key=lambda t: t.due)
            self.timers.remove(timer)
            self._step(timer.due - self._monotonic)
            timer.callback()
        self._step(end - self._monotonic)
        self.timers = [t for t in self.timers if not t.cancelled]

    def _step(self, seconds: float) -> None:
        self._monotonic += seconds
        self._epoch += seconds


class RecordingTransport:
    """Keeps every message sent (decoded) and every close; ``full`` makes it refuse sends
    as a client that stopped reading does."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.closed: list[tuple[int, str]] = []
        self.full = False

    def send_text(self, text: str) -> bool:
        if self.full:
            return False
        self.sent.append(json.loads(text))
        return True

    def close(self, code: int, reason: str) -> None:
        self.closed.append((code, reason))

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m["type"] == kind]

    def last(self, kind: str) -> dict[str, Any]:
        found = self.of_type(kind)
        if not found:
            raise LookupError(f"no {kind} among {self.types()}")
        return found[-1]

    def queue(self) -> list[dict[str, Any]]:
        """The advisor's queue as these messages told it: the last ``queue`` with every
        ``queue_changed`` since applied, oldest first."""
        view = QueueView()
        for message in self.sent:
            view.apply(message)
        return view.waiting

    def types(self) -> list[str]:
        return [m["type"] for m in self.sent]

    def clear(self) -> None:
        self.sent.clear()
