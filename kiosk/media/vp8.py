"""VP8 encoding for WebRTC: libvpx through PyAV in real-time mode, one frame per packet.

For peers that cannot take H.264 (Debian's Firefox ESR has no H.264 decoder without the
OpenH264 plug-in). The stream is what aiortc only needs to packetize: no frame held back
(``lag-in-frames`` 0), error resilient (a lost frame does not spoil the entropy contexts of
those after it), constant bit rate, a key frame at least every two seconds and on request, and
key frames kept to three times an average frame's size so that they do not burst.
"""

from __future__ import annotations

import fractions
import logging
from typing import Any

import av
from av.video.codeccontext import VideoCodecContext
from av.video.frame import PictureType

from kiosk.media.h264 import EncoderError

log = logging.getLogger(__name__)

#: libvpx's speed in real-time mode (0 to 16, higher is faster and coarser). WebRTC's own VP8
#: uses 12 on ARM; at 640x480 here 16 saved a third of the CPU for 70 % more bits.
CPU_USED = 12


def is_vp8_keyframe(data: bytes) -> bool:
    """A VP8 frame is a key frame when bit 0 of its frame tag is 0 (RFC 6386, 9.1)."""
    return bool(data) and not data[0] & 0x01


class Vp8Encoder:
    """Encodes ``yuv420p`` frames of a fixed size into VP8 frames for WebRTC.

    Not thread-safe: call :meth:`encode` from one thread. The :attr:`bitrate` may be set from
    another thread; it takes effect at the next frame, which is then a key frame (libvpx is
    opened again, as :class:`kiosk.media.h264.H264Encoder` does with x264).
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
        """Target bitrate in bit/s; a change opens libvpx again at the next frame."""
        return self._bitrate

    @bitrate.setter
    def bitrate(self, value: int) -> None:
        self._bitrate = self._check_bitrate(value)

    def _open(self) -> VideoCodecContext:
        bitrate = self._bitrate
        try:
            context = av.CodecContext.create("libvpx", "w")
        except (av.FFmpegError, ValueError) as exc:
            raise EncoderError(f"libvpx is not available in this PyAV build: {exc}") from exc
        assert isinstance(context, VideoCodecContext)
        context.width, context.height = self.width, self.height
        context.pix_fmt = "yuv420p"
        context.framerate = fractions.Fraction(self.fps, 1)
        context.time_base = self._time_base
        context.bit_rate = bitrate
        context.gop_size = 2 * self.fps
        context.qmin, context.qmax = 4, 56
        # One thread, as for x264: it runs beside the camera's encoder, and VP8 threads need
        # token partitions, which cost bits.
        context.thread_count = 1
        context.options = {
            "deadline": "realtime",
            "cpu-used": str(CPU_USED),
            "lag-in-frames": "0",
            "auto-alt-ref": "0",
            "error-resilient": "default",
            # minrate = maxrate = bit rate: libvpx's CBR, with half a second of buffer.
            "minrate": str(bitrate),
            "maxrate": str(bitrate),
            "bufsize": str(bitrate // 2),
            "undershoot-pct": "100",
            "overshoot-pct": "15",
            "max-intra-rate": "300",
            "static-thresh": "1",
            "noise-sensitivity": "0",
        }
        try:
            context.open()
        except (av.FFmpegError, ValueError) as exc:
            raise EncoderError(
                f"cannot open libvpx for {self.width}x{self.height} at {self.fps} fps, "
                f"{bitrate} bit/s: {exc}"
            ) from exc
        log.info(
            "VP8 encoder opened: %dx%d, %d fps, %d bit/s",
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
        taken as one interval apart. A picture skipped leaves a gap, which libvpx's rate
        control accounts for. Returns the frames ready so far: one per frame (no lag).
        """
        if frame.width != self.width or frame.height != self.height:
            raise ValueError(
                f"frame is {frame.width}x{frame.height}, the encoder {self.width}x{self.height}"
            )
        if self._context is None or self._context_bitrate != self._bitrate:
            self._context = self._open()
            keyframe = True
        frame.pict_type = PictureType.I if keyframe else PictureType.NONE
        frame.pts = self.frames_encoded if pts is None else pts
        frame.time_base = self._time_base
        try:
            packets: list[av.Packet[Any]] = self._context.encode(frame)
        except av.FFmpegError as exc:
            raise EncoderError(f"libvpx failed on frame {self.frames_encoded}: {exc}") from exc
        self.frames_encoded += 1
        return packets
