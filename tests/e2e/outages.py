"""A running booth call seen from both ends, and the outages a test or benchmark puts it
through: the relay frozen (SIGSTOP, then SIGCONT) or restarted, and the time from restoration
to fresh media at the advisor (Chromium, ``requestVideoFrameCallback``) and at the booth (its
status file). Shared by tests/e2e/test_faults.py and bench/recovery.py."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.e2e.conftest import BoothProcess, Coturn, poll, wait_until

#: Counts the frames the advisor's page presents, when the newest came, and when frames came
#: again after a gap of 0.3 s (ms since epoch): frames already on their way when the path broke
#: are still presented for a moment, and must not count as media back.
WATCH_FRAMES = """
() => {
  const video = document.getElementById('remote-video');
  window.__frames = 0;
  window.__frameAt = 0;
  window.__resumedAt = 0;
  const tick = () => {
    const now = Date.now();
    if (window.__frameAt && now - window.__frameAt > 300) window.__resumedAt = now;
    window.__frames += 1;
    window.__frameAt = now;
    video.requestVideoFrameCallback(tick);
  };
  video.requestVideoFrameCallback(tick);
}
"""


class Call:
    """The call under test, seen from both ends."""

    def __init__(self, page: Any, booth: BoothProcess) -> None:
        self.page = page
        self.booth = booth
        self.session_id: str | None = None

    async def advisor_frame_at(self) -> float:
        value: float = await self.page.evaluate("() => window.__frameAt / 1000")
        return value

    async def advisor_resumed_at(self) -> float:
        """When the advisor's page presented a frame after a gap (s since the epoch)."""
        value: float = await self.page.evaluate("() => window.__resumedAt / 1000")
        return value

    def booth_frames(self) -> tuple[int, float]:
        status = self.booth.report()
        if status is None:
            return 0, 0.0
        call = status.call or {}
        return call.get("video_frames_received", 0), status.updated_at

    async def in_call(self) -> bool:
        status = self.booth.report()
        page_in_call = await self.page.is_visible("#call-view")
        return bool(
            page_in_call
            and status is not None
            and status.state == "in_call"
            and status.session_id == self.session_id
        )

    async def media_back_after(self, restored: float, timeout: float = 40) -> tuple[float, float]:
        """Seconds from ``restored`` to media again (the first frame after the outage's gap)
        at the advisor and at the booth."""
        frames_then, _ = self.booth_frames()

        async def advisor() -> float | None:
            at = await self.advisor_resumed_at()
            return at - restored if at > restored else None

        async def booth() -> float | None:
            # The booth notes when media came back (first frame after a gap, or of a new
            # connection); its status file is written every half second.
            status = self.booth.report()
            resumed = (status.call or {}).get("media_resumed_at") if status else None
            if resumed is not None and resumed > restored:
                return float(resumed - restored)
            frames, updated = self.booth_frames()
            return max(0.0, updated - restored) if frames > frames_then + 30 else None

        at_advisor = await poll(advisor, timeout, "a new frame at the advisor")
        at_booth = await poll(booth, timeout, "a new frame at the booth")
        return at_advisor, at_booth

    def repairs(self) -> int | None:
        status = self.booth.report()
        return status.repairs if status is not None else None


def freeze(process: subprocess.Popen[bytes], seconds: float) -> float:
    """Stop ``process`` (SIGSTOP: it answers nothing, its sockets queue what comes) for
    ``seconds``, then continue it; the time it was continued (``time.time()``)."""
    os.kill(process.pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(process.pid, signal.SIGCONT)
    return time.time()


def restart_coturn(coturn: Coturn, turnserver: str, conf: Path) -> subprocess.Popen[bytes]:
    """kill -9 ``coturn`` and start ``turnserver`` again with ``conf`` (every allocation is
    gone); returns once it listens again. The new process replaces ``coturn.process``."""
    os.kill(coturn.process.pid, signal.SIGKILL)
    coturn.process.wait(10)
    opened = coturn.log.read_text(errors="replace").count("listener opened on")
    process = subprocess.Popen(
        [turnserver, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    coturn.process = process
    wait_until(
        lambda: coturn.log.read_text(errors="replace").count("listener opened on") > opened,
        15,
        "coturn to listen again",
    )
    return process
