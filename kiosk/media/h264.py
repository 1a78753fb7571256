"""H.264 encoding for WebRTC: libx264 through PyAV, one Annex B access unit per frame.

The stream is what every browser can decode and what aiortc only needs to packetize:
constrained baseline (no B-frames, so no reordering delay), SPS and PPS repeated before every
IDR (a receiver that joins late or lost packets can start from any IDR), an IDR at least every
two seconds, and no scene-cut IDRs so that their size stays predictable.
"""

from __future__ import annotations

from av.video.codeccontext import VideoCodecContext

from kiosk.media.encoder import EncoderError, LibavEncoder

__all__ = [
    "NAL_IDR",
    "NAL_PPS",
    "NAL_SEI",
    "NAL_SPS",
    "EncoderError",
    "H264Encoder",
    "nal_unit_types",
]

#: NAL unit types (ITU-T H.264 table 7-1) that tests and diagnostics look for.
NAL_IDR, NAL_SEI, NAL_SPS, NAL_PPS = 5, 6, 7, 8

_START_CODE = b"\x00\x00\x01"


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


class H264Encoder(LibavEncoder):
    """Encodes ``yuv420p`` frames of a fixed size into H.264 access units for WebRTC (an IDR,
    with SPS and PPS, for a key frame)."""

    LIBAV_NAME = "libx264"
    CODEC = "H.264"

    def _configure(self, context: VideoCodecContext, bitrate: int) -> None:
        kbps = max(1, bitrate // 1000)
        keyint = context.gop_size
        context.max_b_frames = 0
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
