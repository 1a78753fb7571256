"""What the booth's software encoders share: libav through PyAV, one frame of a fixed size in
and the encoded frame out at once (no lag), a bit rate that may be changed from another thread
and reopens the encoder at the next frame, which is then a key frame. The codecs
(:mod:`kiosk.media.h264`, :mod:`kiosk.media.vp8`) say only how their encoder is set up.
"""

from __future__ import annotations

import fractions
import logging
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import av
from av.video.codeccontext import VideoCodecContext
from av.video.frame import PictureType

from kiosk.errors import BoothError

log = logging.getLogger(__name__)


class EncoderError(BoothError, RuntimeError):
    """A video encoder cannot be opened or fails; the message says why."""


class LibavEncoder(ABC):
    """Encodes ``yuv420p`` frames of a fixed size, one encoded frame per frame.

    Not thread-safe: call :meth:`encode` from one thread. The :attr:`bitrate` may be set from
    another thread; it takes effect at the next frame.
    """

    #: libav's name of the encoder, and the codec's name in messages.
    LIBAV_NAME: ClassVar[str]
    CODEC: ClassVar[str]

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

        Setting it reopens the encoder at the next frame, which starts with a key frame: change
        it in steps (say 10 % or more), not on every feedback report.
        """
        return self._bitrate

    @bitrate.setter
    def bitrate(self, value: int) -> None:
        self._bitrate = self._check_bitrate(value)

    @abstractmethod
    def _configure(self, context: VideoCodecContext, bitrate: int) -> None:
        """Set the codec's own options on ``context`` (size, rate and time base are set)."""

    def _open(self) -> VideoCodecContext:
        bitrate = self._bitrate
        try:
            context = av.CodecContext.create(self.LIBAV_NAME, "w")
        except (av.FFmpegError, ValueError) as exc:
            raise EncoderError(
                f"{self.LIBAV_NAME} is not available in this PyAV build: {exc}"
            ) from exc
        assert isinstance(context, VideoCodecContext)
        context.width, context.height = self.width, self.height
        context.pix_fmt = "yuv420p"
        context.framerate = fractions.Fraction(self.fps, 1)
        context.time_base = self._time_base
        context.bit_rate = bitrate
        context.gop_size = 2 * self.fps
        # One thread: sliced threads buy latency only at sizes a booth does not send, and cost
        # about a tenth more CPU in synchronisation (measured with make bench, 640x480); VP8's
        # threads would also need token partitions, which cost bits.
        context.thread_count = 1
        self._configure(context, bitrate)
        try:
            context.open()
        except (av.FFmpegError, ValueError) as exc:
            raise EncoderError(
                f"cannot open {self.LIBAV_NAME} for {self.width}x{self.height} at {self.fps} fps, "
                f"{bitrate} bit/s: {exc}"
            ) from exc
        log.info(
            "%s encoder opened: %dx%d, %d fps, %d bit/s",
            self.CODEC,
            self.width,
            self.height,
            self.fps,
            bitrate,
        )
        self._context_bitrate = bitrate
        return context

    def encode(
        self, frame: av.VideoFrame, *, keyframe: bool = False, pts: int | None = None
    ) -> list[av.Packet[Any]]:
        """Encode one frame; with ``keyframe`` the result is a key frame.

        ``pts`` counts frame intervals (1/fps) since the first frame; without it frames are
        taken as one interval apart (a picture skipped leaves a gap, which the rate control
        accounts for). Returns the frames ready so far: one per frame (no lag).
        """
        if frame.width != self.width or frame.height != self.height:
            raise ValueError(
                f"frame is {frame.width}x{frame.height}, the encoder {self.width}x{self.height}"
            )
        if self._context is None or self._context_bitrate != self._bitrate:
            # Reopening takes a few milliseconds; the new encoder starts with a key frame.
            self._context = self._open()
            keyframe = True
        # pict_type is also what a decoded frame carries: reset it, or an I frame handed back in
        # would force key frames forever.
        frame.pict_type = PictureType.I if keyframe else PictureType.NONE
        frame.pts = self.frames_encoded if pts is None else pts
        frame.time_base = self._time_base
        try:
            packets: list[av.Packet[Any]] = self._context.encode(frame)
        except av.FFmpegError as exc:
            raise EncoderError(
                f"{self.LIBAV_NAME} failed on frame {self.frames_encoded}: {exc}"
            ) from exc
        self.frames_encoded += 1
        return packets
