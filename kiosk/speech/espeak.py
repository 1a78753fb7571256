"""espeak-ng (Debian's ``espeak-ng``) as the booth's voice: ``espeak-ng -v <voice> --stdout``
in a subprocess, its WAV parsed, each (language, text) made once and kept."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections import OrderedDict

from kiosk.speech.voice import SpeechError, Utterance, parse_wav

log = logging.getLogger(__name__)

#: The espeak-ng voice for each booth language (``espeak-ng --voices`` lists them).
VOICES = {"de": "de", "en": "en", "tr": "tr", "ar": "ar", "ru": "ru", "uk": "uk"}
#: Prompts kept once made: every screen in every language is about 60.
CACHE_SIZE = 128
#: A prompt of a few sentences takes espeak-ng a few hundredths of a second; far longer is
#: a hung process.
TIMEOUT_SECONDS = 20.0


def find_espeak() -> str | None:
    """The espeak-ng program's path; None when it is not installed."""
    return shutil.which("espeak-ng")


class EspeakVoice:
    """espeak-ng in a subprocess (never on the event loop), with a cache of what it said."""

    def __init__(self, program: str, *, rate: int = 150) -> None:
        self.program = program
        self.rate = rate
        self.name = f"espeak-ng ({program}, {rate} words a minute)"
        self._cache: OrderedDict[tuple[str, str], Utterance] = OrderedDict()

    def speaks(self, language: str) -> bool:
        return language in VOICES

    async def synthesize(self, text: str, language: str) -> Utterance:
        key = (language, text)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        voice = VOICES.get(language)
        if voice is None:
            raise SpeechError(f"espeak-ng: no voice for the language {language!r}")
        utterance = await self._run(voice, text)
        self._cache[key] = utterance
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return utterance

    async def _run(self, voice: str, text: str) -> Utterance:
        try:
            process = await asyncio.create_subprocess_exec(
                self.program,
                "-v",
                voice,
                "-s",
                str(self.rate),
                "--stdout",
                "--stdin",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise SpeechError(f"espeak-ng cannot be started ({self.program}): {exc}") from exc
        try:
            async with asyncio.timeout(TIMEOUT_SECONDS):
                # The text goes in on standard input: a prompt is never taken for an option.
                out, err = await process.communicate(text.encode())
        except TimeoutError:
            await _end(process)
            raise SpeechError(f"espeak-ng gave no speech within {TIMEOUT_SECONDS:g} s") from None
        except asyncio.CancelledError:
            await _end(process)
            raise
        if process.returncode != 0:
            problem = err.decode(errors="replace").strip() or f"exit status {process.returncode}"
            raise SpeechError(f"espeak-ng -v {voice} failed: {problem}")
        return parse_wav(out)


async def _end(process: asyncio.subprocess.Process) -> None:
    """Kill a synthesis given up on (a prompt no longer wanted, or too slow) and read its pipes
    to the end. Nobody reads its output once the synthesis is given up: what was still buffered
    and what was still in the pipe can add up to more than the reader holds before it stops
    reading, and a pipe whose end is never read stays open (its file descriptor, until the
    garbage collector finds it and warns). Shielded: a second cancellation still lets it end."""
    if process.returncode is None:
        process.kill()
    await asyncio.shield(process.communicate())
