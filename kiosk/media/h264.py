"""H.264 encoding for WebRTC: libx264 through PyAV, one Annex B access unit per frame.

The stream is what every browser can decode and what aiortc only needs to packetize:
constrained baseline (no B-frames, so no reordering delay), SPS and PPS repeated before every
IDR (a receiver that joins late or lost packets can start from any IDR), an IDR at least every
two seconds, and no scene-cut IDRs so that their size stays predictable.
"""

from __future__ import annotations

import fractions
import logging
from typing import Any

import av
from av.video.codeccontext import VideoCodecContext
from av.video.frame import PictureType

from kiosk.errors import BoothError

log = logging.getLogger(__name__)

#: NAL unit types (ITU-T H.264 table 7-1) that tests and diagnostics look for.
NAL_IDR, NAL_SEI, NAL_SPS, NAL_PPS = 5, 6, 7, 8

_START_CODE = b"\x00\x00\x01"


class EncoderError(BoothError, RuntimeError):
    """The H.264 encoder cannot be opened or fails; the message says why."""


def nal_unit_types(data: bytes) -> list[int]:
    """The ``nal_unit_type`` of each NAL unit in an Annex B byte stream, in order."""
    types = []
    start = data.find(_START_CODE)
    while start != -1 and start + 3 < len(data):
        types.append(data[start + 3] & 0x1F)
        # Emulation prevention guarantees no start code inside a NAL unit; a 4-byte start code
        # is a 3-byte one preceded by a zero that belongs to the previous unit.
        start = data.find(_START_CODE, start + 3)
    return types


class H264Encoder:
    """Encodes ``yuv420p`` frames of a fixed size into H.264 access units for WebRTC.

    Not thread-safe: call :meth:`encode` from one thread. The :attr:`bitrate` may be set from
    another thread; it takes effect at the next frame.
    """

    def __init__(self, width: int, height: int, fps: int, bitrate: int) -> None:
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise ValueError(f"the frame size must be positive and even, got {width}x{height}")
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.width, self.height, self.fps = width, height, fps
        self._bitrate = self._check_bitrate(bitrate)
        self._context: VideoCodecContext | None = None
        self._context_bitrate = 0
        self._time_base = fractions.Fraction(1, fps)
        #: Frames given to :meth:`encode` so far.
        self.frames_encoded = 0

    @staticmethod
    def _check_bitrate(bitrate: int) -> int:
        if bitrate < 10_000:
            raise ValueError(f"bitrate is in bit/s and must be at least 10000, got {bitrate}")
        return int(bitrate)

    @property
    def bitrate(self) -> int:
        """Target bitrate in bit/s.

        Setting it reopens the encoder at the next frame, which starts with an IDR: change it in
        steps (say 10 % or more), not on every feedback report.
        """
        return self._bitrate

    @bitrate.setter
    def bitrate(self, value: int) -> None:
        self._bitrate = self._check_bitrate(value)

    def _open(self) -> VideoCodecContext:
        bitrate = self._bitrate
        kbps = max(1, bitrate // 1000)
        keyint = 2 * self.fps
        try:
            context = av.CodecContext.create("libx264", "w")
        except (av.FFmpegError, ValueError) as exc:
            raise EncoderError(f"libx264 is not available in this PyAV build: {exc}") from exc
        assert isinstance(context, VideoCodecContext)
        context.width, context.height = self.width, self.height
        context.pix_fmt = "yuv420p"
        context.framerate = fractions.Fraction(self.fps, 1)
        context.time_base = self._time_base
        context.bit_rate = bitrate
        context.gop_size = keyint
        context.max_b_frames = 0
        # One thread: sliced threads buy latency only at sizes a booth does not send, and cost
        # about a tenth more CPU in synchronisation (measured with make bench, 640x480).
        context.thread_count = 1
        context.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            # x264's baseline is constrained baseline; level 3.1 matches profile-level-id
            # 42e01f, which browsers offer by default.
            "profile": "baseline",
            "level": "3.1",
            # An I picture asked for with pict_type must be an IDR, not a recovery point.
            "forced-idr": "1",
            # A VBV of half a second keeps IDRs from bursting far above the target rate, which
            # on a congested link would mean loss exactly on the frame that repairs loss.
            "x264-params": ":".join(
                [
                    "repeat-headers=1",
                    "annexb=1",
                    "bframes=0",
                    f"keyint={keyint}",
                    f"min-keyint={keyint}",
                    "scenecut=0",
                    f"vbv-maxrate={kbps}",
                    f"vbv-bufsize={max(1, kbps // 2)}",
                ]
            ),
        }
        try:
            context.open()
        except (av.FFmpegError, ValueError) as exc:
            raise EncoderError(
                f"cannot open libx264 for {self.width}x{self.height} at {self.fps} fps, "
                f"{bitrate} bit/s: {exc}"
            ) from exc
        log.info(
            "H.264 encoder opened: %dx%d, %d fps, %d bit/s",
            self.width,
            self.height,
            self.fps,
            bitrate,
        )
        self._context_bitrate = bitrate
        return context

    def encode(self, frame: av.VideoFrame, *, keyframe: bool = False) -> list[av.Packet[Any]]:
        """Encode one frame; with ``keyframe`` the result is an IDR (with SPS and PPS).

        Returns the access units ready so far: one per frame, as the encoder has no delay.
        """
        if frame.width != self.width or frame.height != self.height:
            raise ValueError(
                f"frame is {frame.width}x{frame.height}, the encoder {self.width}x{self.height}"
            )
        if self._context is None or self._context_bitrate != self._bitrate:
            # Reopening is a few milliseconds with ultrafast; the new encoder starts with an IDR.
            self._context = self._open()
        # pict_type is also what a decoded frame carries: reset it, or an I frame handed back in
        # would force IDRs forever.
        frame.pict_type = PictureType.I if keyframe else PictureType.NONE
        frame.pts = self.frames_encoded
        frame.time_base = self._time_base
        try:
            packets: list[av.Packet[Any]] = self._context.encode(frame)
        except av.FFmpegError as exc:
            raise EncoderError(f"libx264 failed on frame {self.frames_encoded}: {exc}") from exc
        self.frames_encoded += 1
        return packets
