"""Soak: one booth call held for minutes on the real stack, every process's memory sampled.

The booth calls, the advisor in Chromium accepts, and the call runs with video and audio both
ways through coturn. Every ``interval`` seconds the resident memory of the server, the booth,
coturn and Chromium (its whole process tree) is read from ``/proc``. The figure per process is
its largest growth over its size at the start of the call; the goal is at most 50 MB. Beside
it, the growth after the first five minutes (or half the soak), which leaves out what fills
once and shows what keeps growing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.procs import total_rss
from bench.stack import Stack

MB = 1_000_000
GROWTH_GOAL_MB = 50.0
#: The first minutes of a call fill decoders, jitter buffers and caches once.
WARMUP_MINUTES = 5.0


@dataclass
class Soak:
    """RSS samples per process (bytes), taken every ``interval`` seconds of the call."""

    minutes: float
    interval: float
    samples: dict[str, list[int]] = field(default_factory=dict)
    call_survived: bool = False

    def growth_mb(self, name: str) -> float:
        """The largest growth over the size at the call's start."""
        values = self.samples[name]
        return (max(values) - values[0]) / MB

    @property
    def warmup_minutes(self) -> float:
        return min(WARMUP_MINUTES, self.minutes / 2)

    def settled_growth_mb(self, name: str) -> float:
        """The largest growth over the size after the warm-up: what keeps growing (a leak)
        rather than buffers and caches that fill once."""
        values = self.samples[name][round(self.warmup_minutes * 60 / self.interval) :]
        return (max(values) - values[0]) / MB

    def start_mb(self, name: str) -> float:
        return self.samples[name][0] / MB


async def soak(
    stack: Stack, minutes: float, *, interval: float, progress: Callable[[str], None]
) -> Soak:
    """Hold one booth call for ``minutes`` and sample every process's RSS."""
    advisor = stack.advisor
    booth = stack.start_booth("Soak booth", "--call")
    await asyncio.to_thread(
        booth.wait_for_report, lambda s: s.state == "waiting", 60, "the soak booth to call"
    )
    await advisor.get_by_role("button", name="Accept call from Soak booth").click(timeout=30_000)
    await asyncio.to_thread(
        booth.wait_for_report,
        lambda s: (s.call or {}).get("video_fps_received", 0) >= 10,
        30,
        "the soak call's media to flow",
    )
    result = Soak(minutes=minutes, interval=interval)
    pids = stack.pids()
    for name in pids:
        result.samples[name] = []
    started = time.monotonic()
    end = started + minutes * 60
    while True:
        pids["chromium"] = stack.pids()["chromium"]  # renderers come and go
        for name, group in pids.items():
            result.samples[name].append(total_rss(group))
        now = time.monotonic()
        if now >= end:
            break
        elapsed = (now - started) / 60
        if len(result.samples["booth"]) % max(1, round(60 / interval)) == 1:
            sizes = ", ".join(f"{n} {v[-1] / MB:.0f} MB" for n, v in result.samples.items())
            progress(f"soak {elapsed:.1f}/{minutes:g} min: {sizes}")
        await asyncio.sleep(min(interval, end - now))
    status = booth.report()
    result.call_survived = (
        status is not None
        and status.state == "in_call"
        and (status.call or {}).get("video_fps_received", 0) >= 10
    )
    if not result.call_survived:
        progress(f"soak: the call did not last {minutes:g} min; booth status {status}")
        return result
    await advisor.get_by_role("button", name="End call").click()
    await advisor.wait_for_selector("#queue-view:not([hidden])")
    return result
