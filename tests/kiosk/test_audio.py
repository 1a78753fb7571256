"""Audio capture: file and microphone tracks framed for Opus, the level meter, device errors."""

from __future__ import annotations

import asyncio
import fractions
import math
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from kiosk.media.audio import (
    SILENCE_DBFS,
    AlsaMicrophoneTrack,
    AudioDeviceError,
    AudioError,
    AudioFileError,
    LevelMeter,
    WavFileTrack,
)

RATE = 48_000
FRAME = 960
_open = av.open  # the real one, for fakes that stand in for an ALSA device


def _write_wav(
    path: Path, seconds: float, *, rate: int = 44_100, channels: int = 2, **tone: float
) -> Path:
    """A sine of ``frequency`` Hz at ``rms_dbfs`` (0 Hz with no level: silence), s16."""
    n = round(seconds * rate)
    frequency, rms_dbfs = tone.get("frequency", 1000.0), tone.get("rms_dbfs")
    if rms_dbfs is None:
        signal = np.zeros(n)
    else:
        amplitude = 32768 * 10 ** (rms_dbfs / 20) * math.sqrt(2)
        signal = amplitude * np.sin(2 * math.pi * frequency * np.arange(n) / rate)
    samples = np.repeat(np.round(signal).astype(np.int16)[:, None], channels, axis=1)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


async def _read_all(track: Any, limit: int = 1000) -> list[av.AudioFrame]:
    frames: list[av.AudioFrame] = []
    while len(frames) < limit:
        try:
            frames.append(await track.recv())
        except MediaStreamError:
            return frames
    raise AssertionError(f"the track did not end after {limit} frames")


def _dominant_frequency(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum)) * RATE / len(samples)


# -- the file track --------------------------------------------------------------------------


async def test_wav_track_resamples_44k1_stereo_to_48k_mono_20ms_frames(tmp_path: Path) -> None:
    path = _write_wav(tmp_path / "tone.wav", 0.3, rate=44_100, channels=2, rms_dbfs=-20)
    track = WavFileTrack(path)
    frames = await _read_all(track)

    # 0.3 s at 48 kHz is 14400 samples: 15 frames, the resampler may hold back a few samples
    # into a 16th, padded one.
    assert len(frames) in (15, 16)
    for frame in frames:
        assert frame.samples == FRAME
        assert frame.sample_rate == RATE
        assert frame.format.name == "s16"
        assert frame.layout.name == "mono"
        assert frame.time_base == fractions.Fraction(1, RATE)
    pts = [f.pts or 0 for f in frames]
    assert pts == sorted(set(pts))
    assert all(p % FRAME == 0 for p in pts)
    samples = np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float64)
    assert abs(_dominant_frequency(samples[:14_000]) - 1000) < 10  # resampled, not re-pitched
    assert track.readyState == "ended"
    assert track.error is None
    assert track.frames_sent == len(frames)


async def test_wav_track_is_paced_in_real_time(tmp_path: Path) -> None:
    track = WavFileTrack(_write_wav(tmp_path / "tone.wav", 1.0, rms_dbfs=-20))
    loop = asyncio.get_running_loop()
    await track.recv()
    start = loop.time()
    for _ in range(10):
        await track.recv()
    # Ten frames are 0.2 s; only a lower bound (a slow machine may take longer).
    assert loop.time() - start > 0.15
    track.stop()


async def test_wav_track_loops_without_gaps(tmp_path: Path) -> None:
    # 0.1 s at 48 kHz mono: exactly five frames a pass, so the seam shows in frame 5.
    path = _write_wav(tmp_path / "short.wav", 0.1, rate=RATE, channels=1, rms_dbfs=-20)
    track = WavFileTrack(path, loop=True)
    frames = [await track.recv() for _ in range(12)]
    assert all(f.samples == FRAME for f in frames)
    assert track.readyState == "live"
    samples = np.concatenate([f.to_ndarray().reshape(-1) for f in frames])
    # A 1 kHz tone has 100 whole periods in 0.1 s: the loop is seamless, and no padding (a run
    # of zeros) was inserted at the seams.
    assert np.array_equal(samples[: 5 * FRAME], samples[5 * FRAME : 10 * FRAME])
    track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()


