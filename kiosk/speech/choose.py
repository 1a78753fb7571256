"""Which voice speaks the accessibility mode's prompts, chosen by configuration; the choice
and any fallback logged with the reason."""

from __future__ import annotations

import logging
from collections.abc import Callable

from kiosk.config import AccessibilityConfig, AudioConfig, SpeechKind
from kiosk.media.audio_playback import AlsaOutput, AudioOutput
from kiosk.speech.espeak import EspeakVoice, find_espeak
from kiosk.speech.voice import Voice

log = logging.getLogger(__name__)


def open_voice(
    config: AccessibilityConfig, *, find: Callable[[], str | None] = find_espeak
) -> Voice | None:
    """espeak-ng when configured and installed; None (no spoken prompts) otherwise, said once
    in the log: the accessibility mode then still has its large, high-contrast screens."""
    if config.speech is SpeechKind.OFF:
        log.info("speech: off (accessibility.speech = 'off')")
        return None
    program = find()
    if program is None:
        reason = "espeak-ng is not installed (apt-get install espeak-ng)"
        if config.speech is SpeechKind.ESPEAK_NG:
            log.error("speech: off: %s, though accessibility.speech = 'espeak-ng'", reason)
        else:
            log.warning(
                "speech: off: %s; the accessibility mode shows large text without spoken prompts",
                reason,
            )
        return None
    voice = EspeakVoice(program, rate=config.speech_rate)
    log.info("speech: %s", voice.name)
    return voice


def speech_output(audio: AudioConfig) -> Callable[[], AudioOutput]:
    """Where prompts are heard: the call's loudspeaker, or nowhere (in real time) without
    one."""
    if audio.playback == "none":
        from kiosk.speech.speaker import SilentOutput

        return SilentOutput
    device = audio.playback
    return lambda: AlsaOutput(device)
