"""Glass-to-glass from the advisor's camera to the booth's screen, on the path an advisor has.

The advisor's page in Chromium sends, in place of its camera, a 640x480 canvas at 30 frames a
second that carries the test pattern's stamp (kiosk/media/stamp.py): each frame is drawn with
the wall-clock time of its drawing and handed to the page's track at once
(``MediaStreamTrackGenerator``), so the stamp is its capture time. A booth (the test-pattern
camera, drawing its screen on SDL's dummy driver: ``--display window``) calls through the
stack's coturn; the advisor takes the call; the booth reads the stamp off its screen surface as
each new frame of the advisor is drawn (``--glass-log``, kiosk/ui/glass.py). Measured twice in
the same run: the booth as it is (each frame decoded once its last packet is in,
kiosk/media/receiver.py), and the booth with aiortc's own receiver (``[video] receiver =
"aiortc"``: a frame is decoded when the next one begins). The reference, through the same
coturn: the same canvas sent by a bare ``RTCPeerConnection`` in the same Chromium to a bare
aiortc peer (bench/peer.py's receiver, aiortc's own receiver), which reads the stamp from each
frame it decodes. Everything runs on one machine, so all clocks agree.

``python bench/from_advisor.py --seconds 20`` runs it alone; ``make bench`` includes it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.pages import CANDIDATES_GATHERED, KEEP_CONNECTIONS  # noqa: E402 - the path above
from bench.procs import latency_percentiles, percentile  # noqa: E402 - needs the path above
from bench.stack import BenchError, Stack, running_stack, turn_credentials  # noqa: E402
from bench.table import Row, row  # noqa: E402
from tests.e2e.conftest import BoothProcess, poll, stop_process  # noqa: E402

#: Installed in a page: ``window.__stampedCamera()`` makes the stamped canvas's track, and
#: every peer connection the page makes is kept in ``window.__pcs`` (for its sender's stats).
STAMPED_CAMERA = (
    """async () => {
  const { checkWord } = await import('/static/js/stamp.js');"""
    + KEEP_CONNECTIONS
    + """  window.__stampedCamera = () => {
    const width = 640, height = 480;
    const canvas = new OffscreenCanvas(width, height);
    const g = canvas.getContext('2d');
    // Cells of width/40 pixels in both directions, as kiosk/media/stamp.py lays them out.
    const edge = (k) => Math.floor((k * width) / 40);
    const generator = new MediaStreamTrackGenerator({ kind: 'video' });
    const writer = generator.writable.getWriter();
    // A patch of noise that changes every frame, as a camera's picture does: each frame is a
    // few packets, as a camera's is (a plain canvas would be one).
    const noise = [0, 1, 2, 3].map(() => {
      const tile = g.createImageData(160, 120);
      for (let i = 0; i < tile.data.length; i++) {
        tile.data[i] = i % 4 === 3 ? 255 : Math.random() * 255;
      }
      return tile;
    });
    let n = 0;
    let timer = null;
    const draw = () => {
      if (generator.readyState === 'ended') {  // the call ended: the page stopped its camera
        clearInterval(timer);
        return;
      }
      g.fillStyle = '#3a6ea5';
      g.fillRect(0, 0, width, height);
      g.fillStyle = '#f0c040';  // something that moves, as a face would
      g.fillRect((n * 8) % (width - 64), 160, 64, 240);
      g.putImageData(noise[n % noise.length], 400, 240);
      const captureMs = Date.now() % 2 ** 32;
      const words = [n >>> 0, captureMs, checkWord(n, captureMs)];
      g.fillStyle = '#ffffff';
      g.fillRect(edge(1), edge(1), edge(35) - edge(1), edge(6) - edge(1));
      g.fillStyle = '#000000';
      words.forEach((word, row) => {
        for (let bit = 0; bit < 32; bit++) {
          if ((word >>> (31 - bit)) & 1) {
            g.fillRect(edge(2 + bit), edge(2 + row), edge(3 + bit) - edge(2 + bit),
                       edge(3 + row) - edge(2 + row));
          }
        }
      });
      writer.write(new VideoFrame(canvas, { timestamp: Math.round(performance.now() * 1000) }));
      n += 1;
    };
    timer = setInterval(draw, 1000 / 30);
    return generator;
  };
}"""
)

#: The advisor's page asks for its camera when it takes a call: it gets the stamped canvas
#: (and the fake microphone).
ADVISOR_CAMERA = """() => {
  const devices = navigator.mediaDevices;
  const real = devices.getUserMedia.bind(devices);
  devices.getUserMedia = async (constraints) => {
    const stream = await real({ audio: constraints.audio });
    stream.addTrack(window.__stampedCamera());
    return stream;
  };
}"""

#: The bare sender: one RTCPeerConnection, relay only, video only in ``codec`` (the codec the
#: advisor's page sent the booth), its offer once its candidates are gathered.
BARE_OFFER = (
    """async ([turn, codec]) => {
  const pc = new RTCPeerConnection({ iceServers: [turn], iceTransportPolicy: 'relay' });
  const video = pc.addTransceiver(window.__stampedCamera(), { direction: 'sendonly' });
  video.setCodecPreferences(RTCRtpSender.getCapabilities('video').codecs.filter(
    (c) => c.mimeType === codec || c.mimeType === 'video/rtx'));
  await pc.setLocalDescription(await pc.createOffer());"""
    + CANDIDATES_GATHERED
    + """  return pc.localDescription.sdp;
}"""
)

BARE_ANSWER = "(sdp) => window.__pcs[0].setRemoteDescription({ type: 'answer', sdp })"

#: What the page's video sender does: codec, size and rate sent, why its quality is limited.
SENDER_STATS = """async () => {
  for (const pc of window.__pcs.slice().reverse()) {
    const stats = [...(await pc.getStats()).values()];
    const out = stats.find((s) => s.type === 'outbound-rtp' && s.kind === 'video');
    if (!out) continue;
    const codec = stats.find((s) => s.id === out.codecId);
    return { codec: codec ? codec.mimeType : null, width: out.frameWidth,
             height: out.frameHeight, fps: out.framesPerSecond,
             limited_by: out.qualityLimitationReason, frames_encoded: out.framesEncoded,
             packets_sent: out.packetsSent, retransmitted: out.retransmittedPacketsSent,
             bytes_sent: out.bytesSent };
  }
  return null;
}"""

#: The booths measured, in this order: booth.toml's [video] receiver.
RECEIVERS = ("marker", "aiortc")
#: After the first frame, before measuring: the call settles (rate, resolution).
SETTLE_SECONDS = 3.0
#: Each path is measured in this many parts, the paths in turn.
ROUNDS = 2


@dataclass
class Glass:
    """One path's frames over the measured seconds: capture to screen (or decode), in ms."""

    latencies: list[int]
    unreadable: int
    frames: int
    seconds: float
    sender: dict[str, Any] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def joined(self, other: Glass) -> Glass:
        """This part and ``other`` as one measurement (the later part's sender stats)."""
        return Glass(
            self.latencies + other.latencies,
            self.unreadable + other.unreadable,
            self.frames + other.frames,
            self.seconds + other.seconds,
            other.sender,
        )


