"""The booth's aiortc tracks: paced H.264 packets with keyframes on request, and the tone."""

from __future__ import annotations

import fractions
import threading
import time
from collections.abc import AsyncIterator

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from kiosk.media import TestPatternTrack, ToneTrack, nal_unit_types, read_stamp
from kiosk.media.h264 import NAL_IDR, NAL_PPS, NAL_SPS

FPS = 30


@pytest.fixture
async def track() -> AsyncIterator[TestPatternTrack]:
    track = TestPatternTrack(width=320, height=240, fps=FPS, bitrate=300_000)
    yield track
    track.stop()


def _is_idr(packet: av.Packet) -> bool:
    types = nal_unit_types(bytes(packet))
    return types[:2] == [NAL_SPS, NAL_PPS] and NAL_IDR in types


async def test_recv_yields_h264_packets_with_pts_in_90_khz(track: TestPatternTrack) -> None:
    packets = [await track.recv() for _ in range(5)]
    assert all(isinstance(p, av.Packet) for p in packets)
    assert all(p.time_base == fractions.Fraction(1, 90_000) for p in packets)
    assert [p.pts for p in packets] == [0, 3000, 6000, 9000, 12000]
    assert _is_idr(packets[0])
    assert not any(_is_idr(p) for p in packets[1:])
    assert track.frames_sent == 5
    assert track.latest_frame is not None


async def test_packets_carry_stamped_frames(track: TestPatternTrack) -> None:
    decoder = av.CodecContext.create("h264", "r")
    stamps = []
    for _ in range(3):
        packet = await track.recv()
        now_ms = int(time.time() * 1000) & 0xFFFF_FFFF
        for frame in decoder.decode(packet):
            stamp = read_stamp(frame.to_ndarray(format="rgb24"))
            assert stamp is not None
            assert (now_ms - stamp.capture_ms) % 2**32 < 1000  # captured just now
            stamps.append(stamp.frame_number)
    assert stamps == [0, 1, 2]


async def test_paced_at_fps(track: TestPatternTrack) -> None:
    await track.recv()
    start = time.monotonic()
    for _ in range(9):
        await track.recv()
    elapsed = time.monotonic() - start
    # Nine periods are 0.3 s; loose bounds, the machine may be busy.
    assert 0.2 < elapsed < 1.5, elapsed


async def test_encoding_runs_off_the_event_loop(
    track: TestPatternTrack, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads = set()
    encode = track._encoder.encode

    def recording_encode(frame: av.VideoFrame, *, keyframe: bool = False) -> list[av.Packet]:
        threads.add(threading.current_thread())
        return encode(frame, keyframe=keyframe)

    monkeypatch.setattr(track._encoder, "encode", recording_encode)
    for _ in range(3):
        await track.recv()
    assert len(threads) == 1
    assert threading.current_thread() not in threads


async def test_request_keyframe_makes_the_next_packet_an_idr(track: TestPatternTrack) -> None:
    for _ in range(3):
        await track.recv()
    track.request_keyframe()
    assert _is_idr(await track.recv())
    assert not _is_idr(await track.recv())
    assert track.keyframes_requested == 1


async def test_keyframe_hook_on_a_real_sender(track: TestPatternTrack) -> None:
    pc = RTCPeerConnection()
    try:
        sender = pc.addTrack(track)
        track.install_keyframe_hook(sender)
        for _ in range(2):
            await track.recv()
        sender._send_keyframe()  # what aiortc calls on a PLI or FIR from the receiver
        assert _is_idr(await track.recv())
        assert track.keyframes_requested == 1
        assert sender._RTCRtpSender__force_keyframe is True  # the original still ran
    finally:
        await pc.close()


async def test_bitrate_is_adjustable(track: TestPatternTrack) -> None:
    await track.recv()
    track.bitrate = 150_000
    assert track.bitrate == 150_000
    assert _is_idr(await track.recv())  # the encoder restarts with an IDR


async def test_stop_ends_the_track(track: TestPatternTrack) -> None:
    await track.recv()
    track.stop()
    track.stop()
    assert track.readyState == "ended"
    with pytest.raises(MediaStreamError):
        await track.recv()


async def test_tone_frames() -> None:
    tone = ToneTrack()
    try:
        start = time.monotonic()
        frames = [await tone.recv() for _ in range(6)]
        elapsed = time.monotonic() - start
    finally:
        tone.stop()
    assert 0.05 < elapsed < 1.0, elapsed  # five 20 ms periods, loosely
    for index, frame in enumerate(frames):
        assert isinstance(frame, av.AudioFrame)
        assert (frame.format.name, frame.layout.name) == ("s16", "mono")
        assert (frame.sample_rate, frame.samples) == (48_000, 960)
        assert frame.time_base == fractions.Fraction(1, 48_000)
        assert frame.pts == index * 960
    samples = np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(float)
    rms_dbfs = 20 * np.log10(np.sqrt(np.mean(samples**2)) * np.sqrt(2) / 32768)
    assert -21 < rms_dbfs < -19  # peak level of the sine
    spectrum = np.abs(np.fft.rfft(samples))
    peak_hz = np.argmax(spectrum) * 48_000 / len(samples)
    assert abs(peak_hz - 440) < 10
    with pytest.raises(MediaStreamError):
        await tone.recv()
