"""Camera off means camera off: once the citizen turns the camera off, no picture captured
after that leaves the booth — from every kind of video source (the test pattern, a PyAV input,
the Pi camera through picamera2, here its fake), in H.264 and in the VP8 that peers without H.264
get — the self-view shows the same black, and the camera light goes out.

Found in review: only the software-encoder sources read the blanking flag; the Pi camera path
went on sending the picture with the light on.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aioice.ice
import av
import numpy as np
import pytest

from kiosk.app import Booth
from kiosk.config import BoothConfig, CameraConfig
from kiosk.flow import State
from kiosk.hardware import FakeHardware
from kiosk.media import (
    VP8,
    Picamera2Source,
    PyAVSource,
    Stamp,
    TestPattern,
    TestPatternSource,
    VideoFanout,
    VideoFeeds,
    VideoSource,
    read_stamp,
)
from kiosk.media.fake_picamera2 import FakePicamera2
from tests.server.conftest import MakeHarness

WIDTH, HEIGHT, FPS = 320, 240, 30
#: Frames a source may still send after "camera off" (already captured or in the encoder).
GRACE_FRAMES = 10
FRAMES_AFTER = 45


def _black(frame: av.VideoFrame) -> bool:
    """A black picture: no luma much above video black (16), whatever the encoder's noise."""
    luma = frame.to_ndarray(format="gray")
    return float(np.percentile(luma, 99.9)) < 40


def _pattern_file(path: Path) -> Path:
    """Two seconds of stamped test pattern as an H.264 file, for PyAV to read."""
    pattern = TestPattern(WIDTH, HEIGHT)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.time_base = fractions.Fraction(1, FPS)
        for number in range(2 * FPS):
            frame = pattern.render(Stamp(number, 1_000 + number))
            frame.pts = number
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


SourceFactory = Callable[[Path], VideoSource]

SOURCES: dict[str, SourceFactory] = {
    "test-pattern": lambda _: TestPatternSource(
        width=WIDTH, height=HEIGHT, fps=FPS, bitrate=300_000
    ),
    "pyav-file": lambda tmp: PyAVSource(
        url=str(_pattern_file(tmp / "pattern.mp4")),
        width=WIDTH,
        height=HEIGHT,
        fps=FPS,
        bitrate=300_000,
        loop=True,
    ),
    "picamera2": lambda _: Picamera2Source(
        width=WIDTH,
        height=HEIGHT,
        fps=FPS,
        bitrate=300_000,
        preview_width=160,
        picamera2_module=FakePicamera2(),
    ),
}


async def _read(source: VideoSource, count: int) -> list[bytes]:
    return [(await source.read()).data for _ in range(count)]


async def _sends_black_after_camera_off(
    name: str, source: VideoSource, *, vp8: bool = False
) -> list[str]:
    """What ``source`` did wrong after "camera off" (nothing: an empty list); with ``vp8``,
    what the VP8 sent to a peer without H.264 did wrong (the same pictures encoded again)."""
    problems: list[str] = []
    decoder = av.CodecContext.create("libvpx" if vp8 else "h264", "r")

    def decode(frames: list[bytes]) -> list[av.VideoFrame]:
        pictures: list[av.VideoFrame] = []
        for frame in frames:
            pictures += decoder.decode(av.Packet(frame))
        return pictures

    camera = VideoFanout(source)
    feeds = VideoFeeds(camera)
    if vp8:
        await camera.start()
        track = feeds.subscribe()
        await feeds.use(track, VP8)
        name = f"VP8 of {name}"

        async def read(count: int) -> list[bytes]:
            return [bytes(await track.recv()) for _ in range(count)]
    else:
        await source.start()

        async def read(count: int) -> list[bytes]:
            return await _read(source, count)

    try:
        before = decode(await read(15))
        if not before or any(_black(p) for p in before[-5:]):
            return [f"{name}: no picture before the camera was turned off"]
        pressed_ms = int(time.time() * 1000) & 0xFFFF_FFFF
        source.blanked = True
        after = decode(await read(FRAMES_AFTER))
        first_black = next((i for i, p in enumerate(after) if _black(p)), None)
        if first_black is None:
            problems.append(f"{name}: {len(after)} pictures after camera off, none black")
        else:
            if first_black > GRACE_FRAMES:
                problems.append(f"{name}: the first black picture came {first_black} frames late")
            again = [i for i, p in enumerate(after[first_black:]) if not _black(p)]
            if again:
                problems.append(f"{name}: the picture came back {len(again)} times while off")
            for picture in after[:first_black]:
                stamp = read_stamp(picture.to_ndarray(format="rgb24"))
                if stamp is not None and stamp.capture_ms > pressed_ms:
                    problems.append(f"{name}: sent a picture captured after camera off")
        await asyncio.sleep(0.2)  # the self-view's newest frame, captured while off
        preview = source.latest_preview
        if preview is None or not _black(preview):
            problems.append(f"{name}: the self-view still shows the camera's picture")
        source.blanked = False
        back = decode(await read(2 * GRACE_FRAMES))
        if not back or _black(back[-1]):
            problems.append(f"{name}: no picture after the camera was turned on again")
    finally:
        await feeds.close()
        await camera.close()
        await source.stop()
    return problems


async def test_security_camera_off_sends_black_from_every_video_source(tmp_path: Path) -> None:
    problems: list[str] = []
    for name, make in SOURCES.items():
        problems += await _sends_black_after_camera_off(name, make(tmp_path))
    assert problems == []


async def test_security_camera_off_sends_black_in_vp8_from_every_video_source(
    tmp_path: Path,
) -> None:
    """A peer without H.264 gets the camera's pictures encoded again: black as well."""
    problems: list[str] = []
    for name, make in SOURCES.items():
        problems += await _sends_black_after_camera_off(name, make(tmp_path), vp8=True)
    assert problems == []


# --- the booth: the camera light says whether the picture goes out ----------------------------


@pytest.fixture
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice leaves 127.0.0.1 out of its host candidates; in-process peers need it."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


async def _until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
async def booth_in_call(
    make_harness: MakeHarness, loopback_ice: None
) -> AsyncIterator[tuple[Booth, FakeHardware]]:
    harness = await make_harness()
    await harness.add_advisor("alice")
    advisor = await harness.advisor("alice")
    config = BoothConfig(
        server_url=harness.url("/").rstrip("/"),
        credential=await harness.add_booth("Blanking booth"),
        camera=CameraConfig(kind="test-pattern", allow_test_pattern=True),
    )
    fake = FakeHardware()
    booth = Booth(config, hardware=fake.hardware)
    task = asyncio.create_task(booth.run())
    try:
        await _until(lambda: booth.state is State.IDLE, "the booth to be idle")
        assert booth.request_call()
        queue = await advisor.receive_queue()
        while not queue["waiting"]:
            queue = await advisor.receive_queue()
        await advisor.send(type="call_accept", session_id=queue["waiting"][0]["session_id"])
        await _until(lambda: booth.state is State.IN_CALL, "the call")
        yield booth, fake
    finally:
        booth.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_security_camera_off_turns_the_camera_light_off(
    booth_in_call: tuple[Booth, FakeHardware],
) -> None:
    booth, fake = booth_in_call
    fanout = booth.fanout
    assert isinstance(fanout, VideoFanout)
    assert fake.camera_led.is_lit

    booth.toggle_camera()  # the citizen's "camera off"
    assert fanout.source.blanked
    assert not fake.camera_led.is_lit, "the camera light says the picture still goes out"
    assert not (await booth.status())["camera_light"]

    booth.toggle_camera()
    assert not fanout.source.blanked
    assert fake.camera_led.is_lit
