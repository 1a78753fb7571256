"""What the booth's lights say: status patterns as data, and the two lights' contracts.

A status light (the status LED, a button's lamp) shows one :class:`Pattern` at a time. The
camera light is a promise to the person in the booth: lit exactly while the camera's picture
can go out (the camera streams and the citizen has not turned it off), so it follows the
camera and the camera button and nothing else.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from kiosk.hardware.protocols import Led

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pattern:
    """How a light shows a state: lit ``on_time`` seconds, then dark ``off_time``, repeated.

    ``off_time`` 0 is a steady light, ``on_time`` 0 a dark one.
    """

    name: str
    on_time: float
    off_time: float

    def __post_init__(self) -> None:
        for value in (self.on_time, self.off_time):
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"pattern {self.name}: times must be finite and not negative")
        if self.on_time == 0 and self.off_time == 0:
            raise ValueError(f"pattern {self.name}: on_time and off_time cannot both be 0")

    def show(self, led: Led) -> None:
        """Put ``led`` into this pattern; a blink runs on until the next pattern."""
        if self.on_time == 0:
            led.off()
        elif self.off_time == 0:
            led.on()
        else:
            led.blink(self.on_time, self.off_time)


OFF = Pattern("off", on_time=0.0, off_time=1.0)
#: Steady: ready for you (or: all is well).
READY = Pattern("ready", on_time=1.0, off_time=0.0)
#: Slow blink: working on it (starting, waiting for an advisor, connecting).
BUSY = Pattern("busy", on_time=0.5, off_time=0.5)
#: Fast blink: something is wrong (offline, out of service); hard to miss.
FAULT = Pattern("fault", on_time=0.1, off_time=0.1)


class StatusLight:
    """A light that shows one pattern at a time; starts dark."""

    def __init__(self, led: Led, *, name: str = "status light") -> None:
        self._led = led
        self._name = name
        self._pattern = OFF
        OFF.show(led)

    @property
    def pattern(self) -> Pattern:
        return self._pattern

    def show(self, pattern: Pattern) -> None:
        """Switch to ``pattern``; the same pattern again changes nothing.

        Restarting a blink on every call would make it stutter when the caller repeats itself
        (a state refreshed in a loop).
        """
        if pattern == self._pattern:
            return
        log.debug("%s: %s -> %s", self._name, self._pattern.name, pattern.name)
        self._pattern = pattern
        pattern.show(self._led)

    def refresh(self) -> None:
        """Show the current pattern again (after a line check left the light off)."""
        self._pattern.show(self._led)


class CameraLight:
    """The light that says the camera is on: lit exactly while its picture can go out."""

    def __init__(self, led: Led) -> None:
        self._led = led
        self._streaming = False
        led.off()

    @property
    def streaming(self) -> bool:
        return self._streaming

    def camera_streaming(self, streaming: bool) -> None:
        """Report whether the camera's picture goes out now; the light follows at once."""
        if streaming != self._streaming:
            log.info("camera light: %s", "on" if streaming else "off")
        self._streaming = streaming
        # Applied every time, not only on change: the lamp must never disagree with the camera.
        if streaming:
            self._led.on()
        else:
            self._led.off()
