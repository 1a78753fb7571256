"""What the booth found of its platform at start: pin driver, lights, ALSA devices, clock.

After its start self-tests the booth logs one line (logger ``kiosk.platform``, INFO) that the
image's health script reads from the journal. Its form is a contract, checked by a test::

    booth platform: gpio=<factory> gpio_readback=<ok|bad|none> alsa=<capture+playback|capture|playback|none> clock=<synchronised|unsynchronised>

- ``gpio``: the pin driver that drives the pins, ``lgpio``, ``rpigpio``, ``native`` or ``mock``;
  ``none`` when no driver does (no pin is configured, or no driver could: an ERROR before the
  line says why);
- ``gpio_readback``: ``ok`` when every configured light's line read back as driven, ``bad`` when
  one did not (or lights are configured and no driver drives them), ``none`` when no light is
  configured;
- ``alsa``: which configured ALSA devices opened (a "tone" or "wav:" microphone and playback
  "none" are not ALSA devices);
- ``clock``: whether the clock is synchronised (:mod:`kiosk.clock`).

For example, under QEMU with a light on the PL061 GPIO chip::

    booth platform: gpio=lgpio gpio_readback=ok alsa=capture+playback clock=synchronised
"""  # noqa: E501 (the line's form is one line)

from __future__ import annotations

import logging
from dataclasses import dataclass

from kiosk.audio import AudioCheck
from kiosk.clock import ClockReading

log = logging.getLogger(__name__)

#: The settings of [hardware] that are lights.
LIGHT_SETTINGS = ("call_button_led", "end_button_led", "camera_led", "status_led")


@dataclass(frozen=True)
class PlatformReport:
    """The start self-tests' results."""

    #: The pin driver's name; "none" when no driver drives the pins.
    pin_driver: str
    #: Each configured light's line read back, by setting name: whether it matched.
    readback: dict[str, bool]
    #: Whether any light is configured (then a missing read-back is a fault).
    lights_configured: bool
    audio: AudioCheck
    clock: ClockReading

    @property
    def gpio_readback(self) -> str:
        """ "ok", "bad" or "none" (see the module's docstring)."""
        if not self.lights_configured:
            return "none"
        if self.readback and all(self.readback.values()):
            return "ok"
        return "bad"

    @property
    def lights_ok(self) -> bool | None:
        """The read-back as the health report has it; None when no light is configured."""
        return None if not self.lights_configured else self.gpio_readback == "ok"

    def line(self) -> str:
        """The line the image's health script reads (the module's docstring has its form)."""
        return (
            f"booth platform: gpio={self.pin_driver} gpio_readback={self.gpio_readback} "
            f"alsa={self.audio.alsa} clock={self.clock.state}"
        )

    def log(self) -> None:
        log.info("%s", self.line())
