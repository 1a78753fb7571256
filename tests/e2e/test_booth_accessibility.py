"""The booth's accessibility mode end to end: a real booth (its own window code on SDL's dummy
driver, its own display loop) against a real server and coturn, the advisor and an interpreter
in Chromium. The citizen taps the idle screen's control; the mode's screens are saved in every
language (test-output/e2e/accessible/); the interpreter's tile is pinned large by a tap and
must keep at least 20 frames a second drawn on the booth's screen for 5 s (EN 301 549, sign
language), measured by the screen's own frame meter."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pygame
import pytest

from kiosk.__main__ import drive_display
from kiosk.flow import LANGUAGES, AccessibleMode, ChooseWalkIn, Consent, Start, State
from kiosk.i18n import load_catalogue
from kiosk.ui.actions import Action
from kiosk.ui.screens import Target
from tests.e2e.booth_screen import SCREENSHOTS, BoothScreen, booth_config, running_booth
from tests.e2e.conftest import Server, login_advisor, poll
from tests.e2e.journeys import citizen_page, invite_link, playing, three_clicks

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

OUT = SCREENSHOTS / "accessible"
#: EN 301 549 6.5.2 (resolution and frame rate for sign language communication).
MIN_FPS = 20.0
MEASURE_SECONDS = 5.0


async def _tap(screen: BoothScreen, which: Any, what: str) -> Target:
    """Tap the target ``which`` picks, as a finger would: SDL's own mouse events, read by the
    booth's display loop."""
    target: Target | None = None

    def found() -> bool:
        nonlocal target
        target = next((t for t in screen.display.targets if which(t)), None)
        return target is not None

    await screen.until(found, what)
    assert target is not None
    for kind in (pygame.MOUSEBUTTONDOWN, pygame.MOUSEBUTTONUP):
        pygame.event.post(pygame.event.Event(kind, pos=target.rect.center, button=1))
    return target


@pytest.mark.solo  # measures frames a second
async def test_the_accessibility_mode_and_the_interpreter_pinned_at_20_frames_a_second(
    relayed_server: Server, browser: Any
) -> None:
    catalogue = load_catalogue()
    advisor = await login_advisor(browser, relayed_server)
    credential = relayed_server.add_booth("Branch 1 booth")
    config = booth_config(relayed_server.url, credential=credential)
    async with running_booth(config, OUT) as screen:
        booth = screen.booth
        drawer = asyncio.create_task(drive_display(booth, screen.display))
        try:
            await screen.state(State.IDLE)
            control = await _tap(screen, lambda t: t.event == AccessibleMode(), "the control")
            assert control.label == catalogue.text("de", "a11y.on")
            await screen.until(lambda: booth.flow.visit.accessible, "the accessibility mode")
            for language in LANGUAGES:
                _, texts = screen.save(f"idle-{language}", language)
                assert catalogue.text(language, "a11y.repeat") in texts
                assert not screen.display.screens.overflows, screen.display.screens.overflows

            # Three taps to the queue, in the mode.
            await _tap(screen, lambda t: t.event == Start(), "Start")
            await screen.state(State.CHOOSE)
            await _tap(screen, lambda t: t.event == ChooseWalkIn(None), "an advisor now")
            await screen.state(State.CONSENT)
            await _tap(screen, lambda t: t.event == Consent(), "agree and call")
            await screen.state(State.WAITING)
            await screen.until(lambda: booth.flow.visit.queue_place is not None, "the queue")
            for language in LANGUAGES:
                _, texts = screen.save(f"waiting-{language}", language)
                assert catalogue.text(language, "a11y.mode") in texts
                assert not screen.display.screens.overflows, screen.display.screens.overflows
            if booth.prompts.available:  # espeak-ng installed: the screens spoke
                await screen.until(
                    lambda: (
                        any(s.state is State.WAITING for s in booth.prompts.spoken)
                        or booth.prompts.speaking
                    ),
                    "the waiting screen's prompt",
                )

                # The Repeat button on the screen says the screen's prompt again.
                def waiting_said() -> int:
                    return sum(s.state is State.WAITING for s in booth.prompts.spoken)

                await screen.until(
                    lambda: waiting_said() >= 1 and not booth.prompts.speaking,
                    "the waiting screen's prompt to end",
                    60,
                )
                said = waiting_said()
                await _tap(screen, lambda t: t.action is Action.REPEAT, "Repeat")
                await screen.until(lambda: waiting_said() > said, "the waiting prompt again", 60)

            # The advisor takes the call and invites an interpreter, who joins by link.
            await advisor.get_by_role("button", name="Accept call from Branch 1 booth").click(
                timeout=30_000
            )
            await playing(advisor, "#remote-video", "the booth's video at the advisor")
            await screen.state(State.IN_CALL)
            await screen.until(lambda: booth.media.connected, "the call's media", 30)
            link = await invite_link(advisor, "Sign language")
            context, interpreter = await citizen_page(browser)
            await three_clicks(interpreter, link)
            admit = advisor.get_by_role("button", name="Admit Sign language into the call")
            await admit.click(timeout=15_000)
            await playing(interpreter, "#tiles li video", "the booth's video at the interpreter")
            await screen.until(
                lambda: any(leg.received.video_frames > 30 for leg in booth.media.others.values()),
                "the interpreter's video at the booth",
                30,
            )
            (participant_id,) = booth.media.others
            screen.save("call-tile")

            # The citizen taps the tile: the interpreter takes the stage.
            tile = await _tap(screen, lambda t: t.action is Action.PIN, "the interpreter's tile")
            assert tile.label == catalogue.text("de", "call.pin", name="Sign language")
            await screen.until(lambda: booth.pinned == participant_id, "the interpreter pinned")
            meter = screen.display.screens.meter
            leg = booth.media.others[participant_id]
            await asyncio.sleep(1.0)  # settled
            started = time.monotonic()
            drawn, received = meter.count(participant_id), leg.received.video_frames
            await asyncio.sleep(MEASURE_SECONDS)
            seconds = time.monotonic() - started
            fps = (meter.count(participant_id) - drawn) / seconds
            received_fps = (leg.received.video_frames - received) / seconds
            print(
                f"\ninterpreter pinned large on the booth's screen: {fps:.1f} frames a second "
                f"drawn over {seconds:.1f} s, of {received_fps:.1f} received (the advisor's "
                f"tile: {meter.fps('advisor'):.1f} drawn)"
            )
            screen.save("call-interpreter-pinned")
            assert fps >= MIN_FPS, f"{fps:.1f} frames a second drawn, EN 301 549 wants 20"
            # No prompt speaks over the call.
            assert not booth.prompts.speaking

            # A tap on the tile gives the stage back to the advisor.
            await _tap(screen, lambda t: t.action is Action.PIN, "the advisor's tile")
            await screen.until(lambda: booth.pinned is None, "the advisor on the stage")
            await poll(
                lambda: advisor.evaluate("() => document.querySelectorAll('#tiles li').length"),
                10,
                "the interpreter's tile at the advisor",
            )
            await context.close()
        finally:
            drawer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drawer
