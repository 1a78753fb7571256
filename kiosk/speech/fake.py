"""A voice for tests and demos: a short tone per prompt, and a record of what it said."""

from __future__ import annotations

import numpy as np

from kiosk.speech.voice import SpeechError, Utterance

SAMPLE_RATE = 16_000


class FakeVoice:
    """Says every text as a tone of ``seconds``; :attr:`said` lists (language, text)."""

    name = "fake"

    def __init__(self, *, seconds: float = 0.5, languages: frozenset[str] | None = None) -> None:
        self.seconds = seconds
        self.languages = languages
        self.said: list[tuple[str, str]] = []

    def speaks(self, language: str) -> bool:
        return self.languages is None or language in self.languages

    async def synthesize(self, text: str, language: str) -> Utterance:
        if not self.speaks(language):
            raise SpeechError(f"fake voice: no voice for the language {language!r}")
        self.said.append((language, text))
        t = np.arange(int(self.seconds * SAMPLE_RATE)) / SAMPLE_RATE
        tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2")
        return Utterance(sample_rate=SAMPLE_RATE, pcm=tone.tobytes())
