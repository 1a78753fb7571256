"""The hardware seam: small protocols, stand-ins that do nothing, the bundle and its factory.

gpiozero is imported only in :mod:`kiosk.hardware.gpio`. Every callback a part reports
(``when_pressed``, ``when_present``, ``when_absent``) runs on the asyncio event loop, never on a
driver thread, so it may call into the booth directly. A booth without buttons and lights (not
wired, not a Pi, no pin driver) gets the stand-ins: the touch screen still works.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from kiosk.config import HardwareConfig
from kiosk.errors import BoothError

log = logging.getLogger(__name__)

#: What a part calls on the event loop; it must not block.
Callback = Callable[[], None]


class HardwareError(BoothError, RuntimeError):
    """A button, light or sensor cannot be used; the message names the setting and the pin."""


class Led(Protocol):
    """A light: steady, dark or blinking; the blinking runs by itself until changed."""

    def on(self) -> None: ...

    def off(self) -> None: ...

    def blink(self, on_time: float, off_time: float) -> None:
        """Blink until told otherwise: ``on_time`` seconds lit, ``off_time`` dark."""
        ...

    @property
    def is_lit(self) -> bool: ...

    def check_line(self) -> bool | None:
        """Drive the light's line high and low and read it back through the pin driver.

        True when it read back as driven, False when not, None for a light that is not wired
        (or is closed). Leaves the light off. Blocks briefly: call it off the event loop.
        """
        ...

    def close(self) -> None:
        """Turn off and release the pin; later calls do nothing. Safe to call twice."""
        ...


class Button(Protocol):
    """A push button, possibly with a lamp inside (an illuminated button).

    As gpiozero's: a press is ``when_pressed``, then ``when_held`` once if it stays down
    the hold time (``hardware.hold_seconds``), then ``when_released``.
    """

    #: Called on the event loop each time the button goes down ...
    when_pressed: Callback | None
    #: ... once per press that stays down the hold time ...
    when_held: Callback | None
    #: ... and each time it comes up again.
    when_released: Callback | None

    @property
    def is_pressed(self) -> bool: ...

    @property
    def light(self) -> Led:
        """The lamp in the button; one that does nothing when the button has none."""
        ...

    def close(self) -> None:
        """Release the button and its lamp. Safe to call twice."""
        ...


class PresenceSensor(Protocol):
    """Says whether someone stands in front of the booth (PIR or distance sensor)."""

    #: Called on the event loop when someone arrives ...
    when_present: Callback | None
    #: ... and when nobody is there any more. Neither fires for the state at start: read
    #: :attr:`present` for that.
    when_absent: Callback | None

    @property
    def present(self) -> bool: ...

    def close(self) -> None: ...


class NullLed:
    """A light that is not wired: accepts everything, never lit."""

    def on(self) -> None:
        pass

    def off(self) -> None:
        pass

    def blink(self, on_time: float, off_time: float) -> None:
        pass

    @property
    def is_lit(self) -> bool:
        return False

    def check_line(self) -> bool | None:
        return None

    def close(self) -> None:
        pass


class NullButton:
    """A button that is not wired: never pressed."""

    def __init__(self) -> None:
        self.when_pressed: Callback | None = None
        self.when_held: Callback | None = None
        self.when_released: Callback | None = None
        self._light = NullLed()

    @property
    def is_pressed(self) -> bool:
        return False

    @property
    def light(self) -> Led:
        return self._light

    def close(self) -> None:
        pass


@dataclass(eq=False)
class BoothHardware:
    """The booth's buttons and lights; every part exists, wired or a stand-in."""

    call_button: Button
    end_button: Button
    #: Lit exactly while the camera streams; drive it with :class:`kiosk.hardware.CameraLight`.
    camera_led: Led
    #: Shows the booth's state; drive it with :class:`kiosk.hardware.StatusLight`.
    status_led: Led
    #: None when the booth has no presence sensor (so nothing may depend on one).
    presence: PresenceSensor | None = None
    #: Why the buttons and lights do nothing; None when they are on GPIO.
    unavailable: str | None = None
    #: The pin driver that drives the pins ("lgpio", "rpigpio", "native", "mock"); "none"
    #: when no driver does (nothing wired, or no driver could).
    pin_driver: str = "none"
    #: The wired lights' lines as read back when they were opened, by setting name
    #: (``status_led``, ``call_button_led``, ...): whether each read back as driven.
    readback: dict[str, bool] = field(default_factory=dict)
    #: Releases the pin driver once every part is closed (None: nothing to release).
    release: Callable[[], None] | None = field(default=None, repr=False)
    _closed: bool = field(default=False, init=False, repr=False)

    @property
    def lights(self) -> dict[str, Led]:
        """Every light by its setting's name, wired or a stand-in."""
        return {
            "call_button_led": self.call_button.light,
            "end_button_led": self.end_button.light,
            "camera_led": self.camera_led,
            "status_led": self.status_led,
        }

    def check_lights(self) -> dict[str, bool]:
        """Drive and read back every wired light's line (:meth:`Led.check_line`).

        Blocks (call it in a worker thread) and leaves the lights off: whoever shows patterns
        on them shows them again. A light whose check fails with an error counts as not
        matching, and the error is logged.
        """
        results: dict[str, bool] = {}
        for name, light in self.lights.items():
            try:
                matched = light.check_line()
            except Exception as exc:
                log.error("hardware: %s: its line cannot be read back: %s", name, exc)
                matched = False
            if matched is None:
                continue
            if not matched:
                log.error(
                    "hardware: %s: its line did not read back as driven through %s; check that "
                    "the pin driver drives this board's GPIO (hardware.pin_factory, gpio_chip)",
                    name,
                    self.pin_driver,
                )
            results[name] = matched
        return results

    @property
    def parts(self) -> list[Button | Led | PresenceSensor]:
        parts: list[Button | Led | PresenceSensor] = [
            self.call_button,
            self.end_button,
            self.camera_led,
            self.status_led,
        ]
        if self.presence is not None:
            parts.append(self.presence)
        return parts

    async def close(self) -> None:
        """Turn the lights off and release every pin. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        # gpiozero joins its blink, hold and sampling threads on close (a button's takes up to
        # 0.1 s): in worker threads, all at once, not on the loop.
        await asyncio.gather(*(asyncio.to_thread(close_parts, [part]) for part in self.parts))
        if self.release is not None:
            try:
                await asyncio.to_thread(self.release)
            except Exception:
                log.exception("hardware: releasing the pin driver failed")


def close_parts(parts: list[Button | Led | PresenceSensor]) -> None:
    """Close ``parts`` in reverse order, each even when another fails."""
    for part in reversed(parts):
        try:
            part.close()
        except Exception:
            log.exception("hardware: closing %r failed", part)


def null_hardware(reason: str) -> BoothHardware:
    """Stand-ins for every part; ``reason`` says why (kept in ``unavailable``)."""
    return BoothHardware(
        call_button=NullButton(),
        end_button=NullButton(),
        camera_led=NullLed(),
        status_led=NullLed(),
        unavailable=reason,
    )


async def open_hardware(config: HardwareConfig, *, pin_factory: Any = None) -> BoothHardware:
    """The buttons and lights ``config`` wires, on GPIO; stand-ins when that cannot be.

    Nothing wired, gpiozero missing, no pin driver (not a Pi) or a pin that cannot be claimed:
    every part becomes a stand-in that does nothing, and why is logged once and kept in
    :attr:`BoothHardware.unavailable`. ``pin_factory`` is a gpiozero pin factory (tests pass
    ``MockFactory``); by default ``config.pin_factory`` chooses (see :mod:`kiosk.hardware.pins`).
    Callbacks run on the running loop. Opening blocks on the pin driver, so it runs in a thread.
    """
    if not config.configured:
        reason = "no pins are set in [hardware]"
        log.info("hardware: buttons and lights off (%s); the touch screen works", reason)
        return null_hardware(reason)
    try:
        from kiosk.hardware.gpio import open_gpio_hardware
    except ImportError as exc:
        reason = f"gpiozero cannot be imported ({exc})"
    else:
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.to_thread(
                open_gpio_hardware, config, loop=loop, pin_factory=pin_factory
            )
        except HardwareError as exc:
            reason = str(exc)
    log.error("hardware: buttons and lights off: %s; the touch screen still works", reason)
    return null_hardware(reason)
