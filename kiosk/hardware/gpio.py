"""gpiozero behind the hardware protocols: buttons, LEDs and presence sensors on GPIO pins.

gpiozero is imported only here and in :mod:`kiosk.hardware.pins`, which chooses the pin
driver. Pins are BCM numbers, checked by the configuration.
gpiozero reports events from its own threads (the pin driver's edge thread, a sensor's
sampling thread); each event is handed to the event loop with ``call_soon_threadsafe`` and the
callback runs there, so the booth never sees a foreign thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from gpiozero import LED, PWMLED, DistanceSensor, MotionSensor
from gpiozero import Button as ZeroButton
from gpiozero.exc import PWMSoftwareFallback

from kiosk.config import HardwareConfig, PresenceKind
from kiosk.hardware.pins import PinDriver, choose_pin_driver
from kiosk.hardware.protocols import (
    BoothHardware,
    Button,
    Callback,
    HardwareError,
    Led,
    NullButton,
    NullLed,
    PresenceSensor,
    close_parts,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How finely a dimmed LED's blinking is stepped (gpiozero's blink has no brightness).
DIMMED_BLINK_STEP = 0.02
#: Readings a distance sensor takes the median of: one stray echo is not a visitor.
DISTANCE_QUEUE_LEN = 5
#: How long opening waits for a presence sensor's first reading.
PRESENCE_SETTLE_SECONDS = 2.0


class _LoopCallback:
    """A callback set and run on the loop; a driver thread only asks the loop to run it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, what: str) -> None:
        self._loop = loop
        self._what = what
        self.callback: Callback | None = None

    def fire(self) -> None:
        """Any thread: run the callback on the loop soon."""
        # A closed loop raises RuntimeError: the booth is shutting down and nobody listens.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._run)

    def _run(self) -> None:
        callback = self.callback  # read on the loop, where it is set
        if callback is None:
            return
        try:
            callback()
        except Exception:
            # A faulty handler must not stop the next press from being reported.
            log.exception("hardware: the %s handler failed", self._what)


class GpioLed:
    """An LED on a pin; below full brightness a PWM LED whose blinking keeps the brightness."""

    def __init__(self, pin: int, *, pin_factory: Any, brightness: float = 1.0) -> None:
        self._brightness = brightness
        self._dimmed = brightness < 1.0
        self._device: Any = (
            PWMLED(pin, pin_factory=pin_factory)
            if self._dimmed
            else LED(pin, pin_factory=pin_factory)
        )
        self._closed = False

    def on(self) -> None:
        if self._closed:
            return
        if self._dimmed:
            self._device.source = None
            self._device.value = self._brightness
        else:
            self._device.on()

    def off(self) -> None:
        if self._closed:
            return
        if self._dimmed:
            self._device.source = None
        self._device.off()

    def blink(self, on_time: float, off_time: float) -> None:
        if self._closed:
            return
        if self._dimmed:
            # gpiozero's own blink always goes to full brightness; a source thread feeding
            # the dimmed level keeps the lamp at the configured brightness.
            self._device.source = None
            self._device.source_delay = DIMMED_BLINK_STEP
            self._device.source = _dimmed_blink(self._brightness, on_time, off_time)
        else:
            self._device.blink(on_time=on_time, off_time=off_time)

    @property
    def is_lit(self) -> bool:
        return not self._closed and bool(self._device.is_lit)

    def check_line(self) -> bool | None:
        """Drive the line high, then low, reading each level back through the pin driver.

        lgpio reads an output line's level from the GPIO character device, so a line the
        driver cannot drive (another driver, the wrong chip) reads back wrong. Leaves the
        light off: the caller shows its pattern again.
        """
        if self._closed:
            return None
        device = self._device
        if self._dimmed:
            device.source = None
        device.off()  # also ends a blink's thread, which would change the line meanwhile
        pin = device.pin
        frequency = pin.frequency
        if frequency is not None:
            # A PWM pin reports its duty cycle, not the line: read the line without PWM.
            pin.frequency = None
        try:
            matched = True
            for level in (True, False):
                pin.state = level
                matched = matched and bool(pin.state) is level
            return matched
        finally:
            if frequency is not None:
                pin.frequency = frequency
            device.off()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._dimmed:
            self._device.source = None
        self._device.off()
        self._device.close()


