"""A small sliding-window limiter for failures (logins, later join codes)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


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
