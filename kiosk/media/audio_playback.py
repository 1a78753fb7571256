"""The booth's loudspeaker: received audio played with a bounded, low latency.

aiortc's ``MediaRecorder`` writes to ALSA from the event loop and lets ALSA's buffer grow to
seconds. Here a worker thread writes fixed chunks (10 ms) to an :class:`AudioOutput` that
blocks like a device playing in real time, so the audio waiting to be played sits in the
sink's queue, where it is bounded: when more than ``max_latency`` is queued the oldest audio is
dropped, and when nothing is queued silence is played. Both are counted for diagnostics.

The event loop (producer) and the writer thread (consumer) share that queue under a lock held
for microseconds. Asking the loop for every chunk instead would make playback stutter whenever
the loop is busy.

Its length: the sink's bounded queue, the writer thread and the outputs are one mechanism whose
timing only makes sense read together.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import av
import numpy as np
import numpy.typing as npt
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from kiosk.media.audio import (
    RELEASE_TIMEOUT,
    AlsaConfigError,
    AudioDeviceError,
    AudioError,
    ErrorCallback,
    alsa_configuration_problem,
    error_reason,
)

log = logging.getLogger(__name__)

_Samples = npt.NDArray[np.int16]  # shape (frames, channels), interleaved s16


class AudioOutput(Protocol):
    """Where a sink's samples go: a device playing interleaved s16 PCM in real time.

    The sink calls all three from its worker thread, never from the event loop.
    """

    def open(self, sample_rate: int, channels: int) -> None:
        """Open the device; raise :class:`AudioDeviceError` when it cannot be used."""

    def write(self, pcm: bytes) -> None:
        """Play ``pcm``, blocking for about its duration once the device's buffer is full.

        The device itself should hold little audio: the sink's queue holds the latency.
        """

    def close(self) -> None:
        """Release the device; safe to call twice."""


class _PlaybackClock:
    """Paces a writer to real time: a write returns when at most ``lead`` s remain unplayed.

    A writer more than ``_RESYNC`` late (the thread was starved, the device stalled) starts
    over from now instead of writing its backlog in a burst.
    """

    _RESYNC = 0.1

    def __init__(self, lead: float) -> None:
        self._lead = lead
        self._start: float | None = None

    def wait(self, written: float) -> None:
        """Block until the first ``written`` seconds of audio are due, minus the lead."""
        now = time.monotonic()
        if self._start is None:
            self._start = now
        due = self._start + written - self._lead
        if due > now:
            time.sleep(due - now)
        elif now - due > self._RESYNC:
            self._start = now - written + self._lead


def _layout(channels: int) -> str:
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 (mono) or 2 (stereo), got {channels}")
    return "mono" if channels == 1 else "stereo"


class AlsaOutput:
    """Plays through an ALSA device with PyAV (``pcm_s16le`` into the ``alsa`` muxer).

    ALSA takes writes without blocking until its own buffer (up to seconds) is full, so
    :meth:`write` paces itself against the system clock and leaves only ``lead`` seconds
    in ALSA. The device's crystal and the system clock differ by some parts per million:
    over an hour ALSA's share may grow by tens of milliseconds, or the device may run dry
    once (ALSA recovers, a click).
    """

    def __init__(self, device: str = "default", *, lead: float = 0.030) -> None:
        self.device = device
        self._lead = lead
        self._container: Any = None
        self._stream: Any = None
        self._layout = "stereo"
        self._sample_rate = 0
        self._time_base = fractions.Fraction(1, 1)
        self._written = 0
        self._clock = _PlaybackClock(lead)

    def open(self, sample_rate: int, channels: int) -> None:
        """Open the device; :class:`AudioDeviceError` naming it if that fails."""
        layout = _layout(channels)
        container: Any = None
        try:
            container = av.open(self.device, mode="w", format="alsa")
            stream = container.add_stream("pcm_s16le", rate=sample_rate, layout=layout)
            # The muxer opens the device when it writes the header: done now, so that a missing
            # device is reported here rather than by the first write.
            container.start_encoding()
        except (av.FFmpegError, OSError, ValueError) as exc:
            if container is not None:
                with contextlib.suppress(av.FFmpegError, OSError):
                    container.close()
            problem = alsa_configuration_problem()
            if problem is not None:
                raise AlsaConfigError(
                    f"cannot open the loudspeaker {self.device!r}: {problem}"
                ) from exc
            raise AudioDeviceError(
                f"cannot open the loudspeaker {self.device!r}: {error_reason(exc)} "
                "(list the playback devices with 'aplay -L'; ALSA's own message is in the log)"
            ) from exc
        self._container, self._stream = container, stream
        self._layout, self._sample_rate = layout, sample_rate
        self._time_base = fractions.Fraction(1, sample_rate)
        self._written = 0
        self._clock = _PlaybackClock(self._lead)
        log.info("loudspeaker %r: open, %d Hz %s", self.device, sample_rate, layout)

    def write(self, pcm: bytes) -> None:
        """Play ``pcm``; :class:`AudioDeviceError` if the device fails (unplugged, say)."""
        if self._container is None:
            raise AudioDeviceError(f"the loudspeaker {self.device!r} is not open")
        samples = np.frombuffer(pcm, dtype=np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout=self._layout)
        frame.sample_rate = self._sample_rate
        frame.pts = self._written
        frame.time_base = self._time_base
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except (av.FFmpegError, OSError) as exc:
            raise AudioDeviceError(
                f"the loudspeaker {self.device!r} failed: {error_reason(exc)}"
            ) from exc
        self._written += frame.samples
        self._clock.wait(self._written / self._sample_rate)

    def close(self) -> None:
        """Close the device; safe to call twice."""
        container, self._container = self._container, None
        if container is None:
            return
        try:
            container.close()
        except (av.FFmpegError, OSError) as exc:
            log.warning("loudspeaker %r: closing failed: %s", self.device, error_reason(exc))
        log.info("loudspeaker %r: closed", self.device)


@dataclass(frozen=True)
class RecordedWrite:
    """One :meth:`RecordingOutput.write`: when it was accepted and what it held."""

    at: float  # time.monotonic()
    pcm: bytes


class RecordingOutput:
    """The output's test double: records what it plays, with the time of each write.

    It consumes in real time (a 10 ms write returns 10 ms after the previous one), like a
    device with no buffer of its own. :meth:`stall` makes it stop consuming until
    :meth:`resume`; :meth:`fail` makes the next write raise, like an unplugged device.
    """

    def __init__(self) -> None:
        self.sample_rate = 0
        self.channels = 0
        self.opened = False
        self.closed = False
        #: Every write, in order.
        self.writes: list[RecordedWrite] = []
        self._consuming = threading.Event()
        self._consuming.set()
        self._failure: BaseException | None = None
        self._frames_written = 0
        self._clock = _PlaybackClock(0.0)

    def open(self, sample_rate: int, channels: int) -> None:
        """Start recording in this format."""
        _layout(channels)
        self.sample_rate, self.channels = sample_rate, channels
        self.opened = True

    def write(self, pcm: bytes) -> None:
        """Record ``pcm`` and return when it has been played (or raise what :meth:`fail` set)."""
        self._consuming.wait()
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure
        self.writes.append(RecordedWrite(time.monotonic(), pcm))
        self._frames_written += len(pcm) // (2 * self.channels)
        self._clock.wait(self._frames_written / self.sample_rate)

    def close(self) -> None:
        """Stop recording; safe to call twice."""
        self.closed = True

    def stall(self) -> None:
        """Stop consuming: writes block until :meth:`resume`."""
        self._consuming.clear()

    def resume(self) -> None:
        """Consume again after :meth:`stall`."""
        self._consuming.set()

    def fail(self, error: BaseException) -> None:
        """Make the next write raise ``error``."""
        self._failure = error

    def samples(self) -> _Samples:
        """Everything written so far, shape ``(frames, channels)``."""
        pcm = b"".join(write.pcm for write in list(self.writes))
        return np.frombuffer(pcm, dtype=np.int16).reshape(-1, max(self.channels, 1))


class AudioSinkState(StrEnum):
    """Where a :class:`BoundedAudioSink` is; transitions are logged by the sink."""

    IDLE = "idle"  # made; run() not called yet
    PLAYING = "playing"
    FAILED = "failed"  # the output failed: received audio is read and discarded
    STOPPED = "stopped"  # the track ended or close() was called


class BoundedAudioSink:
    """Plays a received audio track with a bounded delay; see the module's docstring.

    ``max_latency`` bounds the queue in front of the output (the drop threshold);
    ``chunk`` is the size of each write; after running dry, playback resumes once
    ``prebuffer`` is queued, so that network jitter does not chop the sound into bits.
    :attr:`volume` (0.0 to 1.0) may be set at any time and is ramped over one chunk.

    When the output fails, :attr:`error` and ``on_error`` say why, the output is closed, and
    :meth:`run` goes on reading and discarding the track (an unread aiortc track piles up
    frames) until it ends or :meth:`close` is called. Nothing is raised.
    """

    def __init__(
        self,
        *,
        output: AudioOutput,
        channels: int = 2,
        sample_rate: int = 48_000,
        max_latency: float = 0.060,
        chunk: float = 0.010,
        prebuffer: float = 0.020,
        volume: float = 1.0,
        on_error: ErrorCallback | None = None,
        name: str = "loudspeaker",
    ) -> None:
        self._layout = _layout(channels)
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        if not 0 < chunk <= max_latency:
            raise ValueError(
                f"chunk ({chunk} s) must be positive and at most max_latency ({max_latency} s)"
            )
        if not 0 <= prebuffer <= max_latency:
            raise ValueError(f"prebuffer ({prebuffer} s) must be from 0 to max_latency")
        self.name = name
        self.channels = channels
        self.sample_rate = sample_rate
        self.max_latency = max_latency
        self._output = output
        self._on_error = on_error
        self._volume = 1.0
        self.volume = volume
        self._chunk_frames = max(1, round(chunk * sample_rate))
        self._max_frames = round(max_latency * sample_rate)
        self._start_frames = max(self._chunk_frames, round(prebuffer * sample_rate))

        self._state = AudioSinkState.IDLE
        #: Why the output stopped; None while it plays.
        self.error: AudioError | None = None
        #: Frames read from the track (including those discarded after a failure).
        self.frames_received = 0

        self._resampler: av.AudioResampler | None = None
        self._source_format: tuple[str, str, int] | None = None
        # Shared with the writer thread, under _lock; counts are in sample frames.
        self._lock = threading.Lock()
        self._queue: deque[_Samples] = deque()
        self._queued = 0
        self._max_queued = 0
        self._dropped = 0
        self._underrun = 0
        self._played = 0
        self._primed = False  # audio has arrived: silence from now on is an underrun
        self._flowing = False  # False: waiting for the prebuffer

        self._closing = False
        self._receiving: asyncio.Future[Any] | None = None
        self._run_done: asyncio.Event | None = None
        self._writer: threading.Thread | None = None
        self._writer_stop = threading.Event()
        self._writer_done = asyncio.Event()

    # -- what the UI and diagnostics read ------------------------------------------------

    @property
    def state(self) -> AudioSinkState:
        return self._state

    @property
    def volume(self) -> float:
        """Playback volume from 0.0 (silent) to 1.0 (as received)."""
        return self._volume

    @volume.setter
    def volume(self, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"volume must be from 0.0 to 1.0, got {value}")
        self._volume = float(value)

    def _ms(self, frames: int) -> float:
        return frames * 1000.0 / self.sample_rate

    @property
    def queued_ms(self) -> float:
        """Audio waiting to be played, now."""
        return self._ms(self._queued)

    @property
    def max_queued_ms(self) -> float:
        """The most audio that ever waited since the start (at most ``max_latency``)."""
        return self._ms(self._max_queued)

    @property
    def dropped_ms(self) -> float:
        """Received audio dropped because more than ``max_latency`` was waiting."""
        return self._ms(self._dropped)

    @property
    def underrun_ms(self) -> float:
        """Silence played because no audio was waiting (after the first audio arrived)."""
        return self._ms(self._underrun)

    @property
    def played_ms(self) -> float:
        """Received audio handed to the output."""
        return self._ms(self._played)

    # -- running -------------------------------------------------------------------------

    async def run(self, track: MediaStreamTrack) -> None:
        """Play ``track`` until it ends or :meth:`close` is called; a sink plays one track."""
        if self._closing:
            return
        if self._state is not AudioSinkState.IDLE:
            raise RuntimeError(f"{self.name}: a sink plays one track, once")
        loop = asyncio.get_running_loop()
        self._run_done = asyncio.Event()
        self._set_state(AudioSinkState.PLAYING)
        self._writer = threading.Thread(
            target=self._play, args=(loop,), name=f"sink-{self.name}", daemon=True
        )
        self._writer.start()
        try:
            while not self._closing:
                self._receiving = asyncio.ensure_future(track.recv())
                try:
                    frame = await self._receiving
                except MediaStreamError:
                    log.info("%s: the track ended", self.name)
                    break
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if self._closing and not (task is not None and task.cancelling()):
                        break  # close() cancelled the read, not our caller
                    raise
                finally:
                    self._receiving = None
                self.frames_received += 1
                if self.state is AudioSinkState.PLAYING and isinstance(frame, av.AudioFrame):
                    try:
                        samples = self._convert(frame)
                    except (av.FFmpegError, ValueError) as exc:
                        # One odd frame from the network is skipped, not a reason to stop.
                        log.warning("%s: frame skipped: %s", self.name, error_reason(exc))
                        continue
                    self._push(samples)
        finally:
            await self._stop_writer()
            self._set_state(AudioSinkState.STOPPED)
            self._run_done.set()

    async def close(self) -> None:
        """Stop playing and release the output (the track is not stopped); safe to call twice."""
        self._closing = True
        if self._receiving is not None:
            self._receiving.cancel()
        if self._run_done is not None:
            await self._run_done.wait()
        self._set_state(AudioSinkState.STOPPED)

    def _set_state(self, state: AudioSinkState) -> None:
        if state is self._state:
            return
        log.info("%s: %s -> %s", self.name, self._state, state)
        self._state = state

    def _fail(self, error: AudioError) -> None:
        # On the event loop, posted by the writer thread.
        if self._state is not AudioSinkState.PLAYING:
            return
        self.error = error
        log.error("%s: %s", self.name, error)
        self._set_state(AudioSinkState.FAILED)
        with self._lock:
            self._queue.clear()
            self._queued = 0
        if self._on_error is not None:
            try:
                self._on_error(error)
            except Exception:
                log.exception("%s: the on_error callback failed", self.name)

    async def _stop_writer(self) -> None:
        self._writer_stop.set()
        if self._writer is None or self._writer_done.is_set():
            return
        try:
            await asyncio.wait_for(self._writer_done.wait(), RELEASE_TIMEOUT)
        except TimeoutError:
            # A write blocked in the device cannot be interrupted; the daemon thread is left
            # to return from it (or to die with the process) and then closes the output.
            log.warning("%s: the output did not return within %.1f s", self.name, RELEASE_TIMEOUT)

    # -- the event loop's side: convert and queue ------------------------------------------

    def _convert(self, frame: av.AudioFrame) -> _Samples:
        # libswresample spreads mono over stereo at -3 dB (a pan law): mono is resampled as
        # mono and copied to both channels here, so that it plays at the level it was sent.
        upmix = frame.layout.nb_channels == 1 and self.channels == 2
        source_format = (frame.format.name, frame.layout.name, frame.sample_rate)
        if self._resampler is None or source_format != self._source_format:
            # Bound to its first input's format. aiortc's Opus decoder gives 48 kHz stereo s16,
            # which passes through untouched to a stereo output.
            self._resampler = av.AudioResampler(
                format="s16", layout="mono" if upmix else self._layout, rate=self.sample_rate
            )
            self._source_format = source_format
        parts = [
            np.asarray(out.to_ndarray(), dtype=np.int16).reshape(-1, 1 if upmix else self.channels)
            for out in self._resampler.resample(frame)
        ]
        if not parts:
            return np.zeros((0, self.channels), dtype=np.int16)
        samples = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return np.repeat(samples, 2, axis=1) if upmix else samples

    def _push(self, samples: _Samples) -> None:
        if not len(samples):
            return
        with self._lock:
            self._queue.append(samples)
            self._queued += len(samples)
            self._primed = True
            excess = self._queued - self._max_frames
            if excess > 0:
                self._drop_oldest(excess)
            self._max_queued = max(self._max_queued, self._queued)

    def _drop_oldest(self, frames: int) -> None:
        # Under the lock. The oldest audio goes: what is played stays as recent as possible.
        self._dropped += frames
        self._queued -= frames
        while frames:
            head = self._queue[0]
            if len(head) <= frames:
                self._queue.popleft()
                frames -= len(head)
            else:
                self._queue[0] = head[frames:]
                frames = 0

    # -- the writer thread's side: take, scale, write ----------------------------------------

    def _take(self) -> _Samples:
        """The next chunk: queued audio, padded with silence when there is not enough."""
        wanted = self._chunk_frames
        parts: list[_Samples] = []
        with self._lock:
            if not self._flowing and self._queued >= self._start_frames:
                self._flowing = True
            taken = 0
            if self._flowing:
                while taken < wanted and self._queue:
                    head = self._queue[0]
                    need = wanted - taken
                    if len(head) <= need:
                        parts.append(self._queue.popleft())
                        taken += len(head)
                    else:
                        parts.append(head[:need])
                        self._queue[0] = head[need:]
                        taken = wanted
                self._queued -= taken
                if taken < wanted:
                    self._flowing = False  # ran dry: wait for the prebuffer again
            if self._primed:
                self._underrun += wanted - taken
            self._played += taken
        if taken < wanted:
            parts.append(np.zeros((wanted - taken, self.channels), dtype=np.int16))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    @staticmethod
    def _scale(samples: _Samples, gain_from: float, gain_to: float) -> _Samples:
        if gain_from == gain_to == 1.0:
            return samples
        gain: float | npt.NDArray[np.float64]
        if gain_from == gain_to:
            gain = gain_to
        else:
            # A step in gain is a click; a ramp over one chunk (10 ms) is not.
            gain = np.linspace(gain_from, gain_to, len(samples))[:, np.newaxis]
        scaled = np.rint(samples.astype(np.float64) * gain)
        return np.clip(scaled, -32768, 32767).astype(np.int16)

    def _play(self, loop: asyncio.AbstractEventLoop) -> None:
        # The writer thread: it reaches the loop only through call_soon_threadsafe.
        def post(callback: Any, *args: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to tell
                loop.call_soon_threadsafe(callback, *args)

        try:
            self._write_until_stopped(post)
        finally:
            post(self._writer_done.set)

    def _write_until_stopped(self, post: Any) -> None:
        try:
            self._output.open(self.sample_rate, self.channels)
        except Exception as exc:
            post(self._fail, self._as_audio_error(exc))
            return
        try:
            gain = self._volume
            while not self._writer_stop.is_set():
                chunk = self._take()
                target = self._volume
                chunk, gain = self._scale(chunk, gain, target), target
                self._output.write(chunk.tobytes())
        except Exception as exc:
            # The thread's boundary: whatever the output raises is reported, never lost.
            if not self._writer_stop.is_set():
                post(self._fail, self._as_audio_error(exc))
        finally:
            try:
                self._output.close()
            except Exception:
                log.exception("%s: closing the output failed", self.name)

    def _as_audio_error(self, exc: Exception) -> AudioError:
        if isinstance(exc, AudioError):
            return exc
        error = AudioDeviceError(f"{self.name}: the audio output failed: {error_reason(exc)}")
        error.__cause__ = exc
        return error
