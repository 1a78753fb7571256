"""The camera's video per codec: peers that answered VP8 share one libvpx encoder, fed the
camera's pictures, which runs only while such a peer reads."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import AsyncIterator
from typing import Any

import av
import pytest
from aiortc import RTCPeerConnection

from kiosk.media import (
    H264,
    VP8,
    FanoutTrack,
    Picamera2Source,
    TestPatternSource,
    VideoFanout,
    VideoFeeds,
    Vp8Source,
    is_vp8_keyframe,
    read_stamp,
)
from kiosk.media.fake_picamera2 import FakePicamera2
from kiosk.media.vp8 import Vp8Encoder

FPS = 30


@pytest.fixture
async def feeds() -> AsyncIterator[VideoFeeds]:
    camera = VideoFanout(TestPatternSource(width=320, height=240, fps=FPS, bitrate=300_000))
    await camera.start()
    feeds = VideoFeeds(camera)
    yield feeds
    await feeds.close()
    await camera.close()


async def _vp8_track(feeds: VideoFeeds) -> FanoutTrack:
    track = feeds.subscribe()
    await feeds.use(track, VP8)
    return track


def _vp8_source(feeds: VideoFeeds) -> Vp8Source:
    assert feeds.vp8 is not None
    source = feeds.vp8.source
    assert isinstance(source, Vp8Source)
    return source


async def test_a_peer_that_answered_vp8_gets_vp8_frames_that_libvpx_decodes(
    feeds: VideoFeeds,
) -> None:
    track = await _vp8_track(feeds)
    assert track.codec == VP8
    decoder = av.CodecContext.create("libvpx", "r")
    packets = [await track.recv() for _ in range(10)]
    assert is_vp8_keyframe(bytes(packets[0]))  # a new peer starts at a key frame
    numbers = []
    for packet in packets:
        for frame in decoder.decode(packet):
            assert (frame.width, frame.height) == (320, 240)
            stamp = read_stamp(frame.to_ndarray(format="rgb24"))
            assert stamp is not None
            numbers.append(stamp.frame_number)
    assert len(numbers) == 10
    assert numbers == sorted(set(numbers))  # the camera's pictures, in order
    assert all(b.pts > a.pts for a, b in itertools.pairwise(packets))


async def test_two_vp8_peers_share_one_encoder(
    feeds: VideoFeeds, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[Vp8Encoder] = []
    threads: set[threading.Thread] = set()
    encode = Vp8Encoder.encode

    def counting_encode(self: Vp8Encoder, frame: av.VideoFrame, **kwargs: Any) -> Any:
        if self not in opened:
            opened.append(self)
        threads.add(threading.current_thread())
        return encode(self, frame, **kwargs)

    monkeypatch.setattr(Vp8Encoder, "encode", counting_encode)
    advisor, interpreter = await _vp8_track(feeds), await _vp8_track(feeds)
    first, second = [], []
    for _ in range(20):
        first.append(await advisor.recv())
        second.append(await interpreter.recv())
    assert [bytes(p) for p in first] == [bytes(p) for p in second]  # the very same frames
    assert len(opened) == 1
    assert _vp8_source(feeds).frames_encoded <= 20 + 2
    assert threading.current_thread() not in threads  # libvpx never runs on the event loop


async def test_no_vp8_encoding_without_a_vp8_peer(feeds: VideoFeeds) -> None:
    h264 = feeds.subscribe()
    for _ in range(10):
        await h264.recv()
    assert feeds.vp8 is None  # nobody took VP8: no encoder, no thread, no watcher
    vp8 = await _vp8_track(feeds)
    for _ in range(5):
        await vp8.recv()
    source = _vp8_source(feeds)
    assert source.encoding
    vp8.stop()  # the VP8 peer left; the frame being encoded then is the last
    for _ in range(30):
        if not source.encoding:
            break
        await h264.recv()
    assert not source.encoding  # libvpx was let go
    encoded = source.frames_encoded
    for _ in range(10):
        await h264.recv()
    assert source.frames_encoded == encoded  # the H.264 peer goes on, VP8 is not encoded
    late = await _vp8_track(feeds)  # a VP8 peer again: a new encoder, from a key frame
    assert is_vp8_keyframe(bytes(await late.recv()))


async def test_a_mixed_call_encodes_once_per_codec(feeds: VideoFeeds) -> None:
    h264, vp8 = feeds.subscribe(), await _vp8_track(feeds)
    for _ in range(30):
        await h264.recv()
        await vp8.recv()
    camera, vp8_source = feeds.camera.source, _vp8_source(feeds)
    assert (h264.codec, vp8.codec) == (H264, VP8)
    # One encode per picture and codec (a frame or two may be in flight).
    assert 30 <= camera.frames_encoded <= 34, camera.frames_encoded
    assert 30 <= vp8_source.frames_encoded <= 34, vp8_source.frames_encoded


async def test_a_keyframe_request_from_a_vp8_peer_reaches_libvpx(feeds: VideoFeeds) -> None:
    track = feeds.subscribe()
    pc = RTCPeerConnection()
    try:
        sender = pc.addTrack(track)
        track.install_keyframe_hook(sender)  # as the peer link does, before the answer
        await feeds.use(track, VP8)
        for _ in range(3):
            await track.recv()
        camera_requests = feeds.camera.source.keyframes_requested
        source = _vp8_source(feeds)
        before = source.keyframes_requested
        sender._send_keyframe()  # what aiortc calls on a PLI or FIR from the receiver
        packets = [await track.recv() for _ in range(2)]
        assert any(is_vp8_keyframe(bytes(p)) for p in packets)
        assert source.keyframes_requested == before + 1
        assert feeds.camera.source.keyframes_requested == camera_requests
    finally:
        await pc.close()


async def test_the_rate_controllers_bitrate_reaches_libvpx(feeds: VideoFeeds) -> None:
    track = await _vp8_track(feeds)
    for _ in range(3):
        await track.recv()
    feeds.camera.source.bitrate = 150_000  # what the rate controller sets
    assert _vp8_source(feeds).bitrate == 150_000
    packets = [await track.recv() for _ in range(2)]
    assert any(is_vp8_keyframe(bytes(p)) for p in packets)  # libvpx opened at the new rate
    assert _vp8_source(feeds)._encoder is not None
    assert _vp8_source(feeds)._encoder.bitrate == 150_000


async def test_camera_off_sends_black_vp8(feeds: VideoFeeds) -> None:
    track = await _vp8_track(feeds)
    decoder = av.CodecContext.create("libvpx", "r")
    for _ in range(3):
        decoder.decode(await track.recv())
    feeds.camera.source.blanked = True
    await asyncio.sleep(0.1)  # pictures captured before "camera off" may still follow
    luma = []
    for _ in range(5):
        for frame in decoder.decode(await track.recv()):
            luma.append(int(frame.to_ndarray(format="gray").max()))
    assert luma[-1] < 40, luma


async def test_the_pi_camera_gives_vp8_its_self_view_pictures() -> None:
    source = Picamera2Source(
        width=640, height=480, fps=FPS, preview_width=320, picamera2_module=FakePicamera2()
    )
    camera = VideoFanout(source)
    await camera.start()
    feeds = VideoFeeds(camera)
    try:
        track = await _vp8_track(feeds)
        decoder = av.CodecContext.create("libvpx", "r")
        sizes = set()
        for _ in range(5):
            for frame in decoder.decode(await track.recv()):
                sizes.add((frame.width, frame.height))
        assert sizes == {(320, 240)}  # the lores stream's size
    finally:
        await feeds.close()
        await camera.close()


def test_the_camera_feed_must_be_h264() -> None:
    vp8 = VideoFanout(Vp8Source(TestPatternSource(width=320, height=240)))
    with pytest.raises(ValueError, match=r"must send H\.264, not video/VP8"):
        VideoFeeds(vp8)
