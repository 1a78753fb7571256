"""The booth's audio capture: the microphone and audio files as aiortc tracks, with a level meter.

Both sources yield what aiortc's Opus encoder takes without converting: 48 kHz mono s16 frames
of 20 ms (960 samples), ``pts`` in 1/48000 s. The microphone is read in a worker thread (ALSA
through PyAV); frames reach the event loop only through ``call_soon_threadsafe``, into a small
queue that drops the oldest frame when full, so a consumer that falls behind loses audio
instead of adding delay.

The audio errors (playback in :mod:`kiosk.media.audio_playback` raises the same)::

    AudioError
     ├── AudioDeviceError (also OSError)  an ALSA device cannot be opened, or failed
     │    └── AlsaConfigError             ... because ALSA finds no configuration at all
     └── AudioFileError (also OSError)    an audio file cannot be opened or decoded

A track whose device fails ends (``recv()`` raises ``MediaStreamError``) and says why in its
:attr:`~AlsaMicrophoneTrack.error` and through its ``on_error`` callback; nothing is raised
into the event loop.

Its length: the microphone, the file source and the level meter share the frame format and the
error tree above, and are read together when a booth's sound misbehaves.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from kiosk.errors import BoothError
from kiosk.media.pacing import Pacer
from kiosk.media.tracks import AUDIO_SAMPLE_RATE, AUDIO_SAMPLES, AUDIO_TIME_BASE

log = logging.getLogger(__name__)

#: What the level meter reads for digital silence (the logarithm of zero has no value).
SILENCE_DBFS = -100.0
_FULL_SCALE = 32768.0
_FRAME_SECONDS = AUDIO_SAMPLES / AUDIO_SAMPLE_RATE
#: How long closing waits for a worker thread to let go of its device.
RELEASE_TIMEOUT = 2.0


class AudioError(BoothError):
    """Root of the booth's audio errors; the message says what failed and names it."""


class AudioDeviceError(AudioError, OSError):
    """An audio device cannot be opened or has failed; the message names the device."""


class AlsaConfigError(AudioDeviceError):
    """No ALSA device can be opened: ALSA finds no configuration (``ALSA_CONFIG_DIR``)."""

    #: What a screen says: the cause and the setting, without the paths.
    short = "ALSA finds no configuration: set ALSA_CONFIG_DIR=/usr/share/alsa"


class AudioFileError(AudioError, OSError):
    """An audio file cannot be opened or decoded; the message names the file."""


#: Called on the event loop with the error that ended a track or stopped a sink.
ErrorCallback = Callable[[AudioError], None]


def error_reason(exc: BaseException) -> str:
    """The readable part of an exception: FFmpeg's ``strerror`` rather than its errno tuple."""
    strerror = getattr(exc, "strerror", None)
    if strerror:
        return str(strerror)
    return str(exc) or type(exc).__name__


#: Where Linux lists the libraries this process has loaded.
PROCESS_MAPS = Path("/proc/self/maps")


def loaded_libasound(maps: Path = PROCESS_MAPS) -> Path | None:
    """The libasound PyAV loaded: the PyAV wheel's own copy, or the system's; None if none."""
    try:
        lines = maps.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split(maxsplit=5)
        path = fields[5].strip() if len(fields) == 6 else ""
        if "/libasound" in path and ".so" in path:
            return Path(path)
    return None


def alsa_configuration_problem(library: Path | None = None) -> str | None:
    """Why ALSA cannot know any device, when that is why: its configuration is not found.

    The PyAV wheel brings its own libasound, which looks for ``alsa.conf`` under the directory
    it was built with (``/tmp/vendor/share/alsa`` and the like) unless ``ALSA_CONFIG_DIR``
    names another; without it not even ``default`` exists. ``library`` is the libasound to ask
    (default: the one loaded with PyAV). None when the configuration is there, or the library
    cannot be asked.
    """
    library = library or loaded_libasound()
    if library is None:
        return None
    try:
        topdir_of = ctypes.CDLL(str(library)).snd_config_topdir
    except (OSError, AttributeError):
        return None
    topdir_of.restype = ctypes.c_char_p
    raw = topdir_of()
    if not raw:
        return None
    conf = Path(raw.decode(errors="replace")) / "alsa.conf"
    if conf.is_file():
        return None
    return (
        f"ALSA finds no configuration: the libasound PyAV loaded ({library.name}) looks for "
        f"{conf}, which does not exist; set ALSA_CONFIG_DIR=/usr/share/alsa (and ALSA_PLUGIN_DIR "
        "to the system's alsa-lib directory, for PipeWire's plugin) in the booth's environment"
    )


