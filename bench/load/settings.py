"""The load's settings, its fixed figures and how it reports progress."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: The repository (the server and the probe run from it).
REPO = Path(__file__).resolve().parents[2]
PASSWORD = "load-test-password-" + "x" * 8
#: How often booths heartbeat: the interval the server asks for in its welcome (its
#: ``heartbeat_seconds``, this by default), which booths follow (``kiosk.link``). The load
#: configures the server with the interval it is run at and checks the welcome says so.
BOOTH_HEARTBEAT_SECONDS = 15.0
#: Server messages that arrive unasked and need no answer.
CHATTER = frozenset({"welcome", "queue", "queue_changed", "queue_position", "call_waiting"})
#: The advisors' API as their workspace calls it, and the load balancer's health check.
API_PATHS = ("/api/v1/health", "/api/v1/me", "/api/v1/appointments", "/api/v1/topics")
API_GOAL_MS = 100.0
#: A set-up not done by then counts as failed (generous: the machine may be shared).
SETUP_TIMEOUT = 30.0

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def timed_progress() -> Progress:
    """Progress lines on standard output, each with the seconds since the start."""
    began = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - began:5.1f} s] {text}", flush=True)

    return say


@dataclass(frozen=True)
class LoadSettings:
    booths: int = 500
    advisors: int = 60
    #: Call set-ups started per second, and for how long.
    rate: float = 50.0
    seconds: float = 20.0
    #: API requests per second from the probe process, under load and idle (the reference).
    api_rate: float = 20.0
    api_reference_seconds: float = 5.0
    heartbeat_seconds: float = BOOTH_HEARTBEAT_SECONDS
    #: How long a call lasts once set up (the advisor is busy meanwhile).
    hold_seconds: float = 0.3
    #: Calls set up one at a time on the quiet server (the reference for set-up latency).
    reference_setups: int = 20
    #: Booths connecting at once.
    connect_parallel: int = 25
