"""Maintenance windows, read alike by the server and the booth: the hours of a branch's day in
which its booths may install an update and restart (for example ``22:00-05:00``, in the
branch's time zone)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["ALWAYS", "MaintenanceWindow", "WindowError", "zone"]


class WindowError(ValueError):
    """A maintenance window or time zone that is not one; the message says how to write it."""


_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def zone(name: str) -> ZoneInfo:
    """The time zone ``name`` (``Europe/Berlin``), or a clear error."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise WindowError(f"{name!r} is not a time zone (use a name like Europe/Berlin)") from None


@dataclass(frozen=True)
class MaintenanceWindow:
    """From ``start`` to ``end`` local time each day; past midnight when ``end`` is earlier
    than ``start``; the whole day when they are equal."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> MaintenanceWindow:
        match = _WINDOW.match(text)
        if match is None:
            raise WindowError(
                f"{text!r} is not a maintenance window: write it as HH:MM-HH:MM, e.g. 22:00-05:00"
            )
        h1, m1, h2, m2 = (int(part) for part in match.groups())
        if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
            raise WindowError(f"{text!r} is not a maintenance window: hours 0-23, minutes 0-59")
        return cls(start=time(h1, m1), end=time(h2, m2))

    def is_open(self, at: datetime, tz: ZoneInfo) -> bool:
        """Whether the window is open at ``at`` (aware) in the time zone ``tz``."""
        now = at.astimezone(tz).time().replace(tzinfo=None)
        if self.start == self.end:
            return True
        if self.start < self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


#: A window that is always open (for tests and for organisations that update at any time).
ALWAYS = MaintenanceWindow(start=time(0, 0), end=time(0, 0))
