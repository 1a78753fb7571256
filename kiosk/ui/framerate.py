"""How many video frames of each participant reach the booth's screen, per second.

A frame counts once, when it is first drawn: the screen is redrawn more often than video
arrives, and a frame drawn again is not a new picture. EN 301 549 (6.5.2) wants at least 20
frames per second for sign language; this counts what the citizen actually sees, after the
network, the decoder and the drawing.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

#: The window :meth:`FrameMeter.fps` averages over.
FPS_WINDOW_SECONDS = 2.0


class FrameMeter:
    """Counts new frames drawn per participant (the advisor, an interpreter, ...)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: dict[str, object] = {}
        self._times: dict[str, deque[float]] = {}
        #: New frames drawn so far, per participant.
        self.counts: dict[str, int] = {}

    def drawn(self, who: str, frame_id: object) -> None:
        """``who``'s frame ``frame_id`` was drawn; counted when it differs from the last."""
        if frame_id is None or self._last.get(who) is frame_id:
            return
        self._last[who] = frame_id
        self.counts[who] = self.counts.get(who, 0) + 1
        self._times.setdefault(who, deque(maxlen=240)).append(self._clock())

    def count(self, who: str) -> int:
        return self.counts.get(who, 0)

    def fps(self, who: str, window: float = FPS_WINDOW_SECONDS) -> float:
        """New frames of ``who`` drawn per second over the last ``window`` seconds."""
        now = self._clock()
        recent = [t for t in self._times.get(who, ()) if t > now - window]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / (recent[-1] - recent[0])
