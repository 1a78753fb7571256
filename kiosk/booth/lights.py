"""What the booth's lights show in each state of the flow."""

from __future__ import annotations

from kiosk.flow import State
from kiosk.hardware import BUSY, FAULT, OFF, READY, BoothHardware, Pattern, StatusLight

#: What the lights show in each state: (status light, call button lamp, end button lamp).
LIGHTS: dict[State, tuple[Pattern, Pattern, Pattern]] = {
    State.IDLE: (READY, READY, OFF),
    State.CHOOSE: (BUSY, READY, READY),
    State.CODE_ENTRY: (BUSY, OFF, READY),
    State.CONSENT: (BUSY, READY, READY),
    State.WAITING: (BUSY, BUSY, READY),
    State.IN_CALL: (READY, OFF, READY),
    State.ENDED: (READY, READY, OFF),
    State.OFFLINE: (FAULT, OFF, OFF),
    State.OUT_OF_SERVICE: (FAULT, OFF, OFF),
    State.TECHNICIAN_PIN: (BUSY, OFF, READY),
    State.TECHNICIAN: (BUSY, OFF, READY),
    # Not set up yet: waiting for the technician's enrolment code; the buttons do nothing.
    State.ENROLMENT: (BUSY, OFF, OFF),
}


class BoothLights:
    """The status light and the two button lamps (the camera light is the camera's)."""

    def __init__(self, hardware: BoothHardware) -> None:
        self.status = StatusLight(hardware.status_led)
        self.call_lamp = StatusLight(hardware.call_button.light, name="call button lamp")
        self.end_lamp = StatusLight(hardware.end_button.light, name="end button lamp")

    def show(self, state: State) -> None:
        status, call, end = LIGHTS[state]
        self.status.show(status)
        self.call_lamp.show(call)
        self.end_lamp.show(end)

    def refresh(self) -> None:
        """Show again what they showed (after a check left them off)."""
        for light in (self.status, self.call_lamp, self.end_lamp):
            light.refresh()
