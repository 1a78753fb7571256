"""Glass-to-glass from the booth to the advisor's screen, on the path an advisor has.

The booth (headless, the test-pattern camera, whose every frame carries its capture time in a
stamp: kiosk/media/stamp.py) calls; the advisor's page in Chromium takes the call through
coturn, with the booth's audio playing. For every frame the page presents,
``requestVideoFrameCallback`` gives the time it is expected on the screen; the page reads the
stamp from that frame (server/static/js/stamp.js) and keeps the difference. The reference, in
the same run and through the same coturn: a bare aiortc peer (bench/peer.py, the booth's
packet path, video only) sending to a bare ``RTCPeerConnection`` in the same Chromium, measured
the same way. Both run on one machine, so the booth's and the browser's wall clocks agree.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.pages import CANDIDATES_GATHERED, KEEP_CONNECTIONS
from bench.procs import latency_percentiles, percentile
from bench.stack import BenchError, Stack, turn_credentials
from bench.table import Row, row
from tests.e2e.conftest import poll

REPO = Path(__file__).resolve().parents[1]

#: Installed in a page: for every frame the <video> presents, when it is expected on the screen,
#: its RTP timestamp, and the capture time in the stamp of the picture drawn from the element
#: in that callback. ``window.__glass`` collects while ``measuring``.
WATCH = """async (selector) => {
  const { readStamp } = await import('/static/js/stamp.js');
  const video = document.querySelector(selector);
  const canvas = document.createElement('canvas');
  const g = canvas.getContext('2d', { willReadFrequently: true });
  const glass = window.__glass = { measuring: false, samples: [], unreadable: 0,
                                   first: null, last: null, started: 0 };
  const tick = (now, meta) => {
    const width = video.videoWidth;
    if (width) {
      // The stamp lies in the top sixth: read only that band.
      const band = Math.ceil(width * 0.15);
      canvas.width = width;
      canvas.height = band;
      g.drawImage(video, 0, 0, width, band, 0, 0, width, band);
      const stamp = readStamp(g.getImageData(0, 0, width, band));
      if (glass.measuring) {
        glass.first = glass.first ?? meta.presentedFrames;
        glass.last = meta.presentedFrames;
        if (stamp) {
          // On the wall clock the booth stamps with, now (not the page's time origin, which
          // the clock may have been slewed away from since the page opened).
          const shown = Date.now() - (performance.now() - meta.expectedDisplayTime);
          glass.samples.push([Math.round(shown), stamp.captureMs, meta.rtpTimestamp ?? null]);
        } else {
          glass.unreadable += 1;
        }
      }
    }
    video.requestVideoFrameCallback(tick);
  };
  video.requestVideoFrameCallback(tick);
}"""

#: RTP's video clock (90 kHz) in ticks per millisecond.
RTP_TICKS_PER_MS = 90
#: A frame whose stamp is further than this from its RTP timestamp (once the two clocks are
#: matched) was not the frame the callback describes.
MISMATCH_MS = 8.0


def presented_latencies(samples: list[list[int | None]]) -> tuple[list[int], int]:
    """Glass-to-glass of each presented frame (ms), and how many pictures read in the callback
    were another frame than the one presented.

    The picture drawn from the <video> inside the frame callback is not always the frame the
    callback is about: Chromium sometimes has the element's next frame there already, or
    still the one before (stamps a frame interval off, some "shown before captured"). The
    callback's ``rtpTimestamp`` names the presented frame exactly, and the sender's RTP
    timestamps carry the capture time (kiosk/media/source.py): the stamps fix the one constant
    between the two clocks (their median difference), and each frame's capture time is then
    read from its RTP timestamp. Without RTP timestamps (another browser), the stamps are taken
    as they are. Stamps carry the low 32 bits of the wall clock's milliseconds: all
    differences are taken modulo 2**32.
    """
    if not samples or any(rtp is None for _, _, rtp in samples):
        return [_wrapped(int(shown or 0) - int(captured or 0)) for shown, captured, _ in samples], 0
    first = int(samples[0][2] or 0)
    # Against the first frame: RTP timestamps wrap at 32 bits (13 hours at 90 kHz).
    rtp_ms = [_wrapped(int(rtp or 0) - first) / RTP_TICKS_PER_MS for _, _, rtp in samples]
    offsets = [
        _wrapped(int(captured or 0) - round(ms))
        for (_, captured, _), ms in zip(samples, rtp_ms, strict=True)
    ]
    offset = sorted(offsets)[len(offsets) // 2]
    mismatched = sum(abs(_wrapped(o - offset)) > MISMATCH_MS for o in offsets)
    latencies = [
        _wrapped(round(int(shown or 0) - ms) - offset)
        for (shown, _, _), ms in zip(samples, rtp_ms, strict=True)
    ]
    return latencies, mismatched


def _wrapped(value: int) -> int:
    """``value`` modulo 2**32, as a signed 32-bit number."""
    return (value + 2**31) % 2**32 - 2**31


#: The receivers' own account (inbound-rtp, summed over the page's connections): where a frame
#: waits in Chromium. Per frame in ms, over the measured time.
STATS = """async () => {
  const sums = {};
  for (const pc of window.__pcs || []) {
    if (pc.connectionState === 'closed') continue;
    for (const report of (await pc.getStats()).values()) {
      if (report.type !== 'inbound-rtp') continue;
      for (const key of ['jitterBufferDelay', 'jitterBufferTargetDelay',
                         'jitterBufferMinimumDelay', 'jitterBufferEmittedCount',
                         'totalDecodeTime', 'totalProcessingDelay', 'framesDecoded']) {
        const name = `${report.kind}.${key}`;
        sums[name] = (sums[name] || 0) + (report[key] || 0);
      }
    }
  }
  return sums;
}"""

START = "() => { window.__glass.measuring = true; window.__glass.started = performance.now(); }"
STOP = """() => {
  const glass = window.__glass;
  glass.measuring = false;
  const seconds = (performance.now() - glass.started) / 1000;
  return { samples: glass.samples, unreadable: glass.unreadable, seconds,
           fps: glass.last === null ? 0 : (glass.last - glass.first) / seconds };
}"""


def waits(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """In ms per frame (video) or per emitted sample (audio), between two :data:`STATS`
    readings: the jitter buffer's delay, target and minimum; video's decode and processing."""

    def grew(name: str) -> float:
        return after.get(name, 0) - before.get(name, 0)

    per = {
        "jitterBufferDelay": "jitterBufferEmittedCount",
        "jitterBufferTargetDelay": "jitterBufferEmittedCount",
        "jitterBufferMinimumDelay": "jitterBufferEmittedCount",
        "totalDecodeTime": "framesDecoded",
        "totalProcessingDelay": "framesDecoded",
    }
    result = {}
    for kind in ("video", "audio"):
        for key, count in per.items():
            if grew(f"{kind}.{count}"):
                result[f"{kind} {key}"] = 1000 * grew(f"{kind}.{key}") / grew(f"{kind}.{count}")
    return result


#: A bare RTCPeerConnection in the page answering the aiortc peer's offer (no trickle: the
#: answer waits for its candidates, as aiortc sends none later).
ANSWER = (
    """async ([offer, turn]) => {
  const pc = new RTCPeerConnection({ iceServers: [turn], iceTransportPolicy: 'relay' });
  const video = document.createElement('video');
  video.id = 'bare-video';
  video.autoplay = true;
  video.muted = true;
  video.playsInline = true;
  document.body.append(video);
  pc.ontrack = (event) => { video.srcObject = new MediaStream([event.track]); };
  window.__pcs = [pc];
  await pc.setRemoteDescription({ type: 'offer', sdp: offer });
  await pc.setLocalDescription(await pc.createAnswer());"""
    + CANDIDATES_GATHERED
    + """  return pc.localDescription.sdp;
}"""
)

PLAYING = """(selector) => {
  const v = document.querySelector(selector);
  return Boolean(v && v.videoWidth > 0 && v.currentTime > 1);
}"""


@dataclass
class Glass:
    """One path's frames: glass-to-glass in ms, frames per second presented."""

    latencies: list[int]
    unreadable: int
    seconds: float
    fps: float
    #: Where frames waited in the browser, per frame in ms (from its inbound-rtp statistics).
    waits: dict[str, float]
    #: Pictures read in a frame's callback that were another frame (see presented_latencies).
    mismatched: int = 0