async def test_wav_track_missing_or_not_audio_is_an_audio_file_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.wav"
    with pytest.raises(AudioFileError, match=r"missing\.wav") as info:
        WavFileTrack(missing)
    assert isinstance(info.value, OSError)
    assert isinstance(info.value, AudioError)

    text = tmp_path / "notes.txt"
    text.write_text("not audio at all\n" * 10)
    with pytest.raises(AudioFileError, match=r"notes\.txt"):
        WavFileTrack(text)


async def test_stop_ends_the_wav_track_and_is_safe_twice(tmp_path: Path) -> None:
    track = WavFileTrack(_write_wav(tmp_path / "tone.wav", 1.0, rms_dbfs=-20))
    await track.recv()
    track.stop()
    track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()


# -- the level meter --------------------------------------------------------------------------


async def test_level_meter_reads_a_known_sine_and_silence(tmp_path: Path) -> None:
    tone = WavFileTrack(_write_wav(tmp_path / "tone.wav", 0.2, rms_dbfs=-20))
    assert tone.level.rms_dbfs == SILENCE_DBFS  # nothing measured yet
    for _ in range(3):
        await tone.recv()
    assert tone.level.rms_dbfs == pytest.approx(-20, abs=1.0)
    assert tone.level.peak_dbfs == pytest.approx(-17, abs=1.0)  # a sine's peak is 3 dB above
    tone.stop()

    silence = WavFileTrack(_write_wav(tmp_path / "silence.wav", 0.2))
    await silence.recv()
    assert silence.level.rms_dbfs <= -90
    assert silence.level.peak_dbfs <= -90
    silence.stop()


def test_level_meter_peak_falls_back_with_the_audio_measured() -> None:
    meter = LevelMeter(peak_decay_db_per_second=20.0)
    loud = np.full(FRAME, 16384, dtype=np.int16)  # -6 dBFS
    quiet = np.full(FRAME, 33, dtype=np.int16)  # about -60 dBFS
    meter.update(loud, 0.02)
    assert meter.rms_dbfs == pytest.approx(-6.02, abs=0.01)
    assert meter.peak_dbfs == pytest.approx(-6.02, abs=0.01)
    for _ in range(50):  # one second
        meter.update(quiet, 0.02)
    assert meter.rms_dbfs == pytest.approx(-60, abs=0.1)
    assert meter.peak_dbfs == pytest.approx(-26.02, abs=0.01)
    meter.update(np.zeros(FRAME, dtype=np.int16), 0.02)
    assert meter.rms_dbfs == SILENCE_DBFS
    meter.update(np.array([-32768], dtype=np.int16), 0.0)  # no overflow at full scale
    assert meter.peak_dbfs == pytest.approx(0.0)


# -- the microphone --------------------------------------------------------------------------


async def test_missing_alsa_device_ends_the_microphone_track_with_a_clear_error() -> None:
    errors: list[AudioError] = []
    track = AlsaMicrophoneTrack("hw:99,0", on_error=errors.append)
    with pytest.raises(MediaStreamError):
        await track.recv()
    assert isinstance(track.error, AudioDeviceError)
    assert isinstance(track.error, OSError)
    assert "hw:99,0" in str(track.error)
    assert "cannot open the microphone" in str(track.error)
    assert errors == [track.error]
    assert track.readyState == "ended"
    await track.close()
    await track.close()


