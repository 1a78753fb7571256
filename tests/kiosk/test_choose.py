"""The camera choice: preference order, fallbacks with their reasons, the test pattern's gate."""

from __future__ import annotations

import logging
import sys

import pytest

from kiosk.media import SourceError, TestPatternSource
from kiosk.media.choose import CameraChoice, CameraKind, open_video_source
from kiosk.media.fake_picamera2 import FakePicamera2
from kiosk.media.picamera2_source import Picamera2Source

SIZE = {"width": 320, "height": 240, "fps": 30, "bitrate": 300_000}
MISSING_DEVICE = "/dev/video99"
PICAMERA2_REASON = "Pi camera 0 cannot start: Failed to start camera: Device or resource busy"
V4L2_REASON = f"camera {MISSING_DEVICE} does not exist"


def _failing_fake() -> FakePicamera2:
    fake = FakePicamera2()
    fake.fail_next_start = True
    return fake


async def test_auto_picks_the_pi_camera(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="kiosk.media.choose")
    fake = FakePicamera2()
    source = await open_video_source(
        CameraChoice(), **SIZE, allow_test_pattern=True, picamera2_module=fake
    )
    try:
        assert isinstance(source, Picamera2Source)
        assert (await source.read()).keyframe  # started by the choice
    finally:
        await source.stop()
    assert [r.getMessage() for r in caplog.records] == ["camera: using picamera2 at 320x240@30"]


async def test_auto_falls_back_to_the_test_pattern_when_allowed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="kiosk.media.choose")
    source = await open_video_source(
        CameraChoice(device=MISSING_DEVICE),
        **SIZE,
        allow_test_pattern=True,
        picamera2_module=_failing_fake(),
    )
    try:
        assert isinstance(source, TestPatternSource)
        assert (await source.read()).keyframe
    finally:
        await source.stop()
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            logging.WARNING,
            f"camera: picamera2 unavailable ({PICAMERA2_REASON}); trying V4L2 {MISSING_DEVICE}",
        ),
        (
            logging.WARNING,
            f"camera: V4L2 {MISSING_DEVICE} unavailable ({V4L2_REASON}); trying the test pattern",
        ),
        (logging.INFO, "camera: using the test pattern at 320x240@30"),
    ]


async def test_auto_without_the_test_pattern_names_every_reason() -> None:
    fake = _failing_fake()
    with pytest.raises(SourceError) as raised:
        await open_video_source(
            CameraChoice(device=MISSING_DEVICE),
            **SIZE,
            allow_test_pattern=False,
            picamera2_module=fake,
        )
    assert str(raised.value) == (
        f"no camera can be used: picamera2: {PICAMERA2_REASON}; "
        f"V4L2 {MISSING_DEVICE}: {V4L2_REASON}; the test pattern is not allowed here"
    )
    assert not fake.cameras[0].is_open  # the camera that failed was released


async def test_auto_without_picamera2_installed_says_so(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # not importable
    source = await open_video_source(
        CameraChoice(device=MISSING_DEVICE), **SIZE, allow_test_pattern=True
    )
    await source.stop()
    assert "picamera2 is not installed (it needs a Raspberry Pi" in caplog.text


async def test_explicit_v4l2_with_a_missing_device_raises() -> None:
    fake = FakePicamera2()
    with pytest.raises(SourceError) as raised:
        await open_video_source(
            CameraChoice(kind=CameraKind.V4L2, device=MISSING_DEVICE),
            **SIZE,
            allow_test_pattern=True,
            picamera2_module=fake,
        )
    assert str(raised.value) == f"no camera can be used: V4L2 {MISSING_DEVICE}: {V4L2_REASON}"
    assert fake.cameras == []  # nothing else was tried


async def test_explicit_picamera2_does_not_fall_back() -> None:
    with pytest.raises(SourceError, match="No camera number 0 found"):
        await open_video_source(
            CameraChoice(kind=CameraKind.PICAMERA2),
            **SIZE,
            allow_test_pattern=True,
            picamera2_module=FakePicamera2(cameras=0),
        )


async def test_explicit_test_pattern_is_what_was_asked_for() -> None:
    source = await open_video_source(
        CameraChoice(kind=CameraKind("test-pattern")), **SIZE, allow_test_pattern=False
    )
    try:
        assert isinstance(source, TestPatternSource)
    finally:
        await source.stop()


def test_camera_kind_is_checked() -> None:
    assert CameraChoice(kind="v4l2").kind is CameraKind.V4L2  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^camera kind 'usb': expected one of auto, "):
        CameraChoice(kind="usb")  # type: ignore[arg-type]
