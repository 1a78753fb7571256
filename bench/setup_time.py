"""Call set-up time: from the caller's request to the first decoded video frame at each side.

Measured on the real stack (:mod:`bench.stack`): coturn, the server, the headless booth with
its test-pattern camera and an advisor in Chromium who accepts as soon as the call shows in the
queue. The reference is the same call from a citizen's browser at home (the walk-in page
``/now/`` in Chromium: the request is the Join click), measured the same way in the same run,
in alternating blocks of booth and citizen calls: the booth should be no slower to set up than
a browser.

Where each time is read:

- booth request: ``call_requested_at`` in the booth's status file (wall clock, set when it
  sends its call request);
- first frame at the advisor: ``data-first-frame-at`` of the advisor's remote video, written by
  the page from ``requestVideoFrameCallback``;
- first frame at the booth: its log line ``session <id>: first video frame`` (the log's
  millisecond timestamp), written when aiortc hands the first decoded frame of the advisor's
  camera to the booth;
- first frame at the citizen: a ``requestVideoFrameCallback`` this benchmark installs on the
  citizen page's remote video before the Join click.

Every clock is the same machine's wall clock.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bench.procs import cpu_seconds
from bench.stack import BenchError, Stack
from tests.e2e.conftest import BoothProcess, poll

BOOTH_NAME = "Bench booth"

ADVISOR_FIRST_FRAME = "() => document.getElementById('remote-video').dataset.firstFrameAt || null"
FORGET_ADVISOR_FIRST_FRAME = (
    "() => { delete document.getElementById('remote-video').dataset.firstFrameAt; }"
)
WATCH_CITIZEN_FIRST_FRAME = """
() => {
  window.benchFirstFrameAt = null;
  document.getElementById('remote-video').requestVideoFrameCallback(() => {
    window.benchFirstFrameAt = Date.now();
  });
}
"""
CITIZEN_FIRST_FRAME = "() => window.benchFirstFrameAt"

#: Booth calls, then as many citizen calls, in turn: both series share the machine's moods.
BLOCK = 5

LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


@dataclass
class SetUps:
    """Seconds from request to first frame, one entry per call."""

    at_advisor: list[float] = field(default_factory=list)
    at_caller: list[float] = field(default_factory=list)
    #: From the advisor's accept click to the first frame at the advisor.
    accept_to_advisor: list[float] = field(default_factory=list)

    def add(self, requested: float, clicked: float, at_advisor: float, at_caller: float) -> str:
        """Record one call (wall-clock times); a line for the progress output."""
        self.at_advisor.append(at_advisor - requested)
        self.at_caller.append(at_caller - requested)
        self.accept_to_advisor.append(at_advisor - clicked)
        return f"advisor {at_advisor - requested:.2f} s, caller {at_caller - requested:.2f} s"


@dataclass
class HeldCall:
    """CPU of coturn and of the booth over a booth call held open with media both ways."""

    seconds: float
    coturn_cpu: float
    booth_cpu: float


def booth_first_frame(booth: BoothProcess, session_id: str) -> float | None:
    """When the booth logged the first decoded frame of ``session_id`` (epoch seconds)."""
    marker = f"session {session_id}: first video frame"
    for line in booth.log.read_text(errors="replace").splitlines():
        if marker in line:
            found = LOG_TIME.match(line)
            if found is None:
                raise BenchError(f"cannot read the time of the booth's log line: {line!r}")
            return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return None


async def _first_frame_at_advisor(advisor: Any, after: float) -> float:
    async def check() -> float | None:
        value = await advisor.evaluate(ADVISOR_FIRST_FRAME)
        if value is None or float(value) / 1000 < after:
            return None
        return float(value) / 1000

    result: float = await poll(check, 30, "the first frame at the advisor")
    return result


async def _end_at_advisor(advisor: Any) -> None:
    await advisor.get_by_role("button", name="End call").click()
    await advisor.wait_for_selector("#queue-view:not([hidden])")


async def set_up_times(
    stack: Stack, count: int, *, hold_seconds: float, progress: Callable[[str], None]
) -> tuple[SetUps, SetUps, HeldCall | None]:
    """``count`` booth calls and ``count`` citizen calls, in alternating blocks of
    :data:`BLOCK` so that both see the same machine; the advisor accepts each and ends it.
    The last booth call is held for ``hold_seconds`` while coturn's and the booth's CPU are
    measured. Returns the booth's set-ups, the citizens' and the held call."""
    booth = stack.start_booth(BOOTH_NAME, "--repeat-call")
    context = await stack.browser.new_context(permissions=["camera", "microphone"])
    booths, citizens, held = SetUps(), SetUps(), None
    seen: set[str] = set()
    try:
        for first in range(0, count, BLOCK):
            if first:
                # The booth asked again during the citizens' block and waited meanwhile: take
                # that call without counting it.
                await _booth_call(stack, booth, seen)
            for n in range(first, min(first + BLOCK, count)):
                times = await _booth_call(stack, booth, seen, booths)
                progress(f"booth call {n + 1}/{count}: {times}")
                if n == count - 1 and hold_seconds > 0:
                    held = await _hold(stack, booth, hold_seconds, progress)
                await _end_booth_call(stack, booth)
            for n in range(first, min(first + BLOCK, count)):
                times = await _citizen_call(stack, context, citizens)
                progress(f"citizen call {n + 1}/{count}: {times}")
    finally:
        await context.close()
        booth.process.terminate()
        await asyncio.to_thread(booth.process.wait, 10)
    return booths, citizens, held


async def _booth_call(
    stack: Stack, booth: BoothProcess, seen: set[str], result: SetUps | None = None
) -> str:
    """The advisor accepts the booth's next call; with ``result``, its set-up is measured and
    the call stays up, without it the call is ended at once."""
    advisor = stack.advisor
    waiting = await asyncio.to_thread(
        booth.wait_for_report,
        lambda s: s.state == "waiting" and s.session_id not in (None, *seen),
        60,
        "the booth to ask for an advisor",
    )
    session_id, requested_at = waiting.session_id, waiting.call_requested_at
    if session_id is None or requested_at is None:
        raise BenchError(f"the booth's status says it waits but not since when: {waiting}")
    seen.add(session_id)
    await advisor.evaluate(FORGET_ADVISOR_FIRST_FRAME)
    await advisor.get_by_role("button", name=f"Accept call from {BOOTH_NAME}").click(timeout=30_000)
    clicked_at = time.time()
    at_advisor = await _first_frame_at_advisor(advisor, clicked_at - 1)

    async def booth_frame() -> float | None:
        return booth_first_frame(booth, session_id)

    at_booth: float = await poll(booth_frame, 30, "the first frame at the booth")
    if result is None:
        await _end_booth_call(stack, booth)
        return ""
    return result.add(requested_at, clicked_at, at_advisor, at_booth)


async def _end_booth_call(stack: Stack, booth: BoothProcess) -> None:
    status = booth.report()
    before = status.calls_completed if status is not None else 0
    await _end_at_advisor(stack.advisor)
    await asyncio.to_thread(
        booth.wait_for_report,
        lambda s: s.calls_completed > before,
        30,
        "the booth's call to end",
    )


async def _hold(
    stack: Stack, booth: BoothProcess, seconds: float, progress: Callable[[str], None]
) -> HeldCall:
    """Keep the call up for ``seconds`` and read coturn's and the booth's CPU over it."""
    await asyncio.to_thread(
        booth.wait_for_report,
        lambda s: (s.call or {}).get("video_fps_received", 0) >= 10,
        20,
        "the booth to receive the advisor's video",
    )
    progress(f"relay CPU: booth call held for {seconds:.0f} s ...")
    turn, kiosk = stack.coturn.process.pid, booth.process.pid
    c0, b0, t0 = cpu_seconds(turn), cpu_seconds(kiosk), time.monotonic()
    await asyncio.sleep(seconds)
    c1, b1, t1 = cpu_seconds(turn), cpu_seconds(kiosk), time.monotonic()
    return HeldCall(seconds=t1 - t0, coturn_cpu=c1 - c0, booth_cpu=b1 - b0)


async def _citizen_call(stack: Stack, context: Any, result: SetUps) -> str:
    """A walk-in call from a citizen's Chromium page that the advisor accepts and ends."""
    advisor = stack.advisor
    citizen = await context.new_page()
    try:
        await citizen.goto(f"{stack.server.url}/now/")
        await citizen.wait_for_selector("#welcome-view:not([hidden])")
        await citizen.get_by_role("button", name="Agree and turn on camera").click()
        await citizen.wait_for_selector("#prejoin-view:not([hidden])")
        await citizen.evaluate(WATCH_CITIZEN_FIRST_FRAME)
        await advisor.evaluate(FORGET_ADVISOR_FIRST_FRAME)
        requested_at = time.time()
        await citizen.get_by_role("button", name="Join").click()
        await advisor.get_by_role("button", name="Accept call from Citizen").click(timeout=30_000)
        clicked_at = time.time()
        at_advisor = await _first_frame_at_advisor(advisor, clicked_at - 1)

        async def citizen_frame() -> float | None:
            value = await citizen.evaluate(CITIZEN_FIRST_FRAME)
            return None if value is None else float(value) / 1000

        at_citizen: float = await poll(citizen_frame, 30, "the first frame at the citizen")
        times = result.add(requested_at, clicked_at, at_advisor, at_citizen)
        await _end_at_advisor(advisor)
        await citizen.wait_for_selector("#ended-view:not([hidden])")
    finally:
        await citizen.close()
    return times
