"""The booth's test tone track."""

from __future__ import annotations

import fractions
import time

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from kiosk.media import ToneTrack


async def test_tone_frames() -> None:
    tone = ToneTrack()
    try:
        start = time.monotonic()
        frames = [await tone.recv() for _ in range(6)]
        elapsed = time.monotonic() - start
    finally:
        tone.stop()
    assert 0.05 < elapsed < 1.0, elapsed  # five 20 ms periods, loosely
    for index, frame in enumerate(frames):
        assert isinstance(frame, av.AudioFrame)
        assert (frame.format.name, frame.layout.name) == ("s16", "mono")
        assert (frame.sample_rate, frame.samples) == (48_000, 960)
        assert frame.time_base == fractions.Fraction(1, 48_000)
        assert frame.pts == index * 960
    samples = np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(float)
    rms_dbfs = 20 * np.log10(np.sqrt(np.mean(samples**2)) * np.sqrt(2) / 32768)
    assert -21 < rms_dbfs < -19  # peak level of the sine
    spectrum = np.abs(np.fft.rfft(samples))
    peak_hz = np.argmax(spectrum) * 48_000 / len(samples)
    assert abs(peak_hz - 440) < 10
    with pytest.raises(MediaStreamError):
        await tone.recv()