def capture_failure(device: str, exc: BaseException) -> AudioDeviceError:
    """The error for a capture device that cannot be opened, with what a technician does."""
    problem = alsa_configuration_problem()
    if problem is not None:
        return AlsaConfigError(f"cannot open the microphone {device!r}: {problem}")
    return AudioDeviceError(
        f"cannot open the microphone {device!r}: {error_reason(exc)} "
        "(list the capture devices with 'arecord -L'; ALSA's own message is in the log)"
    )


def open_capture(device: str, options: dict[str, str] | None = None) -> Any:
    """An ALSA capture device opened through PyAV (blocks); :class:`AudioDeviceError` if not."""
    try:
        return av.open(device, format="alsa", options=options or {})
    except (av.FFmpegError, OSError) as exc:
        raise capture_failure(device, exc) from exc


def check_capture(device: str) -> None:
    """Open the capture device ``device`` and close it again (blocks; the start self-test).

    Raises :class:`AudioDeviceError` naming the device and, where that is why, ALSA's missing
    configuration.
    """
    container = open_capture(
        device, {"sample_rate": str(AUDIO_SAMPLE_RATE), "ch_layout": _channel_layout(1)}
    )
    container.close()


def _dbfs(ratio: float) -> float:
    if ratio <= 0.0:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 20.0 * math.log10(ratio))


class LevelMeter:
    """Level meter for the UI: RMS of the newest frame, and a peak that falls back slowly.

    Levels are dBFS against full scale (32768): a full-scale sine reads -3 dBFS RMS and 0 dBFS
    peak; silence reads :data:`SILENCE_DBFS`. The peak decays with the duration of the audio
    measured, not with the wall clock, so readings are reproducible.
    """

    def __init__(self, *, peak_decay_db_per_second: float = 20.0) -> None:
        self.peak_decay_db_per_second = peak_decay_db_per_second
        #: RMS level of the newest frame, in dBFS.
        self.rms_dbfs = SILENCE_DBFS
        #: Highest recent sample level in dBFS, falling by ``peak_decay_db_per_second``.
        self.peak_dbfs = SILENCE_DBFS

    def update(self, samples: npt.NDArray[np.int16], duration: float) -> None:
        """Measure one frame of s16 samples (any shape; channels are pooled) of ``duration`` s."""
        if samples.size == 0:
            return
        values = samples.astype(np.float64)
        rms = math.sqrt(float(np.mean(values * values))) / _FULL_SCALE
        peak = float(np.max(np.abs(values))) / _FULL_SCALE
        self.rms_dbfs = _dbfs(rms)
        decayed = self.peak_dbfs - self.peak_decay_db_per_second * duration
        self.peak_dbfs = max(_dbfs(peak), decayed, SILENCE_DBFS)


def _mono_frame(samples: npt.NDArray[np.int16]) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = AUDIO_SAMPLE_RATE
    return frame


