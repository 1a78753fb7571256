"""The switchboard's sense of time: one object, so tests can move it by hand.

Three clocks are read: monotonic seconds for every "how long ago" (grace periods, rates,
invitation expiry), epoch seconds for what outlives a restart (endings, resume tokens) and
aware UTC datetimes for what is shown (waiting since, chat times). Timers are the event
loop's ``call_later``. :class:`~server.signalling.fakes.FakeClock` is the stand-in.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol


class Timer(Protocol):
    """A callback due later; cancelling it twice is harmless."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def time(self) -> float: ...

    def now(self) -> datetime: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer: ...


class SystemClock:
    """The real clocks and the running event loop's timers."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(delay, callback)
