"""What speaks: the :class:`Voice` protocol, the :class:`Utterance` it makes, and its errors.

A voice turns a text in one of the booth's languages into mono 16-bit PCM. Voices are
asynchronous: synthesis runs outside the event loop (a subprocess, a thread), so the screen
keeps drawing while a prompt is made.
"""

from __future__ import annotations

import io
import math
import wave
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from kiosk.errors import BoothError


class SpeechError(BoothError, RuntimeError):
    """A prompt cannot be spoken; the message says why and what to install or set."""


@dataclass(frozen=True)
class Utterance:
    """Speech as mono signed 16-bit little-endian PCM."""

    sample_rate: int
    pcm: bytes

    @property
    def duration(self) -> float:
        return len(self.pcm) / 2 / self.sample_rate if self.sample_rate else 0.0

    @property
    def rms(self) -> float:
        """The signal's root mean square, 0 (silence) to 1 (full scale)."""
        samples = np.frombuffer(self.pcm, dtype="<i2").astype(np.float64) / 32768.0
        return math.sqrt(float(np.mean(samples**2))) if samples.size else 0.0


def parse_wav(data: bytes) -> Utterance:
    """A WAV file's mono 16-bit PCM; :class:`SpeechError` for anything else."""
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise SpeechError(f"the voice did not return a WAV file: {exc}") from exc
    if channels != 1 or width != 2:
        raise SpeechError(
            f"the voice returned {channels} channel(s) of {8 * width}-bit audio; "
            "expected mono 16-bit"
        )
    return Utterance(sample_rate=rate, pcm=frames)


class Voice(Protocol):
    """Makes speech from text."""

    #: What the voice is, for the log ("espeak-ng 1.51", "fake").
    name: str

    def speaks(self, language: str) -> bool:
        """Whether it has a voice for ``language`` (a booth language code)."""
        ...

    async def synthesize(self, text: str, language: str) -> Utterance:
        """``text`` spoken in ``language``; :class:`SpeechError` when that cannot be."""
        ...