def _dimmed_blink(brightness: float, on_time: float, off_time: float) -> Iterator[float]:
    on_steps = max(1, round(on_time / DIMMED_BLINK_STEP))
    off_steps = max(1, round(off_time / DIMMED_BLINK_STEP))
    return itertools.cycle([brightness] * on_steps + [0.0] * off_steps)


class GpioButton:
    """A button between a pin and ground (the internal pull-up holds the pin high)."""

    def __init__(
        self,
        pin: int,
        *,
        loop: asyncio.AbstractEventLoop,
        pin_factory: Any,
        bounce_time: float | None,
        light: Led,
        name: str,
        hold_time: float = 2.0,
    ) -> None:
        self._pressed = _LoopCallback(loop, name)
        self._held = _LoopCallback(loop, f"{name} (held)")
        self._released = _LoopCallback(loop, f"{name} (released)")
        self._device: Any = ZeroButton(
            pin,
            pull_up=True,
            bounce_time=bounce_time,
            hold_time=hold_time,
            pin_factory=pin_factory,
        )
        # Each from gpiozero's threads (the edge thread; the hold thread for when_held), each
        # posted to the loop in the order it happened.
        self._device.when_pressed = self._pressed.fire
        self._device.when_held = self._held.fire
        self._device.when_released = self._released.fire
        self._light = light
        self._closed = False

    @property
    def when_pressed(self) -> Callback | None:
        return self._pressed.callback

    @when_pressed.setter
    def when_pressed(self, callback: Callback | None) -> None:
        self._pressed.callback = callback

    @property
    def when_held(self) -> Callback | None:
        return self._held.callback

    @when_held.setter
    def when_held(self, callback: Callback | None) -> None:
        self._held.callback = callback

    @property
    def when_released(self) -> Callback | None:
        return self._released.callback

    @when_released.setter
    def when_released(self, callback: Callback | None) -> None:
        self._released.callback = callback

    @property
    def is_pressed(self) -> bool:
        return not self._closed and bool(self._device.is_pressed)

    @property
    def light(self) -> Led:
        return self._light

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._device.close()
        self._light.close()