async def measure(page: Any, selector: str, seconds: float) -> Glass:
    """Install the watch on ``selector`` of ``page``, settle, and measure ``seconds``."""
    await page.evaluate(WATCH, selector)
    await asyncio.sleep(2.0)  # past the start: the jitter buffer settles
    before = await page.evaluate(STATS)
    await page.evaluate(START)
    await asyncio.sleep(seconds)
    result = await page.evaluate(STOP)
    after = await page.evaluate(STATS)
    latencies, mismatched = presented_latencies(result.pop("samples"))
    return Glass(**result, latencies=latencies, mismatched=mismatched, waits=waits(before, after))


async def booth_to_advisor(stack: Stack, seconds: float, name: str = "Glass booth") -> Glass:
    """The real path: a booth calls, the advisor's page (audio on) takes it."""
    page = stack.advisor
    await page.add_init_script("(() => {" + KEEP_CONNECTIONS + "})()")
    await page.reload()
    await page.wait_for_selector("#queue-view:not([hidden])")
    booth = stack.start_booth(name, "--call")
    try:
        accept = page.get_by_role("button", name=f"Accept call from {name}")
        await accept.click(timeout=30_000)
        await poll(lambda: page.evaluate(PLAYING, "#remote-video"), 30, "the booth's video")
        audio = await page.evaluate(
            "() => document.getElementById('remote-video').srcObject.getAudioTracks().length"
        )
        if not audio:
            raise RuntimeError("the advisor's page plays no audio of the booth")
        return await measure(page, "#remote-video", seconds)
    finally:
        await page.get_by_role("button", name="End call").click()
        await page.wait_for_selector("#queue-view:not([hidden])")
        booth.process.terminate()


