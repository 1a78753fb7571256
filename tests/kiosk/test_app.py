"""The booth (kiosk/booth/) against an in-process server: every state has its lights (an
enrolment refusal used to end in ``KeyError: State.ENROLMENT``), the waiting screen's
self-view gets camera frames before any call has a peer, and an appointment code (typed, or a
QR code shown to the camera) is checked with the server before the consent screen; an address
that answers 404 is explained on the screen instead of a raw error."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from kiosk.booth import LIGHTS, Booth
from kiosk.config import BoothConfig, CameraConfig
from kiosk.flow import ChooseAppointment, Consent, Digit, Start, State, SubmitCode
from kiosk.hardware import BUSY, FakeHardware
from kiosk.i18n import load_catalogue
from kiosk.link import LinkState
from kiosk.media import PyAVSource, read_stamp
from server.keys import SWITCHBOARD
from tests.kiosk.conftest import qr_video
from tests.kiosk.test_booth_lights import LightWatch, _until, booth_with_server  # noqa: F401
from tests.server.conftest import Harness, MakeHarness, Peer, make_harness  # noqa: F401
from tests.server.test_join import _code_for

pytestmark = pytest.mark.usefixtures("loopback_ice")

Setup = tuple[Harness, Booth, FakeHardware, LightWatch, Peer]


def test_every_state_has_its_lights() -> None:
    assert set(LIGHTS) == set(State)


async def test_a_refused_enrolment_shows_the_reason_and_no_error(
    make_harness: MakeHarness,  # noqa: F811
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    harness = await make_harness()
    config = BoothConfig(
        server_url=harness.url("/").rstrip("/"),
        enrolment_token="vbe_" + "N" * 43,  # well formed, but the server never issued it
        identity_dir=tmp_path / "data",
        camera=CameraConfig(kind="test-pattern", allow_test_pattern=True),
    )
    fake = FakeHardware()
    booth = Booth(config, hardware=fake.hardware)
    task = asyncio.create_task(booth.run())
    try:
        await _until(lambda: booth.flow.enrolment_problem is not None, "the refusal")
        assert booth.state is State.ENROLMENT
        await _until(lambda: booth.fanout is not None, "the camera, for the enrolment code")
    finally:
        booth.stop()
        await task
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]
    assert failures == [], [r.getMessage() for r in failures]
    assert LIGHTS[State.ENROLMENT][0] is BUSY
    assert fake.status_led.mode == "blink"  # waiting for the technician's code


async def test_the_waiting_screen_shows_the_camera_before_the_call(
    booth_with_server: Setup,  # noqa: F811
) -> None:
    _, booth, _, _, _ = booth_with_server
    assert booth.request_call()
    await _until(lambda: booth.state is State.WAITING, "the waiting screen")
    await _until(lambda: booth.fanout is not None, "the camera for the self-view")
    assert booth.fanout is not None
    source = booth.fanout.source
    await _until(lambda: source.latest_preview is not None, "a self-view frame")
    seen: set[int] = set()
    for _ in range(50):
        preview = source.latest_preview
        assert preview is not None
        stamp = read_stamp(preview.to_ndarray(format="rgb24"))
        if stamp is not None:
            seen.add(stamp.frame_number)
        if len(seen) >= 5:
            break
        await asyncio.sleep(0.05)
    assert len(seen) >= 5, "the self-view does not move"
    assert booth.fanout.subscribers == 0  # nobody receives video yet
    assert source.frames_encoded == 0  # and nothing was encoded for nobody


async def _booth(
    harness: Harness, name: str, **kwargs: Any
) -> tuple[Booth, list[State], asyncio.Task[None]]:
    config = BoothConfig(
        server_url=harness.url("/").rstrip("/"),
        credential=await harness.add_booth(name),
        camera=CameraConfig(kind="test-pattern", allow_test_pattern=True),
    )
    states: list[State] = []
    booth = Booth(config, hardware=FakeHardware().hardware, on_state=states.append, **kwargs)
    task = asyncio.create_task(booth.run())
    await _until(lambda: booth.state is State.IDLE, "the booth to be idle")
    return booth, states, task


async def _type(booth: Booth, code: str) -> None:
    for event in (Start(), ChooseAppointment(), *(Digit(d) for d in code), SubmitCode()):
        booth.post(event)


async def test_a_wrong_code_is_refused_before_the_consent_screen(
    make_harness: MakeHarness,  # noqa: F811
) -> None:
    harness = await make_harness()
    await harness.add_advisor("alice")
    code = await _code_for(harness, "alice")
    booth, states, task = await _booth(harness, "Keypad booth")
    try:
        wrong = "87654321" if code != "87654321" else "12345678"
        await _type(booth, wrong)
        await _until(lambda: booth.flow.visit.problem == "wrong_code", "the refusal")
        assert booth.state is State.CODE_ENTRY
        assert booth.flow.visit.code == ""  # the keypad is empty again, saying why
        assert State.CONSENT not in states
        assert harness.app[SWITCHBOARD].sessions == {}

        # The right code goes on to the consent screen, and from there to the lobby.
        for event in (*(Digit(d) for d in code), SubmitCode()):
            booth.post(event)
        await _until(lambda: booth.state is State.CONSENT, "the consent screen")
        booth.post(Consent())
        await _until(lambda: booth.session_id is not None, "the appointment's lobby")
    finally:
        booth.stop()
        await task


async def test_an_appointment_qr_code_shown_to_the_camera_is_checked_then_consented(
    make_harness: MakeHarness,  # noqa: F811
    tmp_path: Path,
) -> None:
    harness = await make_harness()
    await harness.add_advisor("alice")
    code = await _code_for(harness, "alice")
    video = qr_video(tmp_path / "invitation.mp4", f"https://vb.example.org/join/t0k3n?code={code}")

    async def camera() -> PyAVSource:
        source = PyAVSource(url=str(video), width=640, height=480, fps=15, loop=True)
        await source.start()
        return source

    booth, states, task = await _booth(harness, "QR booth", camera=camera)
    try:
        booth.post(Start())
        booth.post(ChooseAppointment())
        await _until(lambda: booth.state is State.CONSENT, "the code read and checked", 20.0)
        assert booth.flow.visit.code == code
        assert states.index(State.CODE_ENTRY) < states.index(State.CONSENT)
    finally:
        booth.stop()
        await task


@pytest.fixture
async def no_videobooth_here(
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]],
) -> str:
    """An address that answers, but with 404 to everything (a web server without Videobooth)."""
    server = await aiohttp_server(web.Application())
    return str(server.make_url("/")).rstrip("/")


def _screen_text(booth: Booth) -> list[str]:
    """Every text the booth's screen shows now (drawn with SDL's dummy driver)."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    import pygame

    from kiosk.ui.booth_view import view_of
    from kiosk.ui.screens import BoothScreens, Theme

    pygame.display.init()
    pygame.font.init()
    screens = BoothScreens((1024, 600), Theme(), load_catalogue())
    screens.draw(pygame.Surface((1024, 600)), view_of(booth))
    return screens.drawn


