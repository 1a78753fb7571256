"""One encode, many peers: the test-pattern source behind the fan-out and its tracks."""

from __future__ import annotations

import asyncio
import fractions
import itertools
import statistics
import threading
import time
from collections.abc import AsyncIterator

import av
import pytest
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from kiosk.media import (
    Picamera2Source,
    TestPatternSource,
    VideoFanout,
    VideoSource,
    nal_unit_types,
    read_stamp,
)
from kiosk.media.fake_picamera2 import FakePicamera2
from kiosk.media.h264 import NAL_IDR, NAL_PPS, NAL_SPS, H264Encoder

FPS = 30


@pytest.fixture
async def fanout() -> AsyncIterator[VideoFanout]:
    fanout = VideoFanout(TestPatternSource(width=320, height=240, fps=FPS, bitrate=300_000))
    await fanout.start()
    yield fanout
    await fanout.close()


def _is_idr(packet: av.Packet) -> bool:
    types = nal_unit_types(bytes(packet))
    return types[:2] == [NAL_SPS, NAL_PPS] and NAL_IDR in types


async def test_track_yields_h264_packets_with_pts_in_90_khz(fanout: VideoFanout) -> None:
    track = fanout.subscribe()
    packets = [await track.recv() for _ in range(5)]
    assert all(p.time_base == fractions.Fraction(1, 90_000) for p in packets)
    steps = [b.pts - a.pts for a, b in itertools.pairwise(packets)]
    # The capture times: a frame interval (3000 at 30 fps) apart, give or take the pacing (the
    # median: a frame late because the machine was busy is a later capture, not a wrong clock).
    assert all(step > 0 for step in steps), steps
    assert 2000 <= statistics.median(steps) <= 4000, steps
    assert _is_idr(packets[0])  # a new peer starts at an IDR
    assert not any(_is_idr(p) for p in packets[1:])
    assert track.frames_sent == 5
    assert fanout.source.latest_preview is not None


async def test_packets_carry_stamped_frames(fanout: VideoFanout) -> None:
    track = fanout.subscribe()
    decoder = av.CodecContext.create("h264", "r")
    numbers = []
    for _ in range(3):
        packet = await track.recv()
        now_ms = int(time.time() * 1000) & 0xFFFF_FFFF
        for frame in decoder.decode(packet):
            stamp = read_stamp(frame.to_ndarray(format="rgb24"))
            assert stamp is not None
            assert (now_ms - stamp.capture_ms) % 2**32 < 1000  # captured just now
            numbers.append(stamp.frame_number)
    assert numbers == list(range(numbers[0], numbers[0] + 3))


async def test_paced_at_fps(fanout: VideoFanout) -> None:
    track = fanout.subscribe()
    await track.recv()
    start = time.monotonic()
    for _ in range(9):
        await track.recv()
    elapsed = time.monotonic() - start
    # Nine periods are 0.3 s; loose bounds, the machine may be busy.
    assert 0.2 < elapsed < 1.5, elapsed


async def test_two_peers_share_one_encode(
    fanout: VideoFanout, monkeypatch: pytest.MonkeyPatch
) -> None:
    encodes = []
    threads = set()
    original = H264Encoder.encode

    def counting_encode(
        self: H264Encoder, frame: av.VideoFrame, *, keyframe: bool = False
    ) -> list[av.Packet]:
        encodes.append(frame)
        threads.add(threading.current_thread())
        return original(self, frame, keyframe=keyframe)

    monkeypatch.setattr(H264Encoder, "encode", counting_encode)
    advisor, interpreter = fanout.subscribe(), fanout.subscribe()
    first, second = [], []
    for _ in range(30):  # both peers read as their senders would, side by side
        first.append(await advisor.recv())
        second.append(await interpreter.recv())
    assert [bytes(p) for p in first] == [bytes(p) for p in second]  # the very same packets
    # One encode per frame, whatever the number of peers (a frame or two may be in flight).
    assert 30 <= len(encodes) <= 33, len(encodes)
    assert fanout.source.frames_encoded <= 33 + 1
    assert threading.current_thread() not in threads  # x264 never runs on the event loop


async def test_late_peer_starts_at_an_idr(fanout: VideoFanout) -> None:
    first = fanout.subscribe()
    for _ in range(10):
        await first.recv()
    late = fanout.subscribe()
    assert _is_idr(await late.recv())


