"""Spoken prompts (kiosk/speech/): espeak-ng really says every citizen screen's prompt in every
language (parsed WAV, longer than 0.3 s, not silent); the speaker plays and stops; the voice is
chosen by configuration, its absence said in the log. Fails in CI when espeak-ng is missing."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import time
import wave
from dataclasses import replace

import pytest

from kiosk.booth.prompts import prompt_text
from kiosk.config import AccessibilityConfig, AudioConfig, SpeechKind
from kiosk.flow import CITIZEN_STATES, LANGUAGES, State, Visit
from kiosk.i18n import load_catalogue
from kiosk.media.audio_playback import RecordingOutput
from kiosk.speech import (
    VOICES,
    EspeakVoice,
    FakeVoice,
    SilentOutput,
    Speaker,
    SpeechError,
    Utterance,
    find_espeak,
    open_voice,
    parse_wav,
    speech_output,
)
from kiosk.speech.espeak import _end
from tests.components import require

#: Quieter than this (root mean square, full scale 1) is silence, not speech.
RMS_FLOOR = 0.02


def _espeak() -> str:
    return require("espeak-ng", "the accessibility mode's spoken prompts (Debian: espeak-ng)")


def _visits(language: str, state: State) -> list[Visit]:
    """The visit as the screen is spoken: plain, and with what the screen adds (a refused
    code, the queue place)."""
    visit = Visit(language=language, accessible=True)
    if state is State.CODE_ENTRY:
        return [visit, replace(visit, problem="wrong_code"), replace(visit, problem="rate_limited")]
    if state is State.WAITING:
        return [visit, replace(visit, queue_position=3, estimated_wait_seconds=420)]
    return [visit]


async def test_espeak_ng_says_every_citizen_screen_in_every_language() -> None:
    voice = EspeakVoice(_espeak())
    catalogue = load_catalogue()
    english = catalogue.texts["en"]
    figures: list[tuple[str, str, float, float]] = []
    problems: list[str] = []
    for language in LANGUAGES:
        for state in CITIZEN_STATES:
            key = f"speak.{state.value}"
            own = catalogue.texts[language].get(key, "")
            if not own.strip():
                problems.append(f"{language}: {key} is missing")
                continue
            if language != "en" and own == english[key]:
                problems.append(f"{language}: {key} is the English text")
            for visit in _visits(language, state):
                text = prompt_text(catalogue, state, visit)
                assert text is not None and own in text
                started = time.monotonic()
                utterance = await voice.synthesize(text, language)
                took = time.monotonic() - started
                if utterance.duration <= 0.3 or utterance.rms <= RMS_FLOOR:
                    problems.append(
                        f"{state.value}/{language}: {utterance.duration:.2f} s, "
                        f"RMS {utterance.rms:.3f}"
                    )
                figures.append((state.value, language, utterance.duration, took))
    print(
        f"\nespeak-ng said {len(figures)} prompts ({len(CITIZEN_STATES)} screens x "
        f"{len(LANGUAGES)} languages and their variants): "
        f"{min(f[2] for f in figures):.1f} to {max(f[2] for f in figures):.1f} s of speech, "
        f"made in {max(f[3] for f in figures) * 1000:.0f} ms at most"
    )
    assert not problems, "\n".join(problems)
    # Made once: the same prompt again comes from the cache.
    text = prompt_text(catalogue, State.IDLE, Visit(language="uk", accessible=True))
    assert text is not None
    assert await voice.synthesize(text, "uk") is await voice.synthesize(text, "uk")


async def test_espeak_ng_has_a_voice_for_every_booth_language() -> None:
    program = _espeak()
    assert set(VOICES) == set(LANGUAGES)
    process = await asyncio.create_subprocess_exec(
        program, "--voices", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    installed = {line.split()[1] for line in out.decode().splitlines()[1:] if line.split()}
    for language, voice in VOICES.items():
        assert voice in installed or f"{voice}-gb" in installed, (language, voice)


def _open_files() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


async def test_a_synthesis_given_up_on_leaves_no_pipe_open() -> None:
    """A prompt no longer wanted (the screen changed, the booth stops) cancels its synthesis:
    espeak-ng is killed, and its pipes are closed then, not whenever the garbage collector
    finds them (an open pipe's file descriptor, and a ResourceWarning at a random later time)."""
    voice = EspeakVoice(_espeak())
    long_text = "Please wait, an advisor will be with you shortly. " * 400  # megabytes of WAV
    before = _open_files()
    for delay in (0.0, 0.3, 1.0):
        task = asyncio.create_task(voice.synthesize(long_text, "en"))
        await asyncio.sleep(delay)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)  # the transports' last callbacks
        assert _open_files() == before, f"cancelled after {delay} s: a pipe is left open"

    # The case that left one open: the output no longer read (its reader full, so reading
    # stopped) when espeak-ng is killed; the pipe's end is never seen unless it is read on.
    process = await asyncio.create_subprocess_exec(
        _espeak(), "--stdout", "--stdin",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdin is not None
    process.stdin.write(long_text.encode())
    process.stdin.close()
    await asyncio.sleep(1.0)  # espeak-ng fills the pipe and the reader; nobody reads
    # (Killing and waiting is not enough: the wait ends only once the pipes are closed, and this
    # one never is; a prompt stopped that way hung for good.)
    async with asyncio.timeout(10):
        await _end(process)
    await asyncio.sleep(0)
    assert process.returncode == -9
    assert _open_files() == before, "a killed synthesis whose output was not read left a pipe"


async def test_a_prompt_that_espeak_ng_cannot_make_is_an_error_that_says_why() -> None:
    voice = EspeakVoice(_espeak())
    with pytest.raises(SpeechError, match="no voice for the language 'xx'"):
        await voice.synthesize("Hallo", "xx")
    missing = EspeakVoice("/nonexistent/espeak-ng")
    with pytest.raises(SpeechError, match="espeak-ng cannot be started"):
        await missing.synthesize("Hallo", "de")


def test_a_wav_is_parsed_and_anything_else_refused() -> None:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(22050)
        wav.writeframes(b"\0\0\0\0" * 100)
    with pytest.raises(SpeechError, match="2 channel"):
        parse_wav(buffer.getvalue())
    with pytest.raises(SpeechError, match="did not return a WAV file"):
        parse_wav(b"not a wav")
    assert Utterance(16000, b"").rms == 0.0


async def test_the_speaker_plays_to_the_end_or_stops_at_once() -> None:
    recording = RecordingOutput()
    speaker = Speaker(lambda: recording)
    utterance = await FakeVoice(seconds=0.3).synthesize("Hallo", "de")
    assert await speaker.play(utterance)
    assert recording.sample_rate == 16000 and recording.closed
    assert len(recording.samples()) == len(utterance.pcm) // 2
    slow = Speaker(SilentOutput)
    long = await FakeVoice(seconds=5.0).synthesize("Hallo", "de")
    playing = asyncio.ensure_future(slow.play(long))
    await asyncio.sleep(0.2)
    assert slow.playing
    started = time.monotonic()
    slow.stop()
    assert not await playing
    assert time.monotonic() - started < 0.2
    assert (slow.finished, slow.stopped) == (0, 1)


def test_the_voice_is_chosen_and_its_absence_said_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="kiosk.speech")
    assert open_voice(AccessibilityConfig(speech=SpeechKind.OFF)) is None
    assert open_voice(AccessibilityConfig(), find=lambda: None) is None
    assert open_voice(AccessibilityConfig(speech=SpeechKind.ESPEAK_NG), find=lambda: None) is None
    voice = open_voice(AccessibilityConfig(speech_rate=120), find=lambda: "/usr/bin/espeak-ng")
    assert isinstance(voice, EspeakVoice) and voice.rate == 120
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert messages == [
        ("INFO", "speech: off (accessibility.speech = 'off')"),
        (
            "WARNING",
            "speech: off: espeak-ng is not installed (apt-get install espeak-ng); the "
            "accessibility mode shows large text without spoken prompts",
        ),
        (
            "ERROR",
            "speech: off: espeak-ng is not installed (apt-get install espeak-ng), though "
            "accessibility.speech = 'espeak-ng'",
        ),
        ("INFO", "speech: espeak-ng (/usr/bin/espeak-ng, 120 words a minute)"),
    ]
    assert speech_output(AudioConfig()) is SilentOutput
    assert find_espeak() in (None, "/usr/bin/espeak-ng")