@pytest.fixture
def device_from_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Makes the microphone open a WAV file instead of an ALSA device (the same PyAV calls)."""
    path = tmp_path / "device.wav"

    def fake_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("format") == "alsa":
            return _open(str(path))
        return _open(file, *args, **kwargs)

    monkeypatch.setattr(av, "open", fake_open)
    return path


async def test_microphone_frames_a_device_and_drops_the_oldest_when_nobody_reads(
    device_from_file: Path,
) -> None:
    # A "device" delivering 1 s of 44.1 kHz stereo at once: far faster than anyone reads.
    _write_wav(device_from_file, 1.0, rate=44_100, channels=2, rms_dbfs=-20)
    errors: list[AudioError] = []
    ended = asyncio.Event()
    track = AlsaMicrophoneTrack("plughw:1,0", max_queued_frames=3, on_error=errors.append)
    track.on("ended", ended.set)
    track.start()
    await asyncio.wait_for(ended.wait(), 5)

    assert 49 <= track.frames_captured <= 50  # the resampler may keep the last few samples
    assert track.frames_dropped == track.frames_captured - 3  # only the newest three waited
    assert track.level.rms_dbfs == pytest.approx(-20, abs=1.0)
    # The end of the "device" is a device failure for a microphone.
    assert isinstance(track.error, AudioDeviceError)
    assert "plughw:1,0" in str(track.error)
    assert "stopped delivering audio" in str(track.error)
    assert errors == [track.error]
    await track.close()


async def test_microphone_cuts_48k_mono_s16_directly(device_from_file: Path) -> None:
    # What the track asks ALSA for: no decoder or resampler, exact 960-sample cuts.
    _write_wav(device_from_file, 1.0, rate=RATE, channels=1, rms_dbfs=-20)
    ended = asyncio.Event()
    track = AlsaMicrophoneTrack(max_queued_frames=50)
    track.on("ended", ended.set)
    track.start()
    await asyncio.wait_for(ended.wait(), 5)
    assert track.frames_captured == 50
    assert track.frames_dropped == 0
    assert track.level.rms_dbfs == pytest.approx(-20, abs=0.1)
    await track.close()


class _FakeDevice:
    """A capture device (PyAV container) of 48 kHz stereo s16, 20 ms every ``pace`` seconds.

    After ``frames`` frames (None: never) it fails like an unplugged USB microphone.
    """

    def __init__(self, *, pace: float, frames: int | None = None) -> None:
        self.closed = False
        self._pace = pace
        self._frames = frames
        self.streams = self

    @property
    def audio(self) -> list[Any]:
        return [_FakeStream()]

    def decode(self, stream: Any) -> Iterator[av.AudioFrame]:
        count = 0
        while self._frames is None or count < self._frames:
            time.sleep(self._pace)
            frame = av.AudioFrame.from_ndarray(
                np.full((1, 2 * FRAME), 1000, dtype=np.int16), format="s16", layout="stereo"
            )
            frame.sample_rate = RATE
            count += 1
            yield frame
        raise OSError(5, "Input/output error")

    def close(self) -> None:
        self.closed = True


class _FakeStream:
    class codec_context:  # noqa: N801 (PyAV's attribute)
        name = "pcm_s16le"
        sample_rate = RATE
        layout = av.AudioLayout("stereo")


async def test_microphone_frames_keep_their_capture_timeline_and_stop_cleanly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    device = _FakeDevice(pace=0.005)
    monkeypatch.setattr(av, "open", lambda *args, **kwargs: device)
    track = AlsaMicrophoneTrack("default")
    frames = [await track.recv() for _ in range(10)]
    for frame in frames:
        assert (frame.samples, frame.sample_rate, frame.layout.name) == (FRAME, RATE, "mono")
        assert frame.format.name == "s16"
        assert frame.time_base == fractions.Fraction(1, RATE)
    assert [f.pts for f in frames] == [i * FRAME for i in range(10)]
    assert track.frames_dropped == 0

    await track.close()
    assert device.closed
    assert track.error is None  # stopping is not a failure
    with pytest.raises(MediaStreamError):
        await track.recv()
    await track.close()


async def test_microphone_device_loss_ends_the_track_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    device = _FakeDevice(pace=0.001, frames=5)
    monkeypatch.setattr(av, "open", lambda *args, **kwargs: device)
    errors: list[AudioError] = []
    track = AlsaMicrophoneTrack("echo-cancel-source", max_queued_frames=10, on_error=errors.append)
    frames = await _read_all(track)

    assert len(frames) <= 5
    assert isinstance(track.error, AudioDeviceError)
    assert str(track.error) == "the microphone 'echo-cancel-source' failed: Input/output error"
    assert errors == [track.error]
    await track.close()
    assert device.closed
