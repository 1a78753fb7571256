"""One side of a benchmark call, run as its own process so its CPU time is its own.

Signalling is one JSON line each way on stdin/stdout; the measurements come back as a last
JSON line. ``sender`` plays the booth (``--path packets``: the booth's encode-once packet path;
``--path replay``: the same path with pre-encoded access units, as from the Pi 4's hardware
encoder; ``--path replay-aiortc``: those sent by aiortc's own RTP loop instead of the booth's
``PacketSender``; ``--path vp8``: the booth's path for a peer without H.264, its camera's
pictures encoded once more by libvpx; ``--path aiortc``: raw frames that aiortc encodes
itself), ``receiver`` plays the advisor and reads the test pattern's stamp from every decoded
frame.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import sys
import time
from typing import Any

import aioice.ice
import av
import psutil
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from kiosk.media import (
    H264,
    VP8,
    EncodedFrame,
    H264Encoder,
    Stamp,
    TestPattern,
    TestPatternSource,
    VideoFanout,
    VideoFeeds,
    VideoSource,
    read_stamp,
)
from kiosk.media.pacing import Pacer
from kiosk.media.packet_sender import send_packets


class RawPatternTrack(MediaStreamTrack):
    """The same synthetic frames, handed to aiortc raw: aiortc encodes them (the reference)."""

    kind = "video"

    def __init__(self, width: int, height: int, fps: int) -> None:
        super().__init__()
        self._pattern = TestPattern(width, height)
        self._pacer = Pacer(1 / fps)
        self._fps = fps
        self._n = 0

    async def recv(self) -> av.VideoFrame:
        slot = await self._pacer.next_slot()
        frame = self._pattern.render(Stamp(self._n, int(time.time() * 1000) & 0xFFFFFFFF))
        self._n += 1
        frame.pts = slot * 90_000 // self._fps
        frame.time_base = fractions.Fraction(1, 90_000)
        return frame


class ReplaySource(VideoSource):
    """Pre-encoded access units replayed at ``fps``: what a hardware encoder hands the CPU.

    Emulates the Pi 4's camera path, where the encoder block, not the CPU, compresses: the CPU
    only moves packets, through the booth's fan-out and sender as in a call. Two seconds are
    encoded before the call and looped (a replay cannot answer keyframe requests).
    """

    name = "replay"

    def __init__(self, *, width: int, height: int, fps: int, bitrate: int) -> None:
        super().__init__(width=width, height=height, fps=fps, bitrate=bitrate)
        pattern = TestPattern(width, height)
        encoder = H264Encoder(width, height, fps, bitrate)
        self._units = [
            b"".join(bytes(p) for p in encoder.encode(pattern.render(Stamp(n, 0)), keyframe=n == 0))
            for n in range(2 * fps)
        ]
        self._pacer = Pacer(1 / fps)

    async def start(self) -> None:
        pass

    async def read(self) -> EncodedFrame:
        slot = await self._pacer.next_slot()
        index = slot % len(self._units)
        self.frames_encoded += 1
        return EncodedFrame(
            data=self._units[index],
            pts=slot * 90_000 // self.fps,
            keyframe=index == 0,
            capture_time=time.time(),
            width=self.width,
            height=self.height,
        )

    async def next_preview(self) -> None:
        await self._pacer.next_slot()

    async def stop(self) -> None:
        pass


def _emit(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


async def _read_line() -> dict[str, Any]:
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    result: dict[str, Any] = json.loads(line)
    return result


def _cpu_seconds() -> float:
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


async def run(args: argparse.Namespace) -> None:
    servers = []
    if args.turn:
        servers = [RTCIceServer(urls=args.turn, username=args.turn_user, credential=args.turn_pass)]
    policy = RTCIceTransportPolicy.RELAY if args.turn else RTCIceTransportPolicy.ALL
    pc = RTCPeerConnection(RTCConfiguration(iceServers=servers, iceTransportPolicy=policy))
    fanout: VideoFanout | None = None
    feeds: VideoFeeds | None = None
    codec = VP8 if args.path == "vp8" else H264
    if args.role == "sender":
        size = {"width": args.width, "height": args.height, "fps": args.fps}
        if args.path in ("packets", "vp8", "replay", "replay-aiortc"):
            source: VideoSource
            if args.path.startswith("replay"):
                source = ReplaySource(**size, bitrate=args.bitrate)
            else:
                source = TestPatternSource(**size, bitrate=args.bitrate)
            fanout = VideoFanout(source)
            await fanout.start()
            feeds = VideoFeeds(fanout)
            track: MediaStreamTrack = feeds.subscribe()
        else:
            track = RawPatternTrack(args.width, args.height, args.fps)
        transceiver = pc.addTransceiver(track, direction="sendonly")
        transceiver.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == codec]
        )
        if fanout is not None:
            # As the booth's peer link does (replay-aiortc: aiortc's own RTP loop instead).
            fanout_track: Any = track
            fanout_track.install_keyframe_hook(transceiver.sender)
            if args.path != "replay-aiortc":
                send_packets(transceiver.sender)
        await pc.setLocalDescription(await pc.createOffer())
        _emit({"sdp": pc.localDescription.sdp})
        answer = await _read_line()
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        if feeds is not None:
            # As the booth's peer link does with the answer: VP8 comes from the VP8 feed.
            await feeds.use(fanout_track, codec)
        await _read_line()  # "start measuring"
        cpu0, t0 = _cpu_seconds(), time.monotonic()
        await _read_line()  # "stop measuring"
        cpu1, t1 = _cpu_seconds(), time.monotonic()
        _emit({"cpu_seconds": cpu1 - cpu0, "seconds": t1 - t0})
        await pc.close()
        if feeds is not None:
            await feeds.close()
        if fanout is not None:
            await fanout.close()
        return

    latencies: list[int] = []
    frames = 0
    unreadable = 0

    async def consume(track: MediaStreamTrack) -> None:
        nonlocal frames, unreadable
        with contextlib.suppress(MediaStreamError):
            while True:
                frame: Any = await track.recv()
                now_ms = int(time.time() * 1000) & 0xFFFFFFFF
                stamp = read_stamp(frame.to_ndarray(format="rgb24"))
                frames += 1
                if stamp is None:
                    unreadable += 1
                elif measuring:
                    latencies.append((now_ms - stamp.capture_ms) % 2**32)

    measuring = False
    pc.on("track", lambda t: asyncio.ensure_future(consume(t)))
    offer = await _read_line()
    await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    _emit({"sdp": pc.localDescription.sdp})
    await _read_line()
    measuring = True
    frames = unreadable = 0
    await _read_line()
    measuring = False
    _emit({"latencies_ms": latencies, "frames": frames, "unreadable": unreadable})
    await pc.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["sender", "receiver"])
    parser.add_argument(
        "--path",
        choices=["packets", "vp8", "replay", "replay-aiortc", "aiortc"],
        default="packets",
    )
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--bitrate", type=int, default=1_000_000)
    parser.add_argument("--turn")
    parser.add_argument("--turn-user")
    parser.add_argument("--turn-pass")
    args = parser.parse_args()
    if not args.turn:
        # Loopback only: aioice leaves 127.0.0.1 out of its host candidates.
        aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
