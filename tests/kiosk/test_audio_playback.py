"""Audio playback: the bounded sink drops bursts, fills gaps with silence, scales, stops cleanly."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from kiosk.media.audio import AudioDeviceError, AudioError
from kiosk.media.audio_playback import (
    AlsaOutput,
    AudioSinkState,
    BoundedAudioSink,
    RecordingOutput,
)

RATE = 48_000
FRAME = 960  # 20 ms, as aiortc's Opus decoder delivers
VALUE = 8000  # constant samples: any 0 in a recording is silence the sink inserted


def _frame(value: int = VALUE, *, rate: int = RATE, samples: int = FRAME) -> av.AudioFrame:
    """One frame like aiortc's Opus decoder gives: s16 stereo."""
    frame = av.AudioFrame.from_ndarray(
        np.full((1, 2 * samples), value, dtype=np.int16), format="s16", layout="stereo"
    )
    frame.sample_rate = rate
    return frame


class ScriptedTrack(MediaStreamTrack):
    """A received audio track: each frame is released at its time (seconds after the first
    ``recv()``), then the track ends. Times may repeat (a burst)."""

    kind = "audio"

    def __init__(self, times: Sequence[float], frames: Sequence[av.AudioFrame] = ()) -> None:
        super().__init__()
        self._times = list(times)
        self._frames = list(frames) or [_frame() for _ in self._times]
        self._start: float | None = None
        self.sent = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live" or self.sent >= len(self._times):
            self.stop()
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        delay = self._start + self._times[self.sent] - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = self._frames[self.sent]
        self.sent += 1
        return frame


class SilentTrack(MediaStreamTrack):
    """A track that never delivers anything (a call whose audio has not started)."""

    kind = "audio"

    async def recv(self) -> av.AudioFrame:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def _realtime(count: int, start: float = 0.0) -> list[float]:
    return [start + i * FRAME / RATE for i in range(count)]


def _frames_of(ms: float) -> int:
    return round(ms * RATE / 1000)


def _audio(output: RecordingOutput) -> np.ndarray:
    """The left channel of everything played."""
    return output.samples()[:, 0]


async def test_a_burst_is_cut_to_max_latency_and_the_rest_dropped() -> None:
    # 500 ms arrive at once (a network burst), then 500 ms in real time.
    burst, steady = 25, 25
    track = ScriptedTrack([0.0] * burst + _realtime(steady, start=FRAME / RATE))
    output = RecordingOutput()
    sink = BoundedAudioSink(output=output, max_latency=0.060)
    await sink.run(track)

    assert sink.state is AudioSinkState.STOPPED
    assert sink.error is None
    assert output.opened and output.closed
    assert sink.frames_received == burst + steady
    assert sink.max_queued_ms <= 60.0 + 10.0  # the bound (+ one chunk, by the specification)
    assert sink.max_queued_ms >= 50.0  # the burst did fill it
    # Burst minus bound, minus the little played while it arrived; a busy machine may drop a
    # little more in the steady part.
    assert 400.0 <= sink.dropped_ms <= 480.0
    # Every sample received is accounted for: played, dropped, or still queued at the end.
    total = (burst + steady) * FRAME
    played = int(np.count_nonzero(_audio(output)))
    assert played == _frames_of(sink.played_ms)
    assert played + _frames_of(sink.dropped_ms) + _frames_of(sink.queued_ms) == total


async def test_a_gap_is_played_as_silence_and_counted_as_underrun() -> None:
    before, gap, after = 10, 0.200, 10
    track = ScriptedTrack(_realtime(before) + _realtime(after, start=before * FRAME / RATE + gap))
    output = RecordingOutput()
    sink = BoundedAudioSink(output=output)
    await sink.run(track)

    audio = _audio(output)
    sounding = np.flatnonzero(audio)
    first, last = sounding[0], sounding[-1]
    silence_inside = int(np.count_nonzero(audio[first:last] == 0))
    silence_after_start = int(np.count_nonzero(audio[first:] == 0))
    underrun = _frames_of(sink.underrun_ms)
    # The underrun count is exactly the silence played since the first audio (some of it after
    # the last audio, until the sink stopped).
    assert silence_inside <= underrun <= silence_after_start
    # The gap, less what was queued when it began, plus the prebuffer waited for after it.
    assert 0.120 * RATE <= silence_inside <= 0.400 * RATE
    assert sink.dropped_ms == 0.0
    assert np.all(audio[audio != 0] == VALUE)  # silence was inserted, audio left intact