class _Framer:
    """Turns audio frames of any format into 48 kHz mono s16 frames of exactly 960 samples.

    Used by one thread only: the worker of a microphone, the event loop for a file.
    """

    def __init__(self) -> None:
        self._resampler: av.AudioResampler | None = None
        self._source_format: tuple[str, str, int] | None = None

    def push(self, frame: av.AudioFrame) -> list[av.AudioFrame]:
        """Frames completed by ``frame`` (none until 960 samples are buffered); no ``pts``."""
        source_format = (frame.format.name, frame.layout.name, frame.sample_rate)
        if self._resampler is None or source_format != self._source_format:
            # PyAV's resampler is bound to the format of its first input. A change (a device
            # reopened with other settings) needs a new one; the few samples buffered are lost.
            self._resampler = av.AudioResampler(
                format="s16", layout="mono", rate=AUDIO_SAMPLE_RATE, frame_size=AUDIO_SAMPLES
            )
            self._source_format = source_format
        # The source's timestamps mean nothing here (ALSA's wall clock, a file that loops back
        # to zero); the track numbers its frames itself.
        frame.pts = None
        return list(self._resampler.resample(frame))

    def flush(self) -> list[av.AudioFrame]:
        """What is left at the end of a source; the last frame is padded with silence."""
        if self._resampler is None:
            return []
        frames = list(self._resampler.resample(None))
        self._resampler = self._source_format = None
        padded = []
        for frame in frames:
            if frame.samples < AUDIO_SAMPLES:
                samples = np.zeros(AUDIO_SAMPLES, dtype=np.int16)
                samples[: frame.samples] = frame.to_ndarray().reshape(-1)
                frame = _mono_frame(samples)
            padded.append(frame)
        return padded


class _AudioSourceTrack(MediaStreamTrack):
    """What the microphone and the file tracks share: framing, level meter, error reporting."""

    kind = "audio"

    def __init__(self, *, name: str, on_error: ErrorCallback | None) -> None:
        super().__init__()
        #: Identifies the source in logs and error messages.
        self.name = name
        #: The level of the audio produced, for the UI's meter.
        self.level = LevelMeter()
        #: Why the track ended early; None while it runs or when it ended normally.
        self.error: AudioError | None = None
        self._on_error = on_error
        self._framer = _Framer()

    def _measure(self, frame: av.AudioFrame) -> None:
        samples = np.asarray(frame.to_ndarray(), dtype=np.int16)
        self.level.update(samples, frame.samples / AUDIO_SAMPLE_RATE)

    def _fail(self, error: AudioError) -> None:
        """End the track because of ``error`` (on the event loop); later errors are ignored."""
        if self.readyState != "live":
            return
        self.error = error
        log.warning("%s: %s", self.name, error)
        if self._on_error is not None:
            try:
                self._on_error(error)
            except Exception:
                log.exception("%s: the on_error callback failed", self.name)
        self.stop()


def _channel_layout(channels: int) -> str:
    return {1: "mono", 2: "stereo"}.get(channels, f"{channels}C")


