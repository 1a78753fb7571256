"""A real booth (its flow, link and camera) against an in-process server, with fake buttons and
lights: the camera light is lit while and only while the camera streams — across waiting, a
call, the hang-up and a camera fault — and the buttons drive the flow like taps."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from kiosk.booth import Booth
from kiosk.config import BoothConfig, CameraConfig
from kiosk.flow import State
from kiosk.hardware import FakeHardware
from tests.server.conftest import Harness, MakeHarness, Peer, make_harness  # noqa: F401

pytestmark = pytest.mark.usefixtures("loopback_ice")


class LightWatch:
    """Samples the booth every few milliseconds: a streaming camera (not turned off by the
    citizen) with a dark light is a broken promise, and a lit light with no camera a false
    alarm (allowed only while the camera is being opened or closed)."""

    def __init__(self, booth: Booth, fake: FakeHardware) -> None:
        self.booth, self.fake = booth, fake
        self.dark_while_streaming = 0
        self.samples = 0

    async def run(self) -> None:
        while True:
            showing = self.booth.fanout is not None and not self.booth.camera.off
            if showing and not self.fake.camera_led.is_lit:
                self.dark_while_streaming += 1
            self.samples += 1
            await asyncio.sleep(0.005)


async def _until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _settled(booth: Booth, fake: FakeHardware) -> bool:
    return fake.camera_led.is_lit == (booth.fanout is not None)


@pytest.fixture
async def booth_with_server(
    make_harness: MakeHarness,  # noqa: F811
) -> AsyncIterator[tuple[Harness, Booth, FakeHardware, LightWatch, Peer]]:
    harness = await make_harness()
    await harness.add_advisor("alice")
    advisor = await harness.advisor("alice")
    credential = await harness.add_booth("Lights booth")
    config = BoothConfig(
        server_url=harness.url("/").rstrip("/"),
        credential=credential,
        camera=CameraConfig(kind="test-pattern", allow_test_pattern=True),
    )
    fake = FakeHardware()
    booth = Booth(config, hardware=fake.hardware)
    watch = LightWatch(booth, fake)
    tasks = [asyncio.create_task(booth.run()), asyncio.create_task(watch.run())]
    await _until(lambda: booth.state is State.IDLE, "the booth to be idle")
    yield harness, booth, fake, watch, advisor
    booth.stop()
    for task in tasks[1:]:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*tasks)


async def test_the_camera_light_follows_the_camera_through_a_call(
    booth_with_server: tuple[Harness, Booth, FakeHardware, LightWatch, Peer],
) -> None:
    _, booth, fake, watch, advisor = booth_with_server
    assert not fake.camera_led.is_lit
    assert fake.status_led.mode == "on"  # ready

    # Three presses of the call button: idle -> choose -> consent -> waiting (self-view on).
    for expected in (State.CHOOSE, State.CONSENT, State.WAITING):
        fake.call_button.press()
        await _until(lambda expected=expected: booth.state is expected, f"state {expected}")
    await _until(lambda: booth.fanout is not None, "the camera to open for the self-view")
    assert fake.camera_led.is_lit
    assert fake.status_led.mode == "blink"  # busy

    queue = await advisor.receive_queue()
    while not queue["waiting"]:
        queue = await advisor.receive_queue()
    await advisor.send(type="call_accept", session_id=queue["waiting"][0]["session_id"])
    await _until(lambda: booth.state is State.IN_CALL, "the call")
    assert (await advisor.receive_type("offer"))["sdp"].startswith("v=0")
    assert fake.camera_led.is_lit

    # The advisor hangs up: the booth says nothing was stored, and the camera is off.
    await advisor.send(type="hangup", session_id=queue["waiting"][0]["session_id"])
    await _until(lambda: booth.state is State.ENDED, "the end screen")
    # The light goes out once the camera has stopped (closing it takes a moment).
    await _until(lambda: booth.fanout is None and not fake.camera_led.is_lit, "the camera off")
    assert watch.dark_while_streaming == 0
    assert watch.samples > 10


async def test_the_end_button_cancels_and_the_light_goes_out(
    booth_with_server: tuple[Harness, Booth, FakeHardware, LightWatch, Peer],
) -> None:
    _, booth, fake, watch, _ = booth_with_server
    for _ in range(3):  # as fast as a hand can: each press is decided when it is handled
        fake.call_button.press()
    await _until(lambda: booth.fanout is not None, "the self-view")
    fake.end_button.press()
    await _until(lambda: booth.state is State.IDLE, "idle again")
    await _until(lambda: _settled(booth, fake), "the light to settle")
    assert not fake.camera_led.is_lit
    assert watch.dark_while_streaming == 0


async def test_a_camera_fault_leaves_the_light_off(
    make_harness: MakeHarness,  # noqa: F811
) -> None:
    harness = await make_harness()
    config = BoothConfig(
        server_url=harness.url("/").rstrip("/"),
        credential=await harness.add_booth("Broken camera booth"),
        camera=CameraConfig(kind="v4l2", device="/dev/video-that-does-not-exist"),
    )
    fake = FakeHardware()
    booth = Booth(config, hardware=fake.hardware)
    task = asyncio.create_task(booth.run())
    try:
        await _until(lambda: booth.state is State.IDLE, "idle")
        for _ in range(3):
            fake.call_button.press()
        await _until(lambda: booth.camera_fault is not None, "the camera fault")
        assert booth.fanout is None
        assert not fake.camera_led.is_lit
        assert "on" in fake.camera_led.history  # it was lit while the camera was being opened
        status = await booth.status()
        assert status["camera_light"] is False
        assert status["camera_fault"]
    finally:
        booth.stop()
        await task


async def test_call_and_end_held_together_open_the_technician_pin(
    booth_with_server: tuple[Harness, Booth, FakeHardware, LightWatch, Peer],
) -> None:
    _, booth, fake, _, _ = booth_with_server
    booth.flow.technician_pin_digest = "set"  # any configured PIN opens the PIN screen
    fake.end_button.is_pressed = True  # held down
    fake.call_button.press()
    await _until(lambda: booth.state is State.TECHNICIAN_PIN, "the PIN screen")
