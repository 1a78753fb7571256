"""Buttons, lights and presence sensors through gpiozero's real code path on its mock pins."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import pytest
from gpiozero import LED, Device
from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin, MockTriggerPin

from kiosk.config import HardwareConfig, PresenceKind
from kiosk.hardware import (
    FAULT,
    OFF,
    READY,
    BoothHardware,
    CameraLight,
    FakeButton,
    HardwareError,
    NullButton,
    NullLed,
    StatusLight,
    open_hardware,
    pins,
)
from kiosk.hardware.gpio import GpioButton, GpioLed, GpioPresenceSensor, open_gpio_hardware

CALL, CALL_LAMP, END, CAMERA, STATUS, PIR = 17, 27, 22, 23, 24, 4
WIRED = HardwareConfig(
    call_button=CALL,
    call_button_led=CALL_LAMP,
    end_button=END,
    camera_led=CAMERA,
    status_led=STATUS,
)


@pytest.fixture
def mock_factory() -> Iterator[MockFactory]:
    """gpiozero's default pin factory is mock pins for the test, and what it was afterwards."""
    saved = Device.pin_factory
    factory = MockFactory()
    Device.pin_factory = factory
    try:
        yield factory
    finally:
        factory.reset()
        Device.pin_factory = saved


@pytest.fixture
async def hardware(mock_factory: MockFactory) -> AsyncIterator[BoothHardware]:
    # No pin factory passed: gpiozero's default (the mock) is found the way it is on a Pi.
    hardware = await open_hardware(WIRED)
    assert hardware.unavailable is None
    try:
        yield hardware
    finally:
        await hardware.close()


async def wait_for(event: asyncio.Event) -> None:
    await asyncio.wait_for(event.wait(), timeout=2)


def pin(factory: MockFactory, number: int) -> MockPin:
    result: MockPin = factory.pin(number)
    return result


# ---------------------------------------------------------------- buttons


async def test_a_press_reaches_the_loop_thread(
    hardware: BoothHardware, mock_factory: MockFactory
) -> None:
    assert isinstance(hardware.call_button, GpioButton)
    pressed = asyncio.Event()
    threads: list[int] = []

    def on_press() -> None:
        threads.append(threading.get_ident())
        pressed.set()

    hardware.call_button.when_pressed = on_press
    button = pin(mock_factory, CALL)
    # The press comes from another thread, as lgpio's edge callbacks do on a Pi.
    await asyncio.to_thread(button.drive_low)
    await wait_for(pressed)
    assert threads == [threading.get_ident()]
    assert hardware.call_button.is_pressed
    await asyncio.to_thread(button.drive_high)
    assert not hardware.call_button.is_pressed
    pressed.clear()
    await asyncio.to_thread(button.drive_low)
    await wait_for(pressed)
    assert len(threads) == 2
    button.drive_high()  # a button held while closing keeps gpiozero's hold thread a second


async def test_a_held_button_reports_as_gpiozero_does_and_as_the_fake_does(
    mock_factory: MockFactory,
) -> None:
    """A short press is pressed, released; a long one pressed, held, released, on the loop:
    gpiozero's own sequence, which the fake button reproduces."""
    hardware = await open_hardware(replace(WIRED, hold_seconds=0.5))
    fake = FakeButton()
    try:
        seen: dict[str, list[str]] = {"gpio": [], "fake": []}
        released = asyncio.Event()
        for name, button in (("gpio", hardware.call_button), ("fake", fake)):
            events = seen[name]
            button.when_pressed = lambda events=events: events.append("pressed")
            button.when_held = lambda events=events: events.append("held")

            def on_release(events: list[str] = events) -> None:
                events.append("released")
                released.set()

            button.when_released = on_release
        line = pin(mock_factory, CALL)
        for hold in (0.0, 0.8):
            released.clear()
            await asyncio.to_thread(line.drive_low)
            await asyncio.sleep(hold)
            await asyncio.to_thread(line.drive_high)
            await wait_for(released)
        fake.press()
        fake.hold()
        assert seen["gpio"] == ["pressed", "released", "pressed", "held", "released"]
        assert seen["fake"] == seen["gpio"]
    finally:
        await hardware.close()


