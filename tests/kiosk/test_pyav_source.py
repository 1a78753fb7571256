"""PyAVSource: files, raw-frame inputs and missing cameras (no webcam on CI)."""

from __future__ import annotations

import fractions
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import av
import numpy as np
import pytest

from kiosk.media import EncodedFrame, SourceError, nal_unit_types
from kiosk.media.h264 import NAL_IDR, NAL_PPS, NAL_SPS
from kiosk.media.pyav_source import PyAVSource

FPS = 30


def _picture(index: int, width: int, height: int) -> np.ndarray:
    """An RGB frame with a bright square that moves, so that consecutive frames differ."""
    rgb = np.zeros((height, width, 3), dtype=np.uint8)
    rgb[:, :, 2] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    x = (index * 8) % (width - 32)
    rgb[height // 3 : height // 3 + 32, x : x + 32] = (255, 255, 0)
    return rgb


def _write_video(path: Path, frames: int, width: int = 320, height: int = 240) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(_picture(index, width, height), format="rgb24")
            frame.pts = index
            frame.time_base = fractions.Fraction(1, FPS)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


@pytest.fixture(scope="module")
def video_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("media") / "two-seconds.mkv"
    _write_video(path, 2 * FPS)
    return path


@pytest.fixture(scope="module")
def short_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("media") / "ten-frames.mkv"
    _write_video(path, 10)
    return path


@pytest.fixture
async def opened() -> AsyncIterator[list[PyAVSource]]:
    """Sources to stop after the test, whatever happened in it."""
    sources: list[PyAVSource] = []
    yield sources
    for source in sources:
        await source.stop()


def _decode(frames: list[EncodedFrame]) -> list[av.VideoFrame]:
    decoder = av.CodecContext.create("h264", "r")
    decoded = []
    for frame in frames:
        decoded += decoder.decode(av.Packet(frame.data))
    return decoded


def _messages(exc: BaseException) -> str:
    """The message of an exception and of the ones it was raised from."""
    parts = []
    current: BaseException | None = exc
    while current is not None:
        parts.append(str(current))
        current = current.__cause__
    return " / ".join(parts)


async def test_file_gives_annex_b_frames_starting_at_an_idr(
    video_file: Path, opened: list[PyAVSource]
) -> None:
    source = PyAVSource(url=str(video_file), width=160, height=120, fps=FPS, pace=False)
    opened.append(source)
    await source.start()
    frames = [await source.read() for _ in range(20)]

    for frame in frames:
        assert frame.data.startswith((b"\x00\x00\x00\x01", b"\x00\x00\x01"))
        assert (frame.width, frame.height) == (160, 120)
    types = nal_unit_types(frames[0].data)
    assert types.index(NAL_SPS) < types.index(NAL_PPS) < types.index(NAL_IDR)
    assert frames[0].keyframe
    assert not any(f.keyframe for f in frames[1:])  # the next IDR is due after 2 s
    assert [f.pts for f in frames] == [i * 90_000 // FPS for i in range(20)]

    decoded = _decode(frames)
    assert len(decoded) == 20
    assert {(f.width, f.height) for f in decoded} == {(160, 120)}
    # The moving square survives scaling and encoding: frames differ.
    first, last = decoded[0].to_ndarray()[:120], decoded[-1].to_ndarray()[:120]
    assert np.abs(first.astype(int) - last.astype(int)).max() > 100
    assert source.latest_preview is not None


async def test_keyframe_request_makes_an_idr(video_file: Path, opened: list[PyAVSource]) -> None:
    source = PyAVSource(url=str(video_file), width=160, height=120, fps=FPS, pace=False)
    opened.append(source)
    await source.start()
    await source.read()
    await source.read()
    source.request_keyframe()
    assert (await source.read()).keyframe


async def test_raw_yuv420p_file(tmp_path: Path, opened: list[PyAVSource]) -> None:
    width, height = 160, 120
    path = tmp_path / "frames.yuv"
    with path.open("wb") as fh:
        for index in range(8):
            rgb = _picture(index, width, height)
            yuv = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            fh.write(yuv.to_ndarray().tobytes())
    source = PyAVSource(
        url=str(path),
        format="rawvideo",
        options={"video_size": f"{width}x{height}", "pixel_format": "yuv420p", "framerate": "30"},
        width=width,
        height=height,
        fps=FPS,
        pace=False,
    )
    opened.append(source)
    await source.start()
    frames = [await source.read() for _ in range(8)]
    assert frames[0].keyframe
    decoded = _decode(frames)
    assert len(decoded) == 8
    # The picture made it through: the yellow square is bright in luma.
    luma = decoded[3].to_ndarray()[:height]
    assert luma[height // 3 + 16, 3 * 8 + 16] > 150


async def test_missing_v4l2_device_names_the_device(opened: list[PyAVSource]) -> None:
    source = PyAVSource.v4l2("/dev/video99", input_format="mjpeg", width=320, height=240)
    opened.append(source)
    assert source.options == {"video_size": "320x240", "framerate": "30", "input_format": "mjpeg"}
    with pytest.raises(SourceError, match=r"^camera /dev/video99 does not exist$"):
        await source.start()


async def test_missing_file_and_no_video_stream(tmp_path: Path, opened: list[PyAVSource]) -> None:
    missing = PyAVSource(url=str(tmp_path / "nothing.mkv"))
    opened.append(missing)
    with pytest.raises(SourceError, match=rf"^{re.escape(missing.url)} does not exist$"):
        await missing.start()

    audio_only = tmp_path / "tone.wav"
    with av.open(str(audio_only), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        samples = av.AudioFrame.from_ndarray(
            np.zeros((1, 800), dtype=np.int16), format="s16", layout="mono"
        )
        samples.sample_rate = 8000
        container.mux(stream.encode(samples))
        container.mux(stream.encode(None))
    no_video = PyAVSource(url=str(audio_only))
    opened.append(no_video)
    with pytest.raises(SourceError, match=rf"^{re.escape(str(audio_only))} has no video stream$"):
        await no_video.start()


async def test_end_of_input_without_loop_raises(short_file: Path, opened: list[PyAVSource]) -> None:
    source = PyAVSource(url=str(short_file), width=160, height=120, fps=FPS, pace=False)
    opened.append(source)
    await source.start()
    for _ in range(10):
        await source.read()
    with pytest.raises(SourceError) as raised:
        await source.read()
    assert "input ended" in _messages(raised.value)


async def test_end_of_input_with_loop_keeps_going(
    short_file: Path, opened: list[PyAVSource]
) -> None:
    source = PyAVSource(url=str(short_file), width=160, height=120, fps=FPS, pace=False, loop=True)
    opened.append(source)
    await source.start()
    frames = [await source.read() for _ in range(25)]
    assert source.restarts == 2
    assert len(_decode(frames)) == 25  # one continuous stream: the encoder never restarted
    assert [f.pts for f in frames] == sorted({f.pts for f in frames})


async def test_files_are_paced_at_fps_by_default(
    video_file: Path, opened: list[PyAVSource]
) -> None:
    source = PyAVSource(url=str(video_file), width=160, height=120, fps=50)
    opened.append(source)
    await source.start()
    start = time.monotonic()
    for _ in range(11):
        await source.read()
    # Ten frame periods at 50 fps are 0.2 s; unpaced, this takes a few milliseconds.
    assert time.monotonic() - start > 0.15


async def test_stop_is_safe_twice_and_read_after_stop_raises(
    video_file: Path,
) -> None:
    source = PyAVSource(url=str(video_file), width=160, height=120, pace=False)
    await source.start()
    await source.read()
    await source.stop()
    await source.stop()
    with pytest.raises(SourceError, match="not started"):
        await source.read()
