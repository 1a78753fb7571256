"""Which pin driver drives the pins, said out loud; the lights' lines driven and read back.

The drivers' own refusals are the real ones where they import off a Pi: lgpio (from PyPI) is
imported for real, in a fresh process, once from a working directory it cannot write (the
booth's service in ``/`` under ProtectSystem=strict) and once with ``LG_WD``. This machine's
kernel has no GPIO support (no gpio-sim, no configfs), so a real line is driven and read back
only in the image's QEMU boot (PL061); here the read-back runs through gpiozero's real device
code on its mock pins.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.exc import PinUnknownPi
from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin

from kiosk.config import HardwareConfig, PinFactoryKind
from kiosk.hardware import READY, FakeHardware, HardwareError, StatusLight, open_hardware, pins
from kiosk.hardware.gpio import GpioLed
from kiosk.hardware.pins import MAKERS, Board, PinDriverError, choose_pin_driver

REPO = Path(__file__).resolve().parents[2]
PI4 = Board(revision=0xC03111, soc="BCM2711", model="4B")
PI5 = Board(revision=0xC04170, soc="BCM2712", model="5B")
LIGHTS = HardwareConfig(call_button=17, call_button_led=27, camera_led=23, status_led=24)


@pytest.fixture(autouse=True)
def no_default_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    """No pin factory left as gpiozero's default by another test: the booth chooses."""
    monkeypatch.setattr(Device, "pin_factory", None)


@pytest.fixture
def mock_pins() -> Iterator[None]:
    yield
    MockFactory().reset()  # the mock pins' reservations are shared by every MockFactory


def warnings_and_above(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING]


def refuse(reason: str) -> Any:
    def maker(config: HardwareConfig, board: Board) -> Any:
        raise PinDriverError(reason)

    return maker


# ---------------------------------------------------------------- choosing the driver