async def test_a_server_address_that_answers_404_is_explained_on_the_screen(
    no_videobooth_here: str,
) -> None:
    config = BoothConfig(
        server_url=no_videobooth_here,
        credential="b00th.s3cret",
        camera=CameraConfig(kind="test-pattern", allow_test_pattern=True),
    )
    booth = Booth(config, hardware=FakeHardware().hardware)
    task = asyncio.create_task(booth.run())
    try:
        await _until(lambda: booth.flow.server_not_found, "the booth to notice the 404")
        assert booth.state is State.OFFLINE
        assert booth.link.state is LinkState.NOT_FOUND
        shown = _screen_text(booth)
        assert load_catalogue().text("de", "offline.not_found") in shown
        assert not any("404: Not Found" in text for text in shown)
    finally:
        booth.stop()
        await task


async def test_enrolment_at_an_address_that_answers_404_is_explained_and_retried(
    no_videobooth_here: str, tmp_path: Path
) -> None:
    config = BoothConfig(
        server_url=no_videobooth_here,
        enrolment_token="vbe_" + "T" * 43,
        identity_dir=tmp_path / "data",
        camera=CameraConfig(kind="test-pattern", allow_test_pattern=True),
        reconnect_max_seconds=1.0,
    )
    booth = Booth(config, hardware=FakeHardware().hardware)
    task = asyncio.create_task(booth.run())
    try:
        await _until(lambda: booth.flow.server_not_found, "the booth to notice the 404")
        assert booth.state is State.OFFLINE  # enrolling with the card's token, not connected
        assert "not a Videobooth server" in (booth.enrolment_problem or "")
        shown = _screen_text(booth)
        assert load_catalogue().text("de", "offline.not_found") in shown
        # The token is kept for when the address is right: it is not a refusal.
        assert booth.flow.enrolment_problem is None
    finally:
        booth.stop()
        await task