async def bare_to_browser(stack: Stack, seconds: float) -> Glass:
    """The reference: the booth's packet path in a bare aiortc peer to a bare page."""
    user, password = turn_credentials(stack.coturn, "glass")
    turn = {"urls": stack.coturn.url, "username": user, "credential": password}
    context = await stack.browser.new_context()
    page = await context.new_page()
    await page.goto(f"{stack.server.url}/accessibility/")
    sender = subprocess.Popen(  # noqa: ASYNC220 - started once, read in threads
        [
            sys.executable,
            "bench/peer.py",
            "sender",
            "--path",
            "packets",
            "--turn",
            stack.coturn.url,
            "--turn-user",
            user,
            "--turn-pass",
            password,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert sender.stdin is not None
    assert sender.stdout is not None
    try:
        offer = json.loads(await asyncio.to_thread(sender.stdout.readline))
        answer = await page.evaluate(ANSWER, [offer["sdp"], turn])
        sender.stdin.write(json.dumps({"sdp": answer}) + "\n")
        sender.stdin.flush()
        await poll(lambda: page.evaluate(PLAYING, "#bare-video"), 30, "the bare peer's video")
        return await measure(page, "#bare-video", seconds)
    finally:
        for line in ({"measure": True}, {"stop": True}):
            sender.stdin.write(json.dumps(line) + "\n")
            sender.stdin.flush()
        await asyncio.to_thread(sender.wait, 30)
        await context.close()


async def both(workdir: Path, seconds: float) -> tuple[Glass, Glass]:
    """The real path and its reference, one after the other on one running stack."""
    from bench.stack import running_stack

    async with running_stack(workdir) as stack:
        await stack.login_advisor()
        real = await booth_to_advisor(stack, seconds)
        bare = await bare_to_browser(stack, seconds)
    return real, bare


def to_advisor(seconds: float, progress: Callable[[str], None]) -> tuple[list[Row], Any]:
    """``make bench``'s part: the rows (the booth's path beside the bare one) and what each
    measured (for the JSON)."""
    import tempfile

    progress(f"booth -> advisor glass-to-glass, real path and bare reference, {seconds:g} s each")
    with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
        real, bare = asyncio.run(both(Path(workdir), seconds))
    for name, glass in (("the booth's", real), ("the bare peer's", bare)):
        if len(glass.latencies) < seconds * 5:
            raise BenchError(f"{name} frames at the advisor: only {len(glass.latencies)} read")
    rows = [
        row(
            f"booth -> advisor (Chromium, audio on) glass-to-glass p{p} ms",
            percentile(real.latencies, p),
            percentile(bare.latencies, p),
            "bare aiortc packets -> Chromium, same coturn",
            goal,
        )
        for p, goal in ((50, "<= reference + 5 ms"), (95, ""), (99, "<= 60 ms"))
    ]
    rows.append(
        row(
            "booth -> advisor frames/s displayed",
            real.fps,
            bare.fps,
            "bare aiortc packets -> Chromium",
            "30",
        )
    )
    details = {
        name: {
            **latency_percentiles(glass.latencies),
            "fps": glass.fps,
            "frames": len(glass.latencies),
            "unreadable": glass.unreadable,
            "mismatched": glass.mismatched,
            "waits_ms": glass.waits,
        }
        for name, glass in (("booth", real), ("bare", bare))
    }
    return rows, details


def main() -> None:
    import argparse

    from bench.run import table

    parser = argparse.ArgumentParser(
        prog="python -m bench.to_advisor", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="per path (default 20)")
    args = parser.parse_args()
    rows, details = to_advisor(args.seconds, lambda text: print(text, flush=True))
    print(table(rows))
    for name, measured in details.items():
        waits = ", ".join(f"{k} {v:.1f}" for k, v in measured["waits_ms"].items())
        print(f"{name}: where frames waited in Chromium (ms each): {waits}")
        print(
            f"{name}: {measured['frames']} frames read, {measured['mismatched']} of them a "
            "picture of another frame than the one presented (timed by their RTP timestamps)"
        )


if __name__ == "__main__":
    main()
