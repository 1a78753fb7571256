"""Buttons, lights and a presence sensor that record what was done to them (tests, demos).

They have the hardware protocols; unlike GPIO they call back at once on the caller's thread,
which in tests is the event loop's, so a test presses and checks on the next line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kiosk.hardware.protocols import BoothHardware, Callback


class FakeLed:
    """Records every change: ``history`` reads like ``["off", "on", "blink 0.5/0.5"]``."""

    def __init__(self) -> None:
        self.mode = "off"  # "off", "on" or "blink"
        #: (on_time, off_time) while blinking.
        self.blink_times: tuple[float, float] | None = None
        self.history: list[str] = []
        self.closed = False
        #: What :meth:`check_line` finds: set False for a light whose line does not follow.
        self.line_follows = True

    def on(self) -> None:
        self._set("on")

    def off(self) -> None:
        self._set("off")

    def blink(self, on_time: float, off_time: float) -> None:
        self._set("blink", (on_time, off_time))

    @property
    def is_lit(self) -> bool:
        """On, or blinking (a blinking lamp is lit in every cycle)."""
        return not self.closed and self.mode != "off"

    def check_line(self) -> bool | None:
        """Records "checked" and leaves the light off, as on GPIO; :attr:`line_follows`."""
        if self.closed:
            return None
        self.history.append("checked")
        self.mode, self.blink_times = "off", None
        return self.line_follows

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.history.append("closed")

    def _set(self, mode: str, times: tuple[float, float] | None = None) -> None:
        if self.closed:
            return  # as on GPIO: a closed light ignores changes
        self.mode, self.blink_times = mode, times
        self.history.append(f"blink {times[0]:g}/{times[1]:g}" if times else mode)


class FakeButton:
    """A button the test presses with :meth:`press`; it has a lamp, a :class:`FakeLed`."""

    def __init__(self, *, light: FakeLed | None = None) -> None:
        self.when_pressed: Callback | None = None
        self.when_held: Callback | None = None
        self.when_released: Callback | None = None
        self.light = light if light is not None else FakeLed()
        self.is_pressed = False
        self.presses = 0
        self.closed = False

    def press(self) -> None:
        """Press and release; ``when_pressed`` runs while the button is down, then
        ``when_released``."""
        self._press(held=False)

    def hold(self) -> None:
        """Press, keep it down past the hold time and release: ``when_pressed``,
        ``when_held``, ``when_released``."""
        self._press(held=True)

    def _press(self, *, held: bool) -> None:
        if self.closed:
            return
        self.presses += 1
        self.is_pressed = True
        try:
            if self.when_pressed is not None:
                self.when_pressed()
            if held and self.when_held is not None:
                self.when_held()
        finally:
            self.is_pressed = False
        if self.when_released is not None:
            self.when_released()

    def close(self) -> None:
        self.closed = True
        self.light.close()


class FakePresenceSensor:
    """A presence sensor the test moves people past with :meth:`set_present`."""

    def __init__(self, *, present: bool = False) -> None:
        self.when_present: Callback | None = None
        self.when_absent: Callback | None = None
        self._present = present
        #: Every change, in order.
        self.history: list[bool] = []
        self.closed = False

    @property
    def present(self) -> bool:
        return self._present

    def set_present(self, present: bool) -> None:
        """Someone arrives (True) or leaves (False); the callback fires only on a change."""
        if self.closed or present == self._present:
            return
        self._present = present
        self.history.append(present)
        callback = self.when_present if present else self.when_absent
        if callback is not None:
            callback()

    def close(self) -> None:
        self.closed = True


@dataclass(eq=False)
class FakeHardware:
    """A booth's worth of fakes; :attr:`hardware` is the bundle the booth is given."""

    call_button: FakeButton = field(default_factory=FakeButton)
    end_button: FakeButton = field(default_factory=FakeButton)
    camera_led: FakeLed = field(default_factory=FakeLed)
    status_led: FakeLed = field(default_factory=FakeLed)
    presence: FakePresenceSensor | None = field(default_factory=FakePresenceSensor)
    hardware: BoothHardware = field(init=False)

    def __post_init__(self) -> None:
        self.hardware = BoothHardware(
            call_button=self.call_button,
            end_button=self.end_button,
            camera_led=self.camera_led,
            status_led=self.status_led,
            presence=self.presence,
            pin_driver="mock",  # pins that are not real, as gpiozero's mock pins
        )
