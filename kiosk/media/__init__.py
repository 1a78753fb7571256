"""The booth's media sources: the stamped test pattern as H.264 packets, and a test tone."""

from kiosk.media.h264 import EncoderError, H264Encoder, nal_unit_types
from kiosk.media.stamp import Stamp, draw_stamp, read_stamp
from kiosk.media.testpattern import TestPattern
from kiosk.media.tracks import TestPatternTrack, ToneTrack

__all__ = [
    "EncoderError",
    "H264Encoder",
    "Stamp",
    "TestPattern",
    "TestPatternTrack",
    "ToneTrack",
    "draw_stamp",
    "nal_unit_types",
    "read_stamp",
]
