"""The accessibility mode's spoken prompts (kiosk/booth/prompts.py): said when a screen appears
in the mode, again on request, stopped by a new screen, the mode's end or the call's media; and
a real booth with fake buttons: holding the call button turns the mode on and, in it, repeats."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from kiosk.booth import Booth
from kiosk.booth.prompts import SpokenPrompts, prompt_text
from kiosk.config import BoothConfig, CameraConfig
from kiosk.flow import State, Visit
from kiosk.hardware import FakeHardware
from kiosk.i18n import load_catalogue
from kiosk.speech import FakeVoice, SilentOutput, Speaker
from tests.server.conftest import Harness, MakeHarness, Peer, make_harness  # noqa: F401

pytestmark = pytest.mark.usefixtures("loopback_ice")


async def _until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_a_prompt_says_the_screen_what_it_adds_and_how_to_hear_it_again() -> None:
    catalogue = load_catalogue()
    wrong = prompt_text(catalogue, State.CODE_ENTRY, Visit(language="en", problem="wrong_code"))
    assert wrong is not None and wrong.startswith("This code does not open an appointment")
    waiting = prompt_text(
        catalogue,
        State.WAITING,
        Visit(language="de", queue_position=2, estimated_wait_seconds=300),
    )
    assert waiting is not None
    assert "Sie sind Nummer 2 in der Warteschlange." in waiting
    assert "halten Sie die Ruftaste gedrückt" in waiting
    in_call = prompt_text(catalogue, State.IN_CALL, Visit(language="en"))
    assert in_call is not None and "hear this again" not in in_call  # no repeat in a call
    assert prompt_text(catalogue, State.TECHNICIAN, Visit()) is None


async def test_prompts_follow_the_screens_in_the_mode_only_and_never_over_a_call() -> None:
    voice = FakeVoice(seconds=0.3)
    speaker = Speaker(SilentOutput)
    call = {"running": False}
    prompts = SpokenPrompts(
        voice=voice,
        speaker=speaker,
        catalogue=load_catalogue(),
        call_running=lambda: call["running"],
    )
    plain = Visit(language="tr")
    prompts.follow(State.IDLE, plain)  # not in the mode: silent
    await asyncio.sleep(0.05)
    assert voice.said == []
    mode = Visit(language="tr", accessible=True)
    prompts.follow(State.IDLE, mode)
    prompts.follow(State.IDLE, mode)  # the same screen again (a tick): said once
    await _until(lambda: len(prompts.spoken) == 1, "the idle prompt")
    assert voice.said[0][0] == "tr" and "Başla" in voice.said[0][1]
    prompts.repeat()
    await _until(lambda: len(prompts.spoken) == 2, "the idle prompt again")
    assert [s.finished for s in prompts.spoken] == [True, True]
    # A new screen stops the prompt being spoken.
    long_voice = FakeVoice(seconds=5.0)
    prompts = SpokenPrompts(
        voice=long_voice,
        speaker=speaker,
        catalogue=load_catalogue(),
        call_running=lambda: call["running"],
    )
    prompts.follow(State.CHOOSE, mode)
    await _until(lambda: speaker.playing, "the choose prompt to play")
    prompts.follow(State.CONSENT, mode)
    await _until(lambda: speaker.playing and len(long_voice.said) == 2, "the consent prompt")
    # The call's media connects: the prompt stops within a moment, and none starts.
    prompts.follow(State.IN_CALL, mode)
    await _until(lambda: len(long_voice.said) == 3 and speaker.playing, "the call prompt")
    call["running"] = True
    await _until(lambda: bool(prompts.spoken), "the prompt to stop for the call", timeout=1.0)
    assert prompts.spoken[-1].state is State.IN_CALL and not prompts.spoken[-1].finished
    prompts.repeat()
    await asyncio.sleep(0.1)
    assert len(long_voice.said) == 3
    # The mode ends: silence.
    call["running"] = False
    prompts.follow(State.ENDED, mode)
    await _until(lambda: speaker.playing, "the end prompt")
    prompts.follow(State.IDLE, Visit())
    assert not speaker.playing
    await prompts.close()


@pytest.fixture
async def booth_and_advisor(
    make_harness: MakeHarness,  # noqa: F811
) -> AsyncIterator[tuple[Booth, FakeHardware, FakeVoice, Peer]]:
    harness: Harness = await make_harness()
    await harness.add_advisor("alice")
    advisor = await harness.advisor("alice")
    config = BoothConfig(
        server_url=harness.url("/").rstrip("/"),
        credential=await harness.add_booth("Accessible booth"),
        camera=CameraConfig(kind="test-pattern", allow_test_pattern=True),
    )
    fake, voice = FakeHardware(), FakeVoice(seconds=0.2)
    booth = Booth(config, hardware=fake.hardware, voice=voice)
    task = asyncio.create_task(booth.run())
    await _until(lambda: booth.state is State.IDLE, "the booth to be idle")
    yield booth, fake, voice, advisor
    booth.stop()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_holding_the_call_button_turns_the_mode_on_and_then_repeats(
    booth_and_advisor: tuple[Booth, FakeHardware, FakeVoice, Peer],
) -> None:
    booth, fake, voice, advisor = booth_and_advisor
    fake.call_button.hold()  # at idle: the mode, still on idle (the language is to choose)
    await _until(lambda: booth.flow.visit.accessible, "the accessibility mode")
    assert booth.state is State.IDLE
    await _until(lambda: len(voice.said) == 1, "the idle prompt")
    assert "leuchtende Ruftaste" in voice.said[0][1]  # German until a language is chosen
    fake.call_button.hold()  # in the mode: the same prompt again
    await _until(lambda: len(voice.said) == 2, "the idle prompt again")
    assert voice.said[1] == voice.said[0]
    # Short presses go on as before: choose, consent, waiting; each screen says itself.
    for state in (State.CHOOSE, State.CONSENT, State.WAITING):
        fake.call_button.press()
        await _until(lambda state=state: booth.state is state, f"the {state} screen")
    await _until(lambda: len(voice.said) >= 5, "the prompts of three screens")
    assert "Ende-Taste" in voice.said[-1][1]  # waiting: how to cancel
    assert booth.flow.timeouts.limit(State.WAITING, accessible=True) == 3 * 45 * 60.0

    queue = await advisor.receive_queue()
    while not queue["waiting"]:
        queue = await advisor.receive_queue()
    session_id = queue["waiting"][0]["session_id"]
    await advisor.send(type="call_accept", session_id=session_id)
    await _until(lambda: booth.state is State.IN_CALL, "the call")
    await advisor.send(type="hangup", session_id=session_id)
    await _until(lambda: booth.state is State.ENDED, "the end screen")
    assert booth.flow.visit.accessible  # the same person is there
    await _until(lambda: any(s.state is State.ENDED for s in booth.prompts.spoken), "the end")
    fake.call_button.press()  # "Done": idle, and the mode ends with the visit
    await _until(lambda: booth.state is State.IDLE, "idle again")
    assert not booth.flow.visit.accessible


async def test_without_a_voice_the_mode_keeps_its_screens_and_nothing_fails() -> None:
    """A booth without espeak-ng (a demo): the mode is silent, repeat does nothing."""
    prompts = SpokenPrompts(
        voice=None,
        speaker=Speaker(SilentOutput),
        catalogue=load_catalogue(),
        call_running=lambda: False,
    )
    assert not prompts.available
    prompts.follow(State.IDLE, Visit(accessible=True))
    prompts.repeat()
    await asyncio.sleep(0.05)
    assert prompts.spoken == [] and not prompts.speaking
    await prompts.close()
    await prompts.close()
