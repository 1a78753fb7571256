"""The booth's microphone and loudspeaker as configured."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from kiosk.audio import loudspeaker_factory, open_microphone
from kiosk.config import AudioConfig, BoothConfigError, config_from_mapping
from kiosk.media import AlsaMicrophoneTrack, BoundedAudioSink, ToneTrack, WavFileTrack
from kiosk.media.audio import AudioError

BASE = {"server_url": "http://127.0.0.1:8080", "credential": "a.b"}


def _ignore(error: AudioError) -> None:
    pass


def test_default_is_a_tone_and_no_loudspeaker() -> None:
    config = AudioConfig()
    track = open_microphone(config, _ignore)
    assert isinstance(track, ToneTrack)
    track.stop()
    assert loudspeaker_factory(config, _ignore) is None


def test_wav_file_and_alsa_devices(tmp_path: Path) -> None:
    path = tmp_path / "voice.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48_000)
        out.writeframes(np.zeros(4800, dtype=np.int16).tobytes())
    track = open_microphone(AudioConfig(capture=f"wav:{path}"), _ignore)
    assert isinstance(track, WavFileTrack)
    track.stop()
    mic = open_microphone(AudioConfig(capture="echo-cancel-source"), _ignore)
    assert isinstance(mic, AlsaMicrophoneTrack)
    mic.stop()
    make = loudspeaker_factory(AudioConfig(playback="default", volume=0.5), _ignore)
    assert make is not None
    sink = make()
    assert isinstance(sink, BoundedAudioSink)
    assert sink.volume == 0.5


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        ({"volume": 2}, "audio.volume"),
        ({"max_latency_ms": 5}, "audio.max_latency_ms"),
        ({"capture": ""}, "audio.capture"),
        ({"speaker": "x"}, r"unknown setting\(s\) in \[audio\]: speaker"),
    ],
)
def test_bad_audio_settings_are_named(audio: dict[str, object], message: str) -> None:
    with pytest.raises(BoothConfigError, match=message):
        config_from_mapping({**BASE, "audio": audio})
