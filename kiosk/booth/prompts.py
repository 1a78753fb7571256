"""The accessibility mode's spoken prompts: each screen says what it is, what to press and
where, in the visitor's language, when it appears and when asked again.

Spoken only in the mode, one at a time (a new screen stops the last prompt), never over a call:
a prompt stops as soon as the call's media connects, and none starts after that. The texts are
the catalogues' ``speak.<state>`` entries (:func:`prompt_text`); a voice makes the speech off
the event loop (:mod:`kiosk.speech`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from kiosk.flow import CITIZEN_STATES, State, Visit
from kiosk.i18n import Catalogue
from kiosk.speech import Speaker, SpeechError, Voice

log = logging.getLogger(__name__)

#: How often a prompt being spoken looks whether the call's media has connected.
CALL_CHECK_SECONDS = 0.05


def prompt_text(catalogue: Catalogue, state: State, visit: Visit) -> str | None:
    """What the screen of ``state`` says aloud in the visit's language; None for the screens
    no citizen sees (the technician's)."""
    if state not in CITIZEN_STATES:
        return None
    language = visit.language
    parts = []
    if state is State.CODE_ENTRY and visit.problem:
        problem = "code.rate_limited" if visit.problem == "rate_limited" else "code.wrong_code"
        parts.append(catalogue.text(language, problem))
    parts.append(catalogue.text(language, f"speak.{state.value}"))
    place = visit.queue_place
    if state is State.WAITING and place is not None:
        parts.append(catalogue.text(language, "waiting.position", position=place[0]))
        minutes = max(1, round(place[1] / 60))
        parts.append(catalogue.text(language, "waiting.estimate", minutes=minutes))
    if state is not State.IN_CALL:  # the call's screen has no "repeat": the call speaks
        parts.append(catalogue.text(language, "speak.repeat"))
    return " ".join(parts)


@dataclass(frozen=True)
class Spoken:
    """A prompt that was spoken (for tests and diagnostics; the text is the catalogue's)."""

    state: State
    language: str
    finished: bool


class SpokenPrompts:
    """Follows the flow and speaks each screen's prompt while the visit is in the mode."""

    def __init__(
        self,
        *,
        voice: Voice | None,
        speaker: Speaker,
        catalogue: Catalogue,
        call_running: Callable[[], bool],
    ) -> None:
        self._voice = voice
        self._speaker = speaker
        self._catalogue = catalogue
        self._call_running = call_running
        self._shown: tuple[State, str, str | None] | None = None
        self._last: tuple[State, Visit] | None = None
        self._task: asyncio.Task[None] | None = None
        self._ending: set[asyncio.Task[None]] = set()
        #: The prompts spoken so far, most recent last (bounded).
        self.spoken: list[Spoken] = []

    @property
    def available(self) -> bool:
        """Whether prompts are spoken at all (a voice is installed)."""
        return self._voice is not None

    @property
    def speaking(self) -> bool:
        """Whether a prompt is being heard now."""
        return self._speaker.playing

    def follow(self, state: State, visit: Visit) -> None:
        """The flow is at ``state`` with ``visit``: speak when a new screen (or a new problem
        on it) appears in the mode; stop when the mode ends or the call's media runs."""
        self._last = (state, visit)
        if not visit.accessible:
            self._shown = None
            self.stop()
            return
        if self._call_running():
            self.stop()
        shown = (state, visit.language, visit.problem)
        if shown != self._shown:
            self._shown = shown
            self._say(state, visit)

    def repeat(self) -> None:
        """Say the current screen's prompt again (the repeat control, or holding the call
        button in the mode)."""
        if self._last is not None and self._last[1].accessible:
            self._say(*self._last)

    def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # Kept until it has ended (close() waits for it): its speaker is being stopped.
            self._ending.add(task)
            task.add_done_callback(self._ending.discard)
        self._speaker.stop()

    async def close(self) -> None:
        """Stop speaking and wait until the prompt's worker has let go. Safe to call twice."""
        self.stop()
        for task in list(self._ending):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _say(self, state: State, visit: Visit) -> None:
        self.stop()
        text = prompt_text(self._catalogue, state, visit)
        if self._voice is None or text is None or self._call_running():
            return
        self._task = asyncio.get_running_loop().create_task(
            self._speak(self._voice, text, state, visit.language), name="spoken-prompt"
        )

    async def _speak(self, voice: Voice, text: str, state: State, language: str) -> None:
        try:
            utterance = await voice.synthesize(text, language)
        except SpeechError as exc:
            log.error("speech: the %s prompt in %s cannot be spoken: %s", state, language, exc)
            return
        if self._call_running():
            return
        log.info("speech: the %s prompt in %s (%.1f s)", state, language, utterance.duration)
        playing = asyncio.ensure_future(self._speaker.play(utterance))
        try:
            while not playing.done():
                await asyncio.wait({playing}, timeout=CALL_CHECK_SECONDS)
                if not playing.done() and self._call_running():
                    log.info("speech: prompt stopped, the call's audio runs")
                    self._speaker.stop()
        except asyncio.CancelledError:
            self._speaker.stop()
            with contextlib.suppress(Exception):
                await playing  # the worker notices within a chunk (10 ms)
            raise
        self.spoken = [*self.spoken[-49:], Spoken(state, language, playing.result())]