async def test_volume_half_halves_the_amplitude_and_zero_is_silence() -> None:
    half = RecordingOutput()
    sink = BoundedAudioSink(output=half, volume=0.5)
    await sink.run(ScriptedTrack(_realtime(10)))
    audio = _audio(half)
    assert np.count_nonzero(audio) > 5 * FRAME
    assert set(np.unique(audio)) <= {0, VALUE // 2}

    mute = RecordingOutput()
    sink = BoundedAudioSink(output=mute, volume=0.0)
    await sink.run(ScriptedTrack(_realtime(10)))
    assert sink.played_ms >= 100.0  # the audio went through...
    assert not np.any(mute.samples())  # ...as silence


async def test_a_volume_change_is_ramped_not_stepped() -> None:
    output = RecordingOutput()
    sink = BoundedAudioSink(output=output, chunk=0.010)
    task = asyncio.ensure_future(sink.run(ScriptedTrack(_realtime(20))))
    await asyncio.sleep(0.15)
    sink.volume = 0.5
    await task
    audio = _audio(output)
    audio = audio[audio != 0]
    assert audio[0] == VALUE
    assert audio[-1] == VALUE // 2
    between = np.count_nonzero((audio > VALUE // 2) & (audio < VALUE))
    assert 0 < between <= 480  # one chunk of ramp
    assert np.all(np.diff(audio.astype(np.int32)) <= 0)  # monotonic: no overshoot


def test_volume_must_be_from_0_to_1() -> None:
    sink = BoundedAudioSink(output=RecordingOutput())
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match=r"volume must be from 0\.0 to 1\.0"):
            sink.volume = bad
    sink.volume = 0.3
    assert sink.volume == 0.3


async def test_mono_and_other_rates_are_converted_at_full_level() -> None:
    # 44.1 kHz mono frames of 20 ms into a 48 kHz stereo output.
    frames = [
        av.AudioFrame.from_ndarray(
            np.full((1, 882), VALUE, dtype=np.int16), format="s16", layout="mono"
        )
        for _ in range(15)
    ]
    for frame in frames:
        frame.sample_rate = 44_100
    output = RecordingOutput()
    sink = BoundedAudioSink(output=output, channels=2, max_latency=0.5)
    await sink.run(ScriptedTrack(_realtime(15), frames))

    assert output.channels == 2
    stereo = output.samples()
    assert np.array_equal(stereo[:, 0], stereo[:, 1])
    played = stereo[stereo[:, 0] != 0, 0]
    assert len(played) == _frames_of(sink.played_ms)
    # 0.3 s at 48 kHz (played, or still queued when the track ended), less what the resampler
    # keeps in its filter.
    assert abs(len(played) + _frames_of(sink.queued_ms) - 0.3 * RATE) < 0.01 * RATE
    # A constant stays constant through resampling and the mono-to-stereo copy (no -3 dB).
    assert np.median(played) == pytest.approx(VALUE, abs=2)


async def test_a_stalled_output_keeps_the_queue_bounded() -> None:
    output = RecordingOutput()
    sink = BoundedAudioSink(output=output)
    task = asyncio.ensure_future(sink.run(ScriptedTrack(_realtime(30))))
    await asyncio.sleep(0.1)
    output.stall()
    await asyncio.sleep(0.3)
    assert sink.queued_ms <= 60.0
    output.resume()
    await task
    assert sink.max_queued_ms <= 60.0
    assert sink.dropped_ms >= 150.0  # most of what arrived during the stall
    assert sink.error is None


async def test_a_track_that_ends_stops_the_sink_cleanly() -> None:
    output = RecordingOutput()
    sink = BoundedAudioSink(output=output)
    await asyncio.wait_for(sink.run(ScriptedTrack(_realtime(3))), 5)
    assert sink.state is AudioSinkState.STOPPED
    assert sink.error is None
    assert output.closed
    assert sink._writer is not None
    sink._writer.join(timeout=2)  # it said it is done; returning takes a moment under load
    assert not sink._writer.is_alive()
    await sink.close()
    await sink.close()


async def test_close_stops_a_sink_waiting_for_audio_and_is_safe_twice() -> None:
    output = RecordingOutput()
    sink = BoundedAudioSink(output=output)
    track = SilentTrack()
    task = asyncio.ensure_future(sink.run(track))
    await asyncio.sleep(0.05)
    assert sink.state is AudioSinkState.PLAYING
    await asyncio.wait_for(sink.close(), 5)
    await sink.close()
    assert task.done() and task.exception() is None
    assert sink.state is AudioSinkState.STOPPED
    assert output.closed
    assert sink.underrun_ms == 0.0  # no audio ever came: waiting is not an underrun
    assert track.readyState == "live"  # the track is the caller's to stop


async def test_cancelling_run_stops_the_writer_and_closes_the_output() -> None:
    # How a call's consumer tasks are ended today: cancelled, then awaited.
    output = RecordingOutput()
    sink = BoundedAudioSink(output=output)
    task = asyncio.ensure_future(sink.run(ScriptedTrack(_realtime(50))))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert output.closed
    assert sink._writer is not None
    sink._writer.join(timeout=2)  # it said it is done; returning takes a moment under load
    assert not sink._writer.is_alive()
    assert sink.state is AudioSinkState.STOPPED
    assert sink.error is None


async def test_a_sink_plays_one_track_once() -> None:
    sink = BoundedAudioSink(output=RecordingOutput())
    await sink.run(ScriptedTrack([]))
    with pytest.raises(RuntimeError, match="plays one track"):
        await sink.run(ScriptedTrack([]))

    closed = BoundedAudioSink(output=RecordingOutput())
    await closed.close()
    await closed.run(ScriptedTrack(_realtime(3)))  # closed first: returns at once
    assert closed.frames_received == 0


async def test_an_output_that_fails_is_reported_and_the_track_still_drained() -> None:
    output = RecordingOutput()
    errors: list[AudioError] = []
    sink = BoundedAudioSink(output=output, on_error=errors.append)
    track = ScriptedTrack(_realtime(15))
    task = asyncio.ensure_future(sink.run(track))
    await asyncio.sleep(0.1)
    output.fail(RuntimeError("unplugged"))
    await asyncio.wait_for(task, 5)  # no exception escapes

    assert isinstance(sink.error, AudioDeviceError)
    assert "unplugged" in str(sink.error)
    assert isinstance(sink.error.__cause__, RuntimeError)
    assert errors == [sink.error]
    assert output.closed
    assert sink.frames_received == 15  # read to the end, so that nothing piles up
    assert sink.state is AudioSinkState.STOPPED


async def test_an_output_error_that_is_an_audio_error_is_reported_as_is() -> None:
    output = RecordingOutput()
    output.fail(AudioDeviceError("the loudspeaker 'hw:1,0' failed: No such device"))
    sink = BoundedAudioSink(output=output)
    await sink.run(ScriptedTrack(_realtime(3)))
    assert str(sink.error) == "the loudspeaker 'hw:1,0' failed: No such device"


def test_a_missing_alsa_device_is_a_clear_error() -> None:
    output = AlsaOutput("hw:99,0")
    with pytest.raises(AudioDeviceError, match="cannot open the loudspeaker 'hw:99,0'") as info:
        output.open(48_000, 2)
    assert isinstance(info.value, OSError)
    output.close()
    output.close()
    with pytest.raises(AudioDeviceError, match="not open"):
        output.write(b"\0" * 1920)


async def test_a_sink_on_a_missing_alsa_device_reports_it_and_drains_the_track() -> None:
    errors: list[AudioError] = []
    sink = BoundedAudioSink(output=AlsaOutput("hw:99,0"), on_error=errors.append)
    await asyncio.wait_for(sink.run(ScriptedTrack(_realtime(5))), 5)
    assert isinstance(sink.error, AudioDeviceError)
    assert "hw:99,0" in str(sink.error)
    assert errors == [sink.error]
    assert sink.frames_received == 5
    assert sink.state is AudioSinkState.STOPPED
