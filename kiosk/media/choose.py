"""Which camera the booth uses: the configured one, or the first that works, logged once.

``auto`` tries, in order, the Pi camera (picamera2), a V4L2 camera (a USB webcam), and the test
pattern, the last only where it is allowed (tests, the demo, the image's smoke boot): a booth in
service should fail loudly rather than show advisors colour bars. Each candidate is started, so
a camera that exists but cannot be opened (busy, unplugged, no permission) is caught here, and
the caller gets a running source. Every fallback is logged with its reason, the choice at INFO.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from kiosk.media.picamera2_source import Picamera2Source
from kiosk.media.pyav_source import PyAVSource
from kiosk.media.source import SourceError, VideoSource
from kiosk.media.testpattern import TestPatternSource

log = logging.getLogger(__name__)


class CameraKind(StrEnum):
    """The camera setting's values; ``auto`` takes the first that works."""

    AUTO = "auto"
    PICAMERA2 = "picamera2"
    V4L2 = "v4l2"
    TEST_PATTERN = "test-pattern"


@dataclass(frozen=True)
class CameraChoice:
    """The camera setting: which kind, and for V4L2 the device and what it should send."""

    kind: CameraKind = CameraKind.AUTO
    #: The V4L2 device tried by ``v4l2`` and ``auto``.
    device: str = "/dev/video0"
    #: What the V4L2 camera sends: ``"mjpeg"`` or ``"yuyv422"``; None: the camera's default.
    input_format: str | None = None

    def __post_init__(self) -> None:
        try:
            kind = CameraKind(self.kind)
        except ValueError:
            allowed = ", ".join(k.value for k in CameraKind)
            raise ValueError(f"camera kind {self.kind!r}: expected one of {allowed}") from None
        object.__setattr__(self, "kind", kind)


def _candidates(choice: CameraChoice, allow_test_pattern: bool) -> list[CameraKind]:
    if choice.kind is not CameraKind.AUTO:
        # A camera named in the configuration is that camera or an error, never a stand-in;
        # the test pattern named explicitly is what was asked for.
        return [choice.kind]
    kinds = [CameraKind.PICAMERA2, CameraKind.V4L2]
    if allow_test_pattern:
        kinds.append(CameraKind.TEST_PATTERN)
    return kinds


def _label(kind: CameraKind, choice: CameraChoice) -> str:
    if kind is CameraKind.V4L2:
        return f"V4L2 {choice.device}"
    if kind is CameraKind.TEST_PATTERN:
        return "the test pattern"
    return str(kind.value)


async def open_video_source(
    choice: CameraChoice,
    *,
    fps: int,
    width: int,
    height: int,
    bitrate: int,
    allow_test_pattern: bool,
    picamera2_module: Any = None,
) -> VideoSource:
    """Start and return the camera ``choice`` names, or with ``auto`` the first that works.

    Raises :class:`SourceError` naming every camera tried and why it could not be used.
    ``picamera2_module`` stands in for the ``picamera2`` package (tests pass the fake).
    """
    kinds = _candidates(choice, allow_test_pattern)
    reasons: list[str] = []
    for index, kind in enumerate(kinds):
        source: VideoSource
        if kind is CameraKind.PICAMERA2:
            source = Picamera2Source(
                width=width,
                height=height,
                fps=fps,
                bitrate=bitrate,
                picamera2_module=picamera2_module,
            )
        elif kind is CameraKind.V4L2:
            source = PyAVSource.v4l2(
                choice.device,
                input_format=choice.input_format,
                width=width,
                height=height,
                fps=fps,
                bitrate=bitrate,
            )
        else:
            source = TestPatternSource(width=width, height=height, fps=fps, bitrate=bitrate)
        label = _label(kind, choice)
        try:
            await source.start()
        except SourceError as exc:
            await source.stop()  # whatever the failed start left open
            reasons.append(f"{label}: {exc}")
            if index + 1 < len(kinds):
                following = _label(kinds[index + 1], choice)
                log.warning("camera: %s unavailable (%s); trying %s", label, exc, following)
            else:
                log.warning("camera: %s unavailable (%s)", label, exc)
            continue
        except BaseException:
            await source.stop()
            raise
        log.info("camera: using %s at %dx%d@%d", label, width, height, fps)
        return source
    if choice.kind is CameraKind.AUTO and not allow_test_pattern:
        reasons.append("the test pattern is not allowed here")
    raise SourceError("no camera can be used: " + "; ".join(reasons))
