"""The booth (kiosk/app.py) against an in-process server: every state has its lights (an
enrolment refusal used to end in ``KeyError: State.ENROLMENT``), and the waiting screen's
self-view gets camera frames before any call has a peer."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from kiosk.app import LIGHTS, Booth
from kiosk.config import BoothConfig, CameraConfig
from kiosk.flow import State
from kiosk.hardware import BUSY, FakeHardware
from kiosk.media import read_stamp
from tests.kiosk.test_booth_lights import LightWatch, _until, booth_with_server  # noqa: F401
from tests.server.conftest import Harness, MakeHarness, Peer, make_harness  # noqa: F401

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
