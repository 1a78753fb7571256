"""Waiting longer after each failure: the one backoff the booth uses to reach its server (the
link and enrolment)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable


class Backoff:
    """Delays that double from ``first`` up to ``ceiling``; with ``jitter`` each wait is a
    random 50 to 100 % of the delay, so a branch's booths do not all come back in the same
    second after an outage."""

    def __init__(
        self,
        *,
        ceiling: float,
        first: float = 1.0,
        jitter: bool = False,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self._first = first
        self._ceiling = ceiling
        self._jitter = jitter
        self._uniform = uniform
        self.delay = first

    def reset(self) -> None:
        """It worked: the next failure waits ``first`` again."""
        self.delay = self._first

    def hold_off(self) -> None:
        """A failure that will not heal soon (a refused credential): wait the longest."""
        self.delay = self._ceiling

    def next(self) -> float:
        """How long to wait now; the delay after it doubles."""
        wait = self.delay * (self._uniform(0.5, 1.0) if self._jitter else 1.0)
        self.delay = min(self.delay * 2, self._ceiling)
        return wait

    async def wait(self) -> None:
        await asyncio.sleep(self.next())
