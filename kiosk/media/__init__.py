"""The booth's media: sources that produce encoded packets (H.264, and VP8 for peers without
it), fan-out to peers, test signals, and received video decoded as each frame is complete."""

from kiosk.media.audio import (
    AlsaMicrophoneTrack,
    AudioDeviceError,
    AudioError,
    AudioFileError,
    LevelMeter,
    WavFileTrack,
)
from kiosk.media.audio_playback import (
    AlsaOutput,
    AudioOutput,
    AudioSinkState,
    BoundedAudioSink,
    RecordedWrite,
    RecordingOutput,
)
from kiosk.media.choose import CameraChoice, CameraKind, open_video_source
from kiosk.media.fanout import FanoutTrack, VideoFanout
from kiosk.media.feeds import VideoFeeds
from kiosk.media.h264 import EncoderError, H264Encoder, nal_unit_types
from kiosk.media.picamera2_source import Picamera2Source
from kiosk.media.pyav_source import PyAVSource
from kiosk.media.receiver import MarkerJitterBuffer, receiver_of, release_on_marker
from kiosk.media.source import H264, VP8, EncodedFrame, EncoderSource, SourceError, VideoSource
from kiosk.media.stamp import Stamp, draw_stamp, read_stamp
from kiosk.media.testpattern import TestPattern, TestPatternSource
from kiosk.media.tracks import ToneTrack
from kiosk.media.vp8 import Vp8Encoder, is_vp8_keyframe
from kiosk.media.vp8_source import Vp8Source

__all__ = [
    "H264",
    "VP8",
    "AlsaMicrophoneTrack",
    "AlsaOutput",
    "AudioDeviceError",
    "AudioError",
    "AudioFileError",
    "AudioOutput",
    "AudioSinkState",
    "BoundedAudioSink",
    "CameraChoice",
    "CameraKind",
    "EncodedFrame",
    "EncoderError",
    "EncoderSource",
    "FanoutTrack",
    "H264Encoder",
    "LevelMeter",
    "MarkerJitterBuffer",
    "Picamera2Source",
    "PyAVSource",
    "RecordedWrite",
    "RecordingOutput",
    "SourceError",
    "Stamp",
    "TestPattern",
    "TestPatternSource",
    "ToneTrack",
    "VideoFanout",
    "VideoFeeds",
    "VideoSource",
    "Vp8Encoder",
    "Vp8Source",
    "WavFileTrack",
    "draw_stamp",
    "is_vp8_keyframe",
    "nal_unit_types",
    "open_video_source",
    "read_stamp",
    "receiver_of",
    "release_on_marker",
]