class AlsaMicrophoneTrack(_AudioSourceTrack):
    """The booth's microphone: an ALSA capture device read through PyAV in a worker thread.

    ``device`` is an ALSA PCM name: ``"default"``, ``"plughw:1,0"``, or PipeWire's
    ``"echo-cancel-source"`` through the ALSA pipewire plugin. ``sample_rate`` and
    ``channels`` are asked of the device (a ``plughw:`` or PipeWire device converts; a raw
    ``hw:`` device may insist on its own); the track resamples whatever arrives to 48 kHz mono.

    Capture starts with :meth:`start` (or the first :meth:`recv`) and runs until :meth:`stop`
    or :meth:`close`; the :attr:`level` meter follows the microphone even while nobody reads
    the track. At most ``max_queued_frames`` (20 ms each) wait for the reader; older ones
    are dropped and counted in :attr:`frames_dropped`.
    """

    def __init__(
        self,
        device: str = "default",
        *,
        sample_rate: int = AUDIO_SAMPLE_RATE,
        channels: int = 1,
        max_queued_frames: int = 3,
        on_error: ErrorCallback | None = None,
    ) -> None:
        if max_queued_frames < 1:
            raise ValueError(f"max_queued_frames must be at least 1, got {max_queued_frames}")
        if sample_rate <= 0 or channels <= 0:
            raise ValueError(
                f"sample_rate and channels must be positive, got {sample_rate}, {channels}"
            )
        super().__init__(name=f"microphone {device!r}", on_error=on_error)
        self.device = device
        self._options = {"sample_rate": str(sample_rate), "ch_layout": _channel_layout(channels)}
        # None wakes a waiting recv() when the track ends.
        self._queue: asyncio.Queue[av.AudioFrame | None] = asyncio.Queue(max_queued_frames)
        self._stopping = threading.Event()
        self._finished = asyncio.Event()
        self._thread: threading.Thread | None = None
        #: Frames captured and handed to the event loop so far.
        self.frames_captured = 0
        #: Frames dropped because the reader was more than ``max_queued_frames`` behind.
        self.frames_dropped = 0

    def start(self) -> None:
        """Open the device and start capturing (call on the event loop); no-op if started."""
        if self._thread is not None or self.readyState != "live":
            return
        loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._capture, args=(loop,), name=f"mic-{self.device}", daemon=True
        )
        self._thread.start()

    async def recv(self) -> av.AudioFrame:
        """The next 20 ms captured: 48 kHz mono s16, ``pts`` in 1/48000 s since the start.

        A gap in ``pts`` means frames were dropped. Raises ``MediaStreamError`` once the track
        has ended (:meth:`stop`, or the device failed: see :attr:`error`).
        """
        if self.readyState != "live":
            raise MediaStreamError
        self.start()
        frame = await self._queue.get()
        if frame is None or self.readyState != "live":
            raise MediaStreamError
        return frame

    def stop(self) -> None:
        """End the track; the worker releases the device after its current read."""
        super().stop()
        self._stopping.set()
        self._enqueue(None)

    async def close(self) -> None:
        """Stop, and wait until the device is released (for reopening it); safe to call twice."""
        self.stop()
        if self._thread is None or self._finished.is_set():
            return
        try:
            await asyncio.wait_for(self._finished.wait(), RELEASE_TIMEOUT)
        except TimeoutError:
            # The read is blocked inside ALSA and cannot be interrupted; the daemon thread is
            # left to finish (or to die with the process).
            log.warning("%s: not released after %.1f s", self.name, RELEASE_TIMEOUT)

    def _enqueue(self, item: av.AudioFrame | None) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            if item is not None:
                self.frames_dropped += 1
        self._queue.put_nowait(item)

    def _deliver(self, frame: av.AudioFrame) -> None:
        # On the event loop.
        if self.readyState != "live":
            return
        self.frames_captured += 1
        self._measure(frame)
        self._enqueue(frame)

    def _capture(self, loop: asyncio.AbstractEventLoop) -> None:
        # The worker thread: it reaches the loop only through call_soon_threadsafe.
        def post(callback: Callable[..., object], *args: Any) -> None:
            try:
                loop.call_soon_threadsafe(callback, *args)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                self._stopping.set()

        try:
            self._read_device(post)
        finally:
            post(self._finished.set)

    def _read_device(self, post: Callable[..., None]) -> None:
        try:
            container = open_capture(self.device, self._options)
        except AudioDeviceError as exc:
            post(self._fail, exc)
            return
        captured = 0
        try:
            stream = container.streams.audio[0]
            codec = stream.codec_context
            log.info(
                "%s: capturing %s at %d Hz, %s",
                self.name,
                codec.name,
                codec.sample_rate,
                codec.layout.name,
            )
            direct = (codec.name, codec.sample_rate, codec.layout.nb_channels) == (
                "pcm_s16le",
                AUDIO_SAMPLE_RATE,
                1,
            )
            frames = self._cut(container, stream) if direct else self._convert(container, stream)
            for frame in frames:
                # pts count the samples captured, dropped ones included: the receiver then
                # hears a gap where audio was dropped instead of a shifted timeline.
                frame.pts = captured
                frame.time_base = AUDIO_TIME_BASE
                captured += AUDIO_SAMPLES
                post(self._deliver, frame)
            if self._stopping.is_set():
                return
            reason = "the device stopped delivering audio"
        except Exception as exc:
            # The thread's boundary: whatever the read raises (device unplugged, PipeWire
            # restarted) ends the track with a reason, never an exception in a thread.
            reason = error_reason(exc)
        finally:
            container.close()
        if not self._stopping.is_set():
            post(self._fail, AudioDeviceError(f"the microphone {self.device!r} failed: {reason}"))

    def _cut(self, container: Any, stream: Any) -> Iterator[av.AudioFrame]:
        # The device delivers what the track sends (48 kHz mono s16): its bytes are cut into
        # frames without the decoder and resampler. ALSA periods are often 1-2 ms, several
        # hundred packets a second, and this is about four times cheaper per packet.
        size = AUDIO_SAMPLES * 2
        pending = bytearray()
        for packet in container.demux(stream):
            if self._stopping.is_set():
                return
            pending += bytes(packet)
            while len(pending) >= size:
                samples = np.frombuffer(bytes(pending[:size]), dtype=np.int16)
                del pending[:size]
                yield _mono_frame(samples)

    def _convert(self, container: Any, stream: Any) -> Iterator[av.AudioFrame]:
        for frame in container.decode(stream):
            if self._stopping.is_set():
                return
            yield from self._framer.push(frame)