async def test_request_keyframe_makes_the_next_packet_an_idr(fanout: VideoFanout) -> None:
    track = fanout.subscribe()
    for _ in range(3):
        await track.recv()
    before = fanout.source.keyframes_requested
    fanout.source.request_keyframe()
    # The frame being encoded while we asked may still be a P frame; the next is the IDR.
    packets = [await track.recv() for _ in range(2)]
    assert any(_is_idr(p) for p in packets)
    assert fanout.source.keyframes_requested == before + 1


async def test_keyframe_hook_on_a_real_sender(fanout: VideoFanout) -> None:
    track = fanout.subscribe()
    pc = RTCPeerConnection()
    try:
        sender = pc.addTrack(track)
        track.install_keyframe_hook(sender)
        for _ in range(2):
            await track.recv()
        before = fanout.source.keyframes_requested
        sender._send_keyframe()  # what aiortc calls on a PLI or FIR from the receiver
        packets = [await track.recv() for _ in range(2)]
        assert any(_is_idr(p) for p in packets)
        assert fanout.source.keyframes_requested == before + 1
        assert sender._RTCRtpSender__force_keyframe is True  # the original still ran
    finally:
        await pc.close()


async def test_bitrate_and_resolution_changes_restart_at_an_idr(fanout: VideoFanout) -> None:
    track = fanout.subscribe()
    await track.recv()
    fanout.source.bitrate = 150_000
    packets = [await track.recv() for _ in range(2)]
    assert any(_is_idr(p) for p in packets)
    fanout.source.set_resolution(160, 120)
    decoder = av.CodecContext.create("h264", "r")
    sizes = set()
    for _ in range(6):
        for frame in decoder.decode(await track.recv()):
            sizes.add((frame.width, frame.height))
    assert (160, 120) in sizes


async def test_close_ends_every_track_and_stops_the_source(fanout: VideoFanout) -> None:
    tracks = [fanout.subscribe(), fanout.subscribe()]
    await tracks[0].recv()
    await fanout.close()
    await fanout.close()  # safe twice
    for track in tracks:
        assert track.readyState == "ended"
        with pytest.raises(MediaStreamError):
            await track.recv()
    assert fanout.source.latest_preview is None


async def test_a_peer_that_stops_reading_is_resynchronised(fanout: VideoFanout) -> None:
    reader, sleeper = fanout.subscribe(), fanout.subscribe()
    for _ in range(20):  # the sleeper's queue overflows meanwhile
        await reader.recv()
    await asyncio.sleep(0)
    packets = []
    while not packets or not _is_idr(packets[-1]):
        packets.append(await sleeper.recv())
        assert len(packets) < 40
    assert sleeper.frames_dropped > 0


@pytest.mark.parametrize("kind", ["test-pattern", "picamera2"])
async def test_without_a_peer_the_self_view_still_gets_frames(kind: str) -> None:
    """The waiting, code-entry and enrolment screens show (and scan) the camera before any
    call has a peer: the pump keeps the self-view fresh but encodes nothing for nobody."""
    source: VideoSource
    if kind == "picamera2":
        source = Picamera2Source(
            width=320, height=240, fps=FPS, preview_width=160, picamera2_module=FakePicamera2()
        )
    else:
        source = TestPatternSource(width=320, height=240, fps=FPS, bitrate=300_000)
    fanout = VideoFanout(source)
    await fanout.start()
    try:
        seen: set[int] = set()
        for _ in range(100):
            preview = source.latest_preview
            if preview is not None:
                stamp = read_stamp(preview.to_ndarray(format="rgb24"))
                if stamp is not None:
                    seen.add(stamp.frame_number)
            if len(seen) >= 5:
                break
            await asyncio.sleep(0.02)
        assert len(seen) >= 5, f"{kind}: the self-view got {len(seen)} frames"
        if isinstance(source, TestPatternSource):
            assert source.frames_encoded == 0
            assert source.frames_captured >= 5
    finally:
        await fanout.close()


async def test_a_picture_captured_late_says_so_in_its_timestamp(fanout: VideoFanout) -> None:
    """The event loop held up for 200 ms: the next picture's timestamp is that much later, so
    that a receiver does not take the booth's delay for the network's jitter."""
    track = fanout.subscribe()
    first = await track.recv()
    time.sleep(0.2)
    later = await track.recv()
    assert later.pts - first.pts >= 0.15 * 90_000, (first.pts, later.pts)