async def test_each_button_reports_to_its_own_handler(
    hardware: BoothHardware, mock_factory: MockFactory
) -> None:
    presses: list[str] = []
    ended = asyncio.Event()
    hardware.call_button.when_pressed = lambda: presses.append("call")

    def on_end() -> None:
        presses.append("end")
        ended.set()

    hardware.end_button.when_pressed = on_end
    end = pin(mock_factory, END)
    await asyncio.to_thread(end.drive_low)
    await wait_for(ended)
    end.drive_high()
    assert presses == ["end"]


async def test_a_failing_handler_is_logged_and_the_next_press_arrives(
    hardware: BoothHardware, mock_factory: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []
    second = asyncio.Event()

    def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        second.set()

    hardware.call_button.when_pressed = flaky
    button = pin(mock_factory, CALL)
    for _ in range(2):
        await asyncio.to_thread(button.drive_low)
        await asyncio.to_thread(button.drive_high)
    await wait_for(second)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        "hardware: the call button handler failed"
    ]


async def test_no_press_is_reported_after_close(
    hardware: BoothHardware, mock_factory: MockFactory
) -> None:
    presses: list[int] = []
    hardware.call_button.when_pressed = lambda: presses.append(1)
    await hardware.close()
    await hardware.close()
    pin(mock_factory, CALL).drive_low()
    await asyncio.sleep(0.01)
    assert presses == []
    assert not hardware.call_button.is_pressed
    assert not hardware.status_led.is_lit
    assert not pin(mock_factory, CAMERA).state


# ---------------------------------------------------------------- lights


async def test_status_pins_follow_the_patterns(
    hardware: BoothHardware, mock_factory: MockFactory
) -> None:
    status = pin(mock_factory, STATUS)
    light = StatusLight(hardware.status_led)
    assert not status.state
    light.show(READY)
    assert status.state and hardware.status_led.is_lit
    status.clear_states()
    await asyncio.sleep(0.15)
    assert len(status.states) == 1  # steady: no change at all
    light.show(FAULT)
    status.clear_states()
    await asyncio.sleep(0.45)
    light.show(OFF)
    assert not status.state
    changes = status.states[1:-1]  # the first and last are cut by the test's own timing
    assert [c.state for c in changes[:3]] == [False, True, False]
    # On and off for about FAULT's 0.1 s each (loosely: test machines are busy).
    for change in changes[1:]:
        assert 0.05 <= change.timestamp <= 0.25, status.states


async def test_camera_and_button_lamps_follow_their_lights(
    hardware: BoothHardware, mock_factory: MockFactory
) -> None:
    camera = CameraLight(hardware.camera_led)
    camera.camera_streaming(True)
    assert pin(mock_factory, CAMERA).state
    camera.camera_streaming(False)
    assert not pin(mock_factory, CAMERA).state
    lamp = StatusLight(hardware.call_button.light, name="call button lamp")
    lamp.show(READY)
    assert pin(mock_factory, CALL_LAMP).state
    assert isinstance(hardware.end_button.light, NullLed)  # the end button has no lamp here
    assert not hardware.end_button.light.is_lit


async def test_dimmed_leds_keep_their_brightness_steady_and_blinking() -> None:
    factory = MockFactory(pin_class=MockPWMPin)
    hardware = await open_hardware(
        HardwareConfig(status_led=STATUS, led_brightness=0.25), pin_factory=factory
    )
    try:
        assert isinstance(hardware.status_led, GpioLed)
        status = pin(factory, STATUS)
        light = StatusLight(hardware.status_led)
        light.show(READY)
        assert status.state == 0.25
        status.clear_states()
        light.show(FAULT)
        await asyncio.sleep(0.3)
        light.show(OFF)
        assert status.state == 0.0
        assert {c.state for c in status.states[1:]} == {0.25, 0.0}
        assert len(status.states) >= 4  # it blinked
    finally:
        await hardware.close()


# ---------------------------------------------------------------- presence


