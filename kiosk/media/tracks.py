"""The booth's test tone: a sine as an aiortc audio track (aiortc encodes it to Opus)."""

from __future__ import annotations

import fractions
import logging
import math

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from kiosk.media.pacing import Pacer

log = logging.getLogger(__name__)

AUDIO_SAMPLE_RATE = 48_000
AUDIO_TIME_BASE = fractions.Fraction(1, AUDIO_SAMPLE_RATE)
#: Samples per audio frame: 20 ms, the usual Opus packet duration.
AUDIO_SAMPLES = 960


class ToneTrack(MediaStreamTrack):
    """Audio track: a continuous sine (440 Hz, -20 dBFS peak), 48 kHz mono s16, 20 ms frames."""

    kind = "audio"

    def __init__(self, *, frequency: float = 440.0, level_dbfs: float = -20.0) -> None:
        super().__init__()
        self._pacer = Pacer(AUDIO_SAMPLES / AUDIO_SAMPLE_RATE)
        self._step = 2 * math.pi * frequency / AUDIO_SAMPLE_RATE
        self._amplitude = 32767 * 10 ** (level_dbfs / 20)

    async def recv(self) -> av.AudioFrame:
        """The next 20 ms of tone, ``pts`` in samples (1/48000 s)."""
        if self.readyState != "live":
            raise MediaStreamError
        slot = await self._pacer.next_slot()
        start = slot * AUDIO_SAMPLES
        # The phase follows the absolute sample number, like pts: no drift over a long call.
        samples = np.arange(start, start + AUDIO_SAMPLES, dtype=np.float64)
        wave = np.round(self._amplitude * np.sin(self._step * samples)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(wave.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_SAMPLE_RATE
        frame.pts = start
        frame.time_base = AUDIO_TIME_BASE
        return frame


class MuteableTrack(MediaStreamTrack):
    """Passes an audio track through, or silence while :attr:`muted` (the microphone button):
    the peer keeps receiving packets, so the call does not look broken."""

    kind = "audio"

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self.source = source
        self.muted = False

    async def recv(self) -> av.AudioFrame:
        frame = await self.source.recv()
        assert isinstance(frame, av.AudioFrame)
        if self.muted:
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
        return frame

    def stop(self) -> None:
        super().stop()
        self.source.stop()

    async def close(self) -> None:
        self.stop()
        close = getattr(self.source, "close", None)
        if close is not None:
            await close()
