"""Pacing for sources without a clock of their own (the test pattern, the test tone)."""

from __future__ import annotations

import asyncio


class Pacer:
    """Hands out frame slots at a fixed period against the event loop's clock.

    Slot ``n`` is due at ``start + n * period``; sleeping until the due time (not for a period)
    keeps rounding and scheduling delays from adding up. A consumer more than a whole period
    late skips the missed slots instead of getting a burst of stale frames.
    """

    def __init__(self, period: float) -> None:
        self._period = period
        self._start: float | None = None
        self._slot = -1

    async def next_slot(self) -> int:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._start is None:
            self._start = now
            self._slot = 0
            return 0
        slot = self._slot + 1
        due = self._start + slot * self._period
        if now - due > self._period:
            slot = int((now - self._start) / self._period)
            due = self._start + slot * self._period
        self._slot = slot
        if due > now:
            await asyncio.sleep(due - now)
        return slot
