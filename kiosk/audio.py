"""The booth's microphone and loudspeaker, chosen by configuration."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from aiortc.mediastreams import MediaStreamTrack

from kiosk.config import AudioConfig
from kiosk.media.audio import AlsaMicrophoneTrack, AudioError, WavFileTrack
from kiosk.media.audio_playback import AlsaOutput, BoundedAudioSink
from kiosk.media.tracks import ToneTrack

log = logging.getLogger(__name__)


def open_microphone(
    config: AudioConfig, on_error: Callable[[AudioError], None]
) -> MediaStreamTrack:
    """A new capture track for one call (a stopped track cannot start again)."""
    if config.capture == "tone":
        return ToneTrack()
    if config.capture.startswith("wav:"):
        return WavFileTrack(Path(config.capture.removeprefix("wav:")), loop=True, on_error=on_error)
    return AlsaMicrophoneTrack(config.capture, on_error=on_error)


def loudspeaker_factory(
    config: AudioConfig, on_error: Callable[[AudioError], None]
) -> Callable[[], BoundedAudioSink] | None:
    """Makes the sink for a call's received audio; None plays nothing (headless, tests)."""
    if config.playback == "none":
        return None

    def make() -> BoundedAudioSink:
        return BoundedAudioSink(
            output=AlsaOutput(config.playback),
            volume=config.volume,
            max_latency=config.max_latency_ms / 1000,
            on_error=on_error,
        )

    return make