class GpioPresenceSensor:
    """A gpiozero PIR (MotionSensor) or distance sensor (DistanceSensor) as presence."""

    def __init__(
        self, device: Any, *, loop: asyncio.AbstractEventLoop, present_when_active: bool
    ) -> None:
        self._device = device
        self._present_when_active = present_when_active
        self._arrived = _LoopCallback(loop, "presence (arrived)")
        self._left = _LoopCallback(loop, "presence (left)")
        # A motion sensor is active while it sees someone; a distance sensor is active while
        # the nearest thing is beyond the threshold, i.e. while nobody is there.
        if present_when_active:
            device.when_activated = self._arrived.fire
            device.when_deactivated = self._left.fire
        else:
            device.when_activated = self._left.fire
            device.when_deactivated = self._arrived.fire
        self._closed = False

    @property
    def when_present(self) -> Callback | None:
        return self._arrived.callback

    @when_present.setter
    def when_present(self, callback: Callback | None) -> None:
        self._arrived.callback = callback

    @property
    def when_absent(self) -> Callback | None:
        return self._left.callback

    @when_absent.setter
    def when_absent(self, callback: Callback | None) -> None:
        self._left.callback = callback

    @property
    def present(self) -> bool:
        if self._closed:
            return False
        # The state gpiozero last decided, without waiting: its value property blocks until
        # the sensor's reading queue is full. Unknown yet counts as nobody.
        if self._present_when_active:
            return bool(self._device.wait_for_active(timeout=0))
        return bool(self._device.wait_for_inactive(timeout=0))

    def settle(self, timeout: float) -> bool:
        """Worker thread: wait for the sensor's first decision; False if none came."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._device.wait_for_active(timeout=0.01) or self._device.wait_for_inactive(
                timeout=0.01
            ):
                return True
        return False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._device.close()


def _open(label: str, make: Callable[[], T]) -> T:
    try:
        return make()
    except Exception as exc:
        # lgpio's own errors ("GPIO busy") are not gpiozero's: convert them all here.
        raise HardwareError(f"hardware.{label} cannot be used: {exc}") from exc


def open_gpio_hardware(
    config: HardwareConfig, *, loop: asyncio.AbstractEventLoop, pin_factory: Any = None
) -> BoothHardware:
    """The parts ``config`` wires, on GPIO; the others are stand-ins.

    The pin driver is ``pin_factory`` if given, else chosen by
    :func:`kiosk.hardware.pins.choose_pin_driver`. Once every part is open, each wired light's
    line is driven and read back (:attr:`BoothHardware.readback`). Blocks (claims pins, waits
    for the presence sensor's first reading): call it in a worker thread. Raises
    :class:`HardwareError` naming the driver or the part that cannot be used; whatever was
    opened before it is closed again.
    """
    driver = choose_pin_driver(config, given=pin_factory)
    try:
        return _open_parts(config, loop=loop, driver=driver)
    except BaseException:
        driver.close()
        raise


def _open_parts(
    config: HardwareConfig, *, loop: asyncio.AbstractEventLoop, driver: PinDriver
) -> BoothHardware:
    factory = driver.factory
    bounce = config.bounce_ms / 1000 or None
    opened: list[Button | Led | PresenceSensor] = []

    def led(setting: str) -> Led:
        pin: int | None = getattr(config, setting)
        if pin is None:
            return NullLed()
        part = _open(
            f"{setting} (GPIO{pin})",
            lambda: GpioLed(pin, pin_factory=factory, brightness=config.led_brightness),
        )
        opened.append(part)
        return part

    def button(setting: str) -> Button:
        pin: int | None = getattr(config, setting)
        if pin is None:
            return NullButton()  # the configuration has no lamp without its button
        light = led(f"{setting}_led")
        part = _open(
            f"{setting} (GPIO{pin})",
            lambda: GpioButton(
                pin,
                loop=loop,
                pin_factory=factory,
                bounce_time=bounce,
                light=light,
                name=setting.replace("_", " "),
                hold_time=config.hold_seconds,
            ),
        )
        if light in opened:
            opened.remove(light)  # from here the button closes its lamp
        opened.append(part)
        return part

    try:
        hardware = BoothHardware(
            call_button=button("call_button"),
            end_button=button("end_button"),
            camera_led=led("camera_led"),
            status_led=led("status_led"),
            presence=_presence(config, loop=loop, pin_factory=factory, opened=opened),
            pin_driver=driver.name,
            release=driver.close,
        )
    except BaseException:
        close_parts(opened)
        raise
    wired = ", ".join(f"{name} GPIO{pin}" for name, pin in config.pins.items())
    log.info("hardware: on GPIO through %s: %s", driver.name, wired)
    hardware.readback = hardware.check_lights()
    return hardware


def _presence(
    config: HardwareConfig,
    *,
    loop: asyncio.AbstractEventLoop,
    pin_factory: Any,
    opened: list[Button | Led | PresenceSensor],
) -> GpioPresenceSensor | None:
    if config.presence is PresenceKind.NONE:
        return None
    if config.presence is PresenceKind.PIR:
        pin = config.presence_pin
        sensor = _open(
            f"presence_pin (GPIO{pin})",
            lambda: GpioPresenceSensor(
                MotionSensor(pin, pin_factory=pin_factory), loop=loop, present_when_active=True
            ),
        )
    else:
        trigger, echo = config.presence_trigger_pin, config.presence_echo_pin
        threshold = config.presence_distance_m

        def distance_sensor() -> GpioPresenceSensor:
            with warnings.catch_warnings():
                # "use pigpio for more accurate readings": a metre's threshold needs no more.
                warnings.simplefilter("ignore", PWMSoftwareFallback)
                device = DistanceSensor(
                    echo=echo,
                    trigger=trigger,
                    queue_len=DISTANCE_QUEUE_LEN,
                    max_distance=2 * threshold,
                    threshold_distance=threshold,
                    pin_factory=pin_factory,
                )
            return GpioPresenceSensor(device, loop=loop, present_when_active=False)

        sensor = _open(
            f"presence_trigger_pin/presence_echo_pin (GPIO{trigger}/GPIO{echo})", distance_sensor
        )
    opened.append(sensor)
    if not sensor.settle(PRESENCE_SETTLE_SECONDS):
        log.warning(
            "hardware: the %s presence sensor gives no reading yet; check its wiring",
            config.presence,
        )
    return sensor
