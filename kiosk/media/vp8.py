"""VP8 encoding for WebRTC: libvpx through PyAV in real-time mode, one frame per packet.

For peers that cannot take H.264 (Debian's Firefox ESR has no H.264 decoder without the
OpenH264 plug-in). The stream is what aiortc only needs to packetize: no frame held back
(``lag-in-frames`` 0), error resilient (a lost frame does not spoil the entropy contexts of
those after it), constant bit rate, a key frame at least every two seconds and on request, and
key frames kept to three times an average frame's size so that they do not burst.
"""

from __future__ import annotations

from av.video.codeccontext import VideoCodecContext

from kiosk.media.encoder import LibavEncoder

#: libvpx's speed in real-time mode (0 to 16, higher is faster and coarser). WebRTC's own VP8
#: uses 12 on ARM; at 640x480 here 16 saved a third of the CPU for 70 % more bits.
CPU_USED = 12


def is_vp8_keyframe(data: bytes) -> bool:
    """A VP8 frame is a key frame when bit 0 of its frame tag is 0 (RFC 6386, 9.1)."""
    return bool(data) and not data[0] & 0x01


class Vp8Encoder(LibavEncoder):
    """Encodes ``yuv420p`` frames of a fixed size into VP8 frames for WebRTC."""

    LIBAV_NAME = "libvpx"
    CODEC = "VP8"

    def _configure(self, context: VideoCodecContext, bitrate: int) -> None:
        context.qmin, context.qmax = 4, 56
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