class WavFileTrack(_AudioSourceTrack):
    """An audio file (WAV, or anything PyAV decodes) as a track paced in real time.

    The microphone's stand-in in tests and a diagnostics source (a known recording through the
    whole path). Yields 48 kHz mono s16 frames of 20 ms, the last one padded with silence, then
    ends; with ``loop=True`` it starts over seamlessly instead. Raises :class:`AudioFileError`
    at once when the file cannot be opened or has no audio.
    """

    def __init__(
        self, path: str | Path, *, loop: bool = False, on_error: ErrorCallback | None = None
    ) -> None:
        super().__init__(name=f"audio file {str(path)!r}", on_error=on_error)
        self.path = Path(path)
        self._looping = loop
        try:
            self._container = av.open(str(path))
        except (av.FFmpegError, OSError) as exc:
            raise AudioFileError(
                f"cannot open the audio file {str(path)!r}: {error_reason(exc)}"
            ) from exc
        if not self._container.streams.audio:
            self._container.close()
            raise AudioFileError(f"the file {str(path)!r} has no audio stream")
        self._stream = self._container.streams.audio[0]
        self._decoded: Iterator[Any] = self._container.decode(self._stream)
        self._pending: deque[av.AudioFrame] = deque()
        self._samples_this_pass = 0
        self._at_end = False
        self._closed = False
        self._pacer = Pacer(_FRAME_SECONDS)
        #: Frames returned by :meth:`recv` so far.
        self.frames_sent = 0

    async def recv(self) -> av.AudioFrame:
        """The next 20 ms of the file, ``pts`` in 1/48000 s on the wall clock (like the tone)."""
        if self.readyState != "live":
            raise MediaStreamError
        slot = await self._pacer.next_slot()
        if self.readyState != "live":  # stopped while waiting: the file is closed
            raise MediaStreamError
        try:
            frame = self._next_frame()
        except (av.FFmpegError, OSError, ValueError) as exc:
            self._fail(AudioFileError(f"cannot decode the audio file {str(self.path)!r}: {exc}"))
            raise MediaStreamError from exc
        if frame is None:
            log.info("%s: played to the end", self.name)
            self.stop()
            raise MediaStreamError
        # A consumer that fell behind made the pacer skip slots: pts jump with the wall clock,
        # so the receiver's timeline stays in real time.
        frame.pts = slot * AUDIO_SAMPLES
        frame.time_base = AUDIO_TIME_BASE
        self._measure(frame)
        self.frames_sent += 1
        return frame

    def _next_frame(self) -> av.AudioFrame | None:
        # Decoding a local file is quick (well under a millisecond per frame): done on the loop.
        while not self._pending:
            if self._at_end:
                return None
            try:
                decoded = next(self._decoded)
            except StopIteration:
                if self._looping and self._samples_this_pass > 0:
                    # The framer keeps its partial frame: the seam has no gap and no padding.
                    self._container.seek(0)
                    self._decoded = self._container.decode(self._stream)
                    self._samples_this_pass = 0
                    continue
                self._pending.extend(self._framer.flush())
                self._at_end = True
                continue
            self._samples_this_pass += decoded.samples
            self._pending.extend(self._framer.push(decoded))
        return self._pending.popleft()

    def stop(self) -> None:
        """End the track and close the file; safe to call twice."""
        super().stop()
        if not self._closed:
            self._closed = True
            self._container.close()
