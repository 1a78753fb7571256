"""Spoken prompts for the accessibility mode: a voice (espeak-ng, or a fake) makes speech from
the catalogues' texts, a speaker plays it. Nothing here knows the flow: the booth's
:mod:`~kiosk.booth.prompts` decides what is said when."""

from kiosk.speech.choose import open_voice, speech_output
from kiosk.speech.espeak import VOICES, EspeakVoice, find_espeak
from kiosk.speech.fake import FakeVoice
from kiosk.speech.speaker import SilentOutput, Speaker
from kiosk.speech.voice import SpeechError, Utterance, Voice, parse_wav

__all__ = [
    "VOICES",
    "EspeakVoice",
    "FakeVoice",
    "SilentOutput",
    "Speaker",
    "SpeechError",
    "Utterance",
    "Voice",
    "find_espeak",
    "open_voice",
    "parse_wav",
    "speech_output",
]