def read_glass_log(path: Path, start: float, end: float) -> Glass:
    """The booth's glass log (kiosk/ui/glass.py) between ``start`` and ``end`` (epoch s)."""
    latencies, unreadable, frames = [], 0, 0
    for line in path.read_text().splitlines():
        drawn, _, captured = line.split()
        if not start * 1000 <= int(drawn) < end * 1000:
            continue
        frames += 1
        if captured == "-":
            unreadable += 1
        else:
            latencies.append((int(drawn) - int(captured)) % 2**32)
    return Glass(latencies, unreadable, frames, end - start)


async def advisor_to_booth(stack: Stack, receiver: str, seconds: float, round_: int = 1) -> Glass:
    """A booth with ``receiver`` calls, the advisor (stamped camera) takes it, the frames the
    booth draws over ``seconds`` are read from its glass log."""
    name = f"Glass booth {receiver} {round_}"
    log = stack.workdir / f"glass-{receiver}-{round_}.log"
    booth = stack.start_booth(
        name,
        "--call",
        "--display",
        "window",
        "--glass-log",
        str(log),
        settings=f'[video]\nreceiver = "{receiver}"\n',
    )
    page = stack.advisor
    try:
        await page.get_by_role("button", name=f"Accept call from {name}").click(timeout=60_000)
        await poll(lambda: _drawn(log), 30, f"the booth ({receiver}) to draw the advisor's video")
        await asyncio.sleep(SETTLE_SECONDS)
        start = time.time()
        await asyncio.sleep(seconds)
        end = time.time()
        sender = await page.evaluate(SENDER_STATS)
        await _end_call(page, booth)
    finally:
        stop_process(booth.process)
    result = read_glass_log(log, start, end)
    result.sender = sender or {}
    return result