def test_hardware_pi5_gets_lgpio_or_a_reason_for_each_driver(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The real makers: lgpio imports (from PyPI) and finds no gpiochip here; the others refuse
    # a Pi 5 before touching anything.
    with pytest.raises(HardwareError) as raised:
        choose_pin_driver(LIGHTS, board=lambda: PI5)
    assert str(raised.value) == (
        "no GPIO pin driver can be used on this board (Raspberry Pi 5B (BCM2712, revision "
        "c04170)): lgpio: /dev/gpiochip0 does not exist (no GPIO driver for this board, or the "
        "wrong chip); rpigpio: RPi.GPIO cannot drive a Raspberry Pi 5's pins; native: gpiozero's "
        "native driver cannot drive a Raspberry Pi 5's pins (no BCM2712 support)"
    )
    assert warnings_and_above(caplog) == [
        (
            logging.WARNING,
            "gpio: lgpio unavailable (/dev/gpiochip0 does not exist (no GPIO driver for this "
            "board, or the wrong chip)); trying rpigpio",
        ),
        (
            logging.WARNING,
            "gpio: rpigpio unavailable (RPi.GPIO cannot drive a Raspberry Pi 5's pins); "
            "trying native",
        ),
        (
            logging.WARNING,
            "gpio: native unavailable (gpiozero's native driver cannot drive a Raspberry Pi 5's "
            "pins (no BCM2712 support))",
        ),
    ]


def test_hardware_fallback_is_a_warning_naming_what_it_lacks(
    caplog: pytest.LogCaptureFixture, mock_pins: None
) -> None:
    caplog.set_level(logging.INFO, logger="kiosk.hardware")
    makers = {
        **MAKERS,
        PinFactoryKind.LGPIO: refuse("lgpio cannot make its notification pipe"),
        PinFactoryKind.RPIGPIO: refuse("RPi.GPIO is not installed"),
        PinFactoryKind.NATIVE: lambda config, board: MockFactory(),
    }
    driver = choose_pin_driver(LIGHTS, board=lambda: PI4, makers=makers)
    assert (driver.name, driver.pwm) == ("native", False)
    assert driver.reason == (
        "fallback: lgpio: lgpio cannot make its notification pipe; "
        "rpigpio: RPi.GPIO is not installed"
    )
    assert warnings_and_above(caplog)[-1] == (
        logging.WARNING,
        "gpio: pins driven by native, a fallback, on Raspberry Pi 4B (BCM2711, revision c03111) "
        "without PWM (lgpio: lgpio cannot make its notification pipe; "
        "rpigpio: RPi.GPIO is not installed)",
    )


def test_hardware_dimmed_lights_never_fall_back_to_the_native_driver() -> None:
    dimmed = HardwareConfig(status_led=24, led_brightness=0.3)
    makers = {
        **MAKERS,
        PinFactoryKind.LGPIO: refuse("lgpio is not installed"),
        PinFactoryKind.RPIGPIO: refuse("RPi.GPIO is not installed"),
    }
    with pytest.raises(HardwareError, match=r"native: gpiozero's native driver has no PWM, and "):
        choose_pin_driver(dimmed, board=lambda: PI4, makers=makers)
    configured = HardwareConfig(status_led=24, led_brightness=0.3, pin_factory="native")
    with pytest.raises(HardwareError) as raised:
        choose_pin_driver(configured, board=lambda: PI4)
    assert str(raised.value) == (
        "hardware.pin_factory = 'native' cannot be used on this board (Raspberry Pi 4B "
        "(BCM2711, revision c03111)): gpiozero's native driver has no PWM, and "
        "hardware.led_brightness 0.3 needs it to dim the lights"
    )


def test_hardware_a_configured_driver_is_that_driver_or_an_error(
    caplog: pytest.LogCaptureFixture, mock_pins: None
) -> None:
    caplog.set_level(logging.INFO, logger="kiosk.hardware")
    driver = choose_pin_driver(HardwareConfig(status_led=24, pin_factory="mock"), board=Board)
    assert (driver.name, driver.reason, driver.owned) == ("mock", "configured", True)
    assert ("gpio: pins driven by mock (configured) on not a Raspberry Pi") in caplog.messages
    driver.close()
    # lgpio named: no fallback to anything else, even where another driver would work.
    with pytest.raises(HardwareError) as raised:
        choose_pin_driver(HardwareConfig(status_led=24, pin_factory="lgpio"), board=Board)
    assert str(raised.value) == (
        "hardware.pin_factory = 'lgpio' cannot be used on this board (not a Raspberry Pi): "
        "this is not a Raspberry Pi (no board revision in /proc/device-tree or /proc/cpuinfo): "
        "set hardware.gpio_chip to drive that gpiochip's lines by offset"
    )


def test_hardware_config_names_the_pin_driver_and_chip() -> None:
    config = HardwareConfig(status_led=24, pin_factory="lgpio", gpio_chip=0)
    assert (config.pin_factory, config.gpio_chip) == (PinFactoryKind.LGPIO, 0)
    with pytest.raises(ValueError, match=r"hardware.pin_factory: must be one of auto, lgpio, "):
        HardwareConfig(pin_factory="pigpio")
    with pytest.raises(ValueError, match=r"hardware.gpio_chip: expected a gpiochip number"):
        HardwareConfig(gpio_chip=-1)


# ---------------------------------------------------------------- the real lgpio


def _choose_in_fresh_process(cwd: Path | str, environ: dict[str, str]) -> str:
    """What choosing lgpio on gpiochip0 says, in a new process (lgpio is imported once)."""
    program = textwrap.dedent(
        """
        from kiosk.config import HardwareConfig
        from kiosk.hardware.pins import Board, choose_pin_driver
        config = HardwareConfig(status_led=2, pin_factory="lgpio", gpio_chip=0)
        try:
            choose_pin_driver(config, board=Board)
        except Exception as exc:
            print(type(exc).__name__, exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        cwd=cwd,
        env={**environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_hardware_lgpio_in_an_unwritable_directory_names_lg_wd(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if k != "LG_WD"}
    # /proc stands in for the service's read-only / (root may write anywhere else).
    refused = _choose_in_fresh_process("/proc", environ)
    assert refused.startswith(
        "HardwareError hardware.pin_factory = 'lgpio' cannot be used on this board (not a "
        "Raspberry Pi): lgpio cannot make its notification pipe in the working directory: set "
        "LG_WD to a writable directory in the booth's environment"
    )
    assert ".lgd-nfy" in refused
    # With LG_WD the import succeeds, and the next problem is this machine's missing gpiochip.
    refused = _choose_in_fresh_process("/proc", {**environ, "LG_WD": str(tmp_path)})
    assert refused == (
        "HardwareError hardware.pin_factory = 'lgpio' cannot be used on this board (not a "
        "Raspberry Pi): /dev/gpiochip0 does not exist (no GPIO driver for this board, or the "
        "wrong chip)"
    )
    assert [p.name for p in tmp_path.iterdir()] == [".lgd-nfy0"]


# ---------------------------------------------------------------- reading the lights back


async def test_hardware_lights_are_read_back_when_opened(
    caplog: pytest.LogCaptureFixture, mock_pins: None
) -> None:
    caplog.set_level(logging.INFO, logger="kiosk.hardware")
    hardware = await open_hardware(replace(LIGHTS, pin_factory=PinFactoryKind.MOCK))
    try:
        assert hardware.unavailable is None
        assert hardware.pin_driver == "mock"
        assert hardware.readback == {
            "call_button_led": True,
            "camera_led": True,
            "status_led": True,
        }
        assert not hardware.status_led.is_lit  # left dark for the booth to show its state
        assert "hardware: on GPIO through mock: " in caplog.text
    finally:
        await hardware.close()


class StuckLowPin(MockPWMPin):
    """A line that stays low whatever is written: a driver that does not drive this board."""

    def _set_state(self, value: Any) -> None:
        pass


async def test_hardware_a_line_that_does_not_follow_reads_back_bad(
    caplog: pytest.LogCaptureFixture, mock_pins: None
) -> None:
    factory = MockFactory(pin_class=StuckLowPin)
    hardware = await open_hardware(HardwareConfig(status_led=24), pin_factory=factory)
    try:
        assert hardware.readback == {"status_led": False}
        assert warnings_and_above(caplog) == [
            (
                logging.ERROR,
                "hardware: status_led: its line did not read back as driven through mock; check "
                "that the pin driver drives this board's GPIO (hardware.pin_factory, gpio_chip)",
            )
        ]
    finally:
        await hardware.close()


async def test_hardware_a_dimmed_light_is_read_back_without_pwm_and_dims_again(
    mock_pins: None,
) -> None:
    factory = MockFactory(pin_class=MockPWMPin)
    hardware = await open_hardware(
        HardwareConfig(status_led=24, led_brightness=0.25), pin_factory=factory
    )
    try:
        pin: MockPin = factory.pin(24)
        # High, then low (the PWM stopped for it), then PWM again, dark.
        assert [s.state for s in pin.states] == [False, 1.0, 0.0]
        assert hardware.readback == {"status_led": True}
        assert pin.frequency == 100
        assert isinstance(hardware.status_led, GpioLed)
        StatusLight(hardware.status_led).show(READY)
        assert pin.state == 0.25
    finally:
        await hardware.close()


def test_hardware_fake_lights_are_read_back_like_gpio_ones() -> None:
    fakes = FakeHardware()
    fakes.status_led.on()
    assert fakes.hardware.check_lights() == {
        "call_button_led": True,
        "end_button_led": True,
        "camera_led": True,
        "status_led": True,
    }
    assert fakes.status_led.history[-1] == "checked"
    assert fakes.status_led.mode == "off"
    fakes.camera_led.line_follows = False
    assert fakes.hardware.check_lights()["camera_led"] is False


def test_hardware_board_is_read_from_the_pi_revision(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pins, "get_pi_revision", lambda: 0xC04170)
    assert pins.read_board() == PI5
    assert PI5.description == "Raspberry Pi 5B (BCM2712, revision c04170)"

    def no_revision() -> int:
        raise PinUnknownPi("unable to locate Pi revision in /proc/device-tree or /proc/cpuinfo")

    monkeypatch.setattr(pins, "get_pi_revision", no_revision)
    assert pins.read_board() == Board()