async def test_pir_presence_events_arrive_on_the_loop(mock_factory: MockFactory) -> None:
    config = HardwareConfig(presence=PresenceKind.PIR, presence_pin=PIR)
    hardware = await open_hardware(config)
    try:
        sensor = hardware.presence
        assert isinstance(sensor, GpioPresenceSensor)
        assert not sensor.present
        arrived, left = asyncio.Event(), asyncio.Event()
        sensor.when_present = arrived.set
        sensor.when_absent = left.set
        pir = pin(mock_factory, PIR)
        await asyncio.to_thread(pir.drive_high)
        await wait_for(arrived)
        assert sensor.present
        await asyncio.to_thread(pir.drive_low)
        await wait_for(left)
        assert not sensor.present
    finally:
        await hardware.close()


async def test_distance_sensor_says_who_is_nearer_than_the_threshold() -> None:
    factory = MockFactory()
    echo = factory.pin(6)
    # The echo's length is the distance: 12 ms is 2 m (nobody), 2 ms is 0.34 m (someone).
    trigger = factory.pin(5, pin_class=MockTriggerPin, echo_pin=echo, echo_time=0.012)
    config = HardwareConfig(
        presence=PresenceKind.DISTANCE,
        presence_trigger_pin=5,
        presence_echo_pin=6,
        presence_distance_m=1.0,
    )
    hardware = await open_hardware(config, pin_factory=factory)
    try:
        sensor = hardware.presence
        assert sensor is not None and not sensor.present
        arrived, left = asyncio.Event(), asyncio.Event()
        sensor.when_present = arrived.set
        sensor.when_absent = left.set
        trigger.echo_time = 0.002
        await wait_for(arrived)
        assert sensor.present
        trigger.echo_time = 0.012
        await wait_for(left)
        assert not sensor.present
    finally:
        await hardware.close()


# ---------------------------------------------------------------- what cannot be used


async def test_a_pin_in_use_is_a_clear_error_and_nothing_stays_claimed(
    mock_factory: MockFactory,
) -> None:
    squatter = LED(END)  # another program (or a leftover device) holds the end button's pin
    try:
        with pytest.raises(HardwareError) as raised:
            open_gpio_hardware(WIRED, loop=asyncio.get_running_loop())
        assert str(raised.value).startswith(
            "hardware.end_button (GPIO22) cannot be used: pin GPIO22 is already in use by"
        )
    finally:
        squatter.close()
    # What was opened before the failure was closed: the call button's pins are free again.
    LED(CALL).close()
    LED(CALL_LAMP).close()


async def test_a_pin_in_use_leaves_the_booth_on_stand_ins(
    mock_factory: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    squatter = LED(CAMERA)
    try:
        hardware = await open_hardware(WIRED)
    finally:
        squatter.close()
    assert isinstance(hardware.call_button, NullButton)
    assert hardware.unavailable is not None
    assert hardware.unavailable.startswith("hardware.camera_led (GPIO23) cannot be used: ")
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert errors == [
        f"hardware: buttons and lights off: {hardware.unavailable}; the touch screen still works"
    ]


async def test_no_pin_driver_leaves_the_booth_on_stand_ins(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(Device, "pin_factory", None)
    # gpiozero's own choice is not asked: this machine is no Raspberry Pi, and says so.
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    monkeypatch.setattr(pins, "read_board", pins.Board)
    hardware = await open_hardware(WIRED)
    assert hardware.unavailable == (
        "no GPIO pin driver can be used on this board (not a Raspberry Pi): lgpio: this is not "
        "a Raspberry Pi (no board revision in /proc/device-tree or /proc/cpuinfo): set "
        "hardware.gpio_chip to drive that gpiochip's lines by offset; rpigpio: RPi.GPIO drives "
        "a Raspberry Pi's pins only; native: gpiozero's native driver drives a Raspberry Pi's "
        "pins only"
    )
    assert hardware.pin_driver == "none"
    assert Device.pin_factory is None
    # Each fallback is a warning with its reason; the end an error.
    assert [r.levelno for r in caplog.records if r.levelno >= logging.WARNING] == [
        logging.WARNING,
        logging.WARNING,
        logging.WARNING,
        logging.ERROR,
    ]