async def _drawn(log: Path) -> bool:
    def lines() -> int:
        return len(log.read_text().splitlines()) if log.exists() else 0

    return await asyncio.to_thread(lines) > 10


async def _end_call(page: Any, booth: BoothProcess) -> None:
    await page.get_by_role("button", name="End call").click()
    await page.wait_for_selector("#queue-view:not([hidden])")
    await asyncio.to_thread(
        booth.wait_for_report, lambda s: s.calls_completed > 0, 30, "the booth's call to end"
    )


async def bare_reference(stack: Stack, codec: str, seconds: float) -> Glass:
    """The same canvas from a bare RTCPeerConnection to bench/peer.py's receiver (aiortc's
    own receiver), through the stack's coturn."""
    user, password = turn_credentials(stack.coturn, "glass")
    turn = {"urls": stack.coturn.url, "username": user, "credential": password}
    context = await stack.browser.new_context()
    page = await context.new_page()
    await page.goto(f"{stack.server.url}/accessibility/")
    await page.evaluate(STAMPED_CAMERA)
    receiver = subprocess.Popen(  # noqa: ASYNC220 - started once, read in threads
        [
            sys.executable,
            str(REPO / "bench" / "peer.py"),
            "receiver",
            *("--turn", stack.coturn.url, "--turn-user", user, "--turn-pass", password),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert receiver.stdin is not None
    assert receiver.stdout is not None
    stdin, stdout = receiver.stdin, receiver.stdout

    def send(line: dict[str, Any]) -> None:
        stdin.write(json.dumps(line) + "\n")
        stdin.flush()

    async def read() -> dict[str, Any]:
        line = await asyncio.to_thread(stdout.readline)
        if not line:
            raise BenchError(f"the bare aiortc receiver exited (code {receiver.poll()})")
        result: dict[str, Any] = json.loads(line)
        return result

    try:
        send({"sdp": await page.evaluate(BARE_OFFER, [turn, codec])})
        await page.evaluate(BARE_ANSWER, (await read())["sdp"])
        await poll(lambda: _sending(page), 30, "the bare sender's video")
        await asyncio.sleep(SETTLE_SECONDS)
        send({"measure": True})
        start = time.monotonic()
        await asyncio.sleep(seconds)
        send({"stop": True})
        measured = await read()
        elapsed = time.monotonic() - start
        sender = await page.evaluate(SENDER_STATS)
    finally:
        stdin.close()
        await asyncio.to_thread(receiver.wait, 30)
        await context.close()
    return Glass(
        measured["latencies_ms"],
        measured["unreadable"],
        measured["frames"],
        elapsed,
        sender or {},
    )


async def _sending(page: Any) -> bool:
    stats = await page.evaluate(SENDER_STATS)
    return bool(stats and (stats.get("frames_encoded") or 0) > 30)


async def measure_all(
    workdir: Path, seconds: float, progress: Callable[[str], None]
) -> dict[str, Glass]:
    """Each booth receiver, then the bare reference, on one running stack, in
    :data:`ROUNDS` rounds of ``seconds / ROUNDS`` each: all three see the machine's moods."""
    results: dict[str, Glass] = {}
    part = seconds / ROUNDS
    async with running_stack(workdir) as stack:
        page = await stack.login_advisor()
        await page.evaluate(STAMPED_CAMERA)
        await page.evaluate(ADVISOR_CAMERA)
        for round_ in range(1, ROUNDS + 1):
            for receiver in RECEIVERS:
                progress(f"advisor -> booth ({receiver} receiver), {part:g} s, round {round_} ...")
                glass = await advisor_to_booth(stack, receiver, part, round_)
                results[receiver] = results[receiver].joined(glass) if round_ > 1 else glass
            codec = results[RECEIVERS[0]].sender.get("codec") or "video/VP8"
            progress(f"advisor's canvas -> bare aiortc ({codec}), {part:g} s, round {round_} ...")
            glass = await bare_reference(stack, codec, part)
            results["bare"] = results["bare"].joined(glass) if round_ > 1 else glass
    for name, glass in results.items():
        if not glass.latencies:
            raise BenchError(f"no frame with a readable stamp: the {name} glass run is broken")
    return results


def rows_of(results: dict[str, Glass]) -> list[Row]:
    """The table's rows: each booth against the bare reference, p50/p95/p99 and rates."""
    bare = results["bare"]
    reference = "Chromium -> bare aiortc, decoded"
    rows = []
    for receiver, label, goals in (
        ("marker", "", {99: "<= 60 ms"}),
        ("aiortc", ", aiortc's receiver", {99: "above the marker release's"}),
    ):
        glass = results[receiver]
        rows += [
            row(
                f"advisor -> booth screen p{p} ms{label}",
                percentile(glass.latencies, p),
                percentile(bare.latencies, p),
                reference,
                goals.get(p, ""),
            )
            for p in (50, 95, 99)
        ]
        rows.append(
            row(
                f"advisor -> booth frames/s drawn{label}",
                glass.fps,
                bare.fps,
                "Chromium -> bare aiortc, frames/s decoded",
                ">= 20 (EN 301 549), 30 sent",
                ratio=False,
            )
        )
    return rows


def from_advisor(
    seconds: float, progress: Callable[[str], None], workdir: Path | None = None
) -> tuple[list[Row], Any]:
    """``make bench``'s part: the rows and what each path measured (for the JSON); the
    stack's files (the booths' logs and glass logs) in ``workdir``, or a temporary one."""
    import tempfile

    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        results = asyncio.run(measure_all(workdir, seconds, progress))
    else:
        with tempfile.TemporaryDirectory(prefix="bench-") as temporary:
            results = asyncio.run(measure_all(Path(temporary), seconds, progress))
    details = {
        name: {
            **latency_percentiles(glass.latencies),
            "fps": glass.fps,
            "frames": glass.frames,
            "unreadable": glass.unreadable,
            "sender": glass.sender,
        }
        for name, glass in results.items()
    }
    return rows_of(results), details


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python bench/from_advisor.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="per path (default 20)")
    parser.add_argument(
        "--workdir", type=Path, help="keep the stack's files here (the booths' glass logs)"
    )
    args = parser.parse_args()
    try:
        rows, details = from_advisor(args.seconds, partial(print, flush=True), args.workdir)
    except (BenchError, AssertionError) as exc:
        print(f"from_advisor: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    from bench.run import table

    print(table(rows))
    print(json.dumps(details, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
