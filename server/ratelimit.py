"""Limits: a sliding-window limiter for failures (logins, join codes), a token bucket for
message rates and a gate for expensive work (password hashes)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable


class RateLimiter:
    """Allows at most ``limit`` recorded failures per key within ``window`` seconds."""

    def __init__(
        self,
        *,
        limit: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self._limit = limit
        self._window = window
        self._clock = clock
        self._max_keys = max_keys
        self._events: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        now = self._clock()
        events = self._events.get(key)
        if events is None:
            return deque()
        while events and events[0] <= now - self._window:
            events.popleft()
        if not events:
            del self._events[key]
        return events

    def blocked_for(self, key: str) -> float:
        """Seconds until ``key`` may try again (0 when it may now)."""
        events = self._recent(key)
        if len(events) < self._limit:
            return 0.0
        return max(0.0, events[0] + self._window - self._clock())

    def record_failure(self, key: str) -> None:
        if key not in self._events and len(self._events) >= self._max_keys:
            # Bounded memory under a flood of distinct keys: forget the oldest key.
            self._events.pop(next(iter(self._events)))
        self._events.setdefault(key, deque()).append(self._clock())

    def reset(self, key: str) -> None:
        self._events.pop(key, None)

    def forgive(self, key: str) -> None:
        """Take back the newest failure recorded for ``key`` (an attempt counted in advance
        that turned out not to be one)."""
        events = self._events.get(key)
        if events:
            events.pop()
            if not events:
                del self._events[key]


class TokenBucket:
    """Per-connection message rate: ``rate`` per second with bursts up to ``burst``."""

    def __init__(
        self, *, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._tokens = burst
        self._stamp = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class BusyError(Exception):
    """A :class:`WorkGate` is full: the work is refused rather than queued without end."""


class WorkGate:
    """Expensive work (password hashes) with at most ``slots`` pieces running at once and at
    most ``queue`` waiting for a slot; more is refused at once with :class:`BusyError`.

    A burst of logins then costs ``slots`` cores at most, whatever its size: the event loop
    and everything else keep their share of the machine, and a login that gets a slot waits
    behind at most ``queue`` others.
    """

    def __init__(self, *, slots: int, queue: int) -> None:
        self.slots = slots
        self._queue = queue
        self._semaphore = asyncio.Semaphore(slots)
        self._waiting = 0
        #: Running now, the most ever running at once, and refused since the start.
        self.running = 0
        self.peak = 0
        self.refused = 0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a slot for the work inside; raises :class:`BusyError` when the queue is full."""
        if self._waiting >= self._queue:
            self.refused += 1
            raise BusyError("too much of this work is waiting")
        self._waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self._waiting -= 1
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            yield
        finally:
            self.running -= 1
            self._semaphore.release()
