"""Buttons and lights without GPIO: the patterns, the lights' contracts, the fakes, the
stand-ins, and the [hardware] configuration's refusals."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.config import BoothConfigError, HardwareConfig, PresenceKind, load_config
from kiosk.hardware import (
    BUSY,
    FAULT,
    OFF,
    READY,
    CameraLight,
    FakeButton,
    FakeHardware,
    FakeLed,
    FakePresenceSensor,
    NullButton,
    NullLed,
    Pattern,
    StatusLight,
    null_hardware,
    open_hardware,
)

GOOD = 'server_url = "https://vb.example.org"\ncredential = "abc.def"\n'

# ---------------------------------------------------------------- patterns and lights


def test_patterns_are_data_a_light_can_show() -> None:
    assert (READY.on_time, READY.off_time) == (1.0, 0.0)
    assert BUSY.on_time > FAULT.on_time  # slow blink versus fast
    led = FakeLed()
    for pattern in (READY, BUSY, FAULT, OFF):
        pattern.show(led)
    assert led.history == ["on", "blink 0.5/0.5", "blink 0.1/0.1", "off"]


@pytest.mark.parametrize(
    ("on_time", "off_time", "message"),
    [
        (0.0, 0.0, "pattern odd: on_time and off_time cannot both be 0"),
        (-1.0, 1.0, "pattern odd: times must be finite and not negative"),
        (float("inf"), 1.0, "pattern odd: times must be finite and not negative"),
    ],
)
def test_a_pattern_that_cannot_be_shown_is_refused(
    on_time: float, off_time: float, message: str
) -> None:
    with pytest.raises(ValueError, match=r"^pattern odd: ") as raised:
        Pattern("odd", on_time, off_time)
    assert str(raised.value) == message


def test_status_light_starts_dark_and_does_not_restart_a_blink() -> None:
    led = FakeLed()
    light = StatusLight(led)
    assert light.pattern is OFF
    light.show(BUSY)
    light.show(BUSY)  # a repeated state must not make the blink stutter
    light.show(READY)
    light.show(FAULT)
    assert led.history == ["off", "blink 0.5/0.5", "on", "blink 0.1/0.1"]
    assert light.pattern is FAULT


def test_camera_light_is_lit_exactly_while_the_camera_streams() -> None:
    led = FakeLed()
    led.on()  # whatever the lamp was doing before
    camera = CameraLight(led)
    assert not led.is_lit and not camera.streaming
    camera.camera_streaming(True)
    assert led.is_lit and camera.streaming
    camera.camera_streaming(True)
    camera.camera_streaming(False)
    assert not led.is_lit and not camera.streaming
    assert led.history == ["on", "off", "on", "on", "off"]


# ---------------------------------------------------------------- fakes


def test_fake_button_calls_back_while_pressed_and_counts() -> None:
    button = FakeButton()
    seen: list[bool] = []
    button.press()  # no handler yet: nothing happens, but the press counts
    button.when_pressed = lambda: seen.append(button.is_pressed)
    button.press()
    assert seen == [True]
    assert (button.presses, button.is_pressed) == (2, False)
    button.close()
    button.press()
    assert (seen, button.presses, button.light.closed) == ([True], 2, True)


def test_fake_presence_fires_only_on_changes() -> None:
    sensor = FakePresenceSensor()
    events: list[str] = []
    sensor.when_present = lambda: events.append("present")
    sensor.when_absent = lambda: events.append("absent")
    for present in (False, True, True, False):
        sensor.set_present(present)
    assert events == ["present", "absent"]
    assert sensor.history == [True, False]
    assert not sensor.present
    assert FakePresenceSensor(present=True).present


def test_fake_led_ignores_changes_after_close() -> None:
    led = FakeLed()
    led.blink(0.2, 0.3)
    assert led.is_lit and led.blink_times == (0.2, 0.3)
    led.close()
    led.close()
    led.on()
    assert led.history == ["blink 0.2/0.3", "closed"]
    assert not led.is_lit


async def test_booth_hardware_closes_every_part_once() -> None:
    fakes = FakeHardware()
    await fakes.hardware.close()
    await fakes.hardware.close()
    assert fakes.call_button.closed and fakes.end_button.closed
    assert fakes.call_button.light.history == ["closed"]
    assert fakes.camera_led.closed and fakes.status_led.closed
    assert fakes.presence is not None and fakes.presence.closed
    assert fakes.hardware.unavailable is None


# ---------------------------------------------------------------- stand-ins


async def test_stand_ins_accept_everything_and_do_nothing() -> None:
    hardware = null_hardware("testing")
    assert isinstance(hardware.call_button, NullButton)
    assert isinstance(hardware.status_led, NullLed)
    hardware.call_button.when_pressed = lambda: None
    StatusLight(hardware.status_led).show(BUSY)
    hardware.call_button.light.on()
    assert not hardware.call_button.is_pressed
    assert not hardware.call_button.light.is_lit
    assert hardware.presence is None
    await hardware.close()


async def test_nothing_wired_means_stand_ins_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="kiosk.hardware")
    hardware = await open_hardware(HardwareConfig())
    assert hardware.unavailable == "no pins are set in [hardware]"
    assert isinstance(hardware.end_button, NullButton)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            logging.INFO,
            "hardware: buttons and lights off (no pins are set in [hardware]); "
            "the touch screen works",
        )
    ]


async def test_without_gpiozero_the_booth_runs_on_stand_ins(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "gpiozero", None)  # not importable
    monkeypatch.delitem(sys.modules, "kiosk.hardware.gpio", raising=False)
    hardware = await open_hardware(HardwareConfig(call_button=17))
    assert hardware.unavailable is not None
    assert hardware.unavailable.startswith("gpiozero cannot be imported (")
    assert isinstance(hardware.call_button, NullButton)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            logging.ERROR,
            f"hardware: buttons and lights off: {hardware.unavailable}; "
            "the touch screen still works",
        )
    ]


# ---------------------------------------------------------------- configuration

WIRED = """
[hardware]
call_button = 17
call_button_led = 27
end_button = 22
camera_led = 23
status_led = 24
presence = "distance"
presence_trigger_pin = 5
presence_echo_pin = 6
presence_distance_m = 1.5
led_brightness = 0.4
"""


def test_hardware_section_is_read(tmp_path: Path) -> None:
    path = tmp_path / "booth.toml"
    path.write_text(GOOD + WIRED)
    hardware = load_config(path).hardware
    assert hardware.configured
    assert hardware.pins == {
        "call_button": 17,
        "call_button_led": 27,
        "end_button": 22,
        "camera_led": 23,
        "status_led": 24,
        "presence_trigger_pin": 5,
        "presence_echo_pin": 6,
    }
    assert hardware.presence is PresenceKind.DISTANCE
    assert (hardware.presence_distance_m, hardware.led_brightness, hardware.bounce_ms) == (
        1.5,
        0.4,
        30,
    )
    path.write_text(GOOD)
    assert not load_config(path).hardware.configured  # no section: nothing wired


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("call_button = 28", "hardware.call_button: expected a BCM GPIO number from 0 to 27, "),
        ("end_button = -1", "hardware.end_button: expected a BCM GPIO number from 0 to 27"),
        ("status_led = true", "hardware.status_led: expected a BCM GPIO number"),
        ('camera_led = "GPIO23"', "hardware.camera_led: expected a BCM GPIO number"),
        (
            "call_button = 17\nend_button = 17",
            "hardware: GPIO17 is set for more than one part: call_button and end_button",
        ),
        (
            "end_button_led = 5",
            "hardware.end_button_led: the lamp is inside the button; set end_button too",
        ),
        ('presence = "radar"', "hardware.presence: must be one of none, pir, distance"),
        ('presence = "pir"', "hardware.presence_pin: required with presence = 'pir'"),
        (
            'presence = "distance"\npresence_echo_pin = 6',
            "hardware.presence_trigger_pin: required with presence = 'distance'",
        ),
        ("presence_pin = 4", "hardware.presence_pin: not used with presence = 'none'; remove it"),
        ("presence_distance_m = 9", "hardware.presence_distance_m: expected a number of metres"),
        ("bounce_ms = 0.5", "hardware.bounce_ms: expected a whole number from 0 to 500"),
        ("led_brightness = 0", "hardware.led_brightness: expected a number from 0.05 to 1"),
        ("buzzer = 12", "unknown setting(s) in [hardware]: buzzer"),
    ],
)
def test_bad_hardware_settings_are_named(tmp_path: Path, section: str, message: str) -> None:
    path = tmp_path / "booth.toml"
    path.write_text(f"{GOOD}[hardware]\n{section}\n")
    with pytest.raises(BoothConfigError) as raised:
        load_config(path)
    assert message in str(raised.value)
    assert str(path) in str(raised.value)


@settings(max_examples=100, deadline=None, database=None)
@given(st.lists(st.one_of(st.none(), st.integers(-3, 40)), min_size=4, max_size=4))
def test_any_distinct_pins_from_0_to_27_are_accepted_and_nothing_else(
    pins: list[int | None],
) -> None:
    wired = [pin for pin in pins if pin is not None]
    valid = all(0 <= pin <= 27 for pin in wired) and len(set(wired)) == len(wired)

    def build() -> HardwareConfig:
        return HardwareConfig(
            call_button=pins[0], end_button=pins[1], camera_led=pins[2], status_led=pins[3]
        )

    if valid:
        assert sorted(build().pins.values()) == sorted(wired)
    else:
        with pytest.raises(BoothConfigError, match=r"^hardware[.:]"):
            build()
