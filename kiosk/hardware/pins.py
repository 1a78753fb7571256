"""Which pin driver drives the booth's pins: the configured one, or the first that can.

Left to itself gpiozero picks its driver silently: when lgpio cannot be imported (it makes a
notification pipe in the working directory, or in ``$LG_WD``; a service in ``/`` under
``ProtectSystem=strict`` cannot) it falls back to RPi.GPIO or to its native driver and says so
only at DEBUG. On a Pi 5 neither of those drives the pins; on a Pi 4 the native driver has no
PWM, so dimmed lights (``led_brightness`` below 1) fail. Here the choice is explicit and said:

- ``hardware.pin_factory`` names a driver: that one, or a :class:`HardwareError` saying why not;
- ``auto`` tries lgpio, then RPi.GPIO, then the native driver, each only where it can drive this
  board as configured (a Pi 5: lgpio only; dimmed lights: not the native driver; a board that is
  not a Raspberry Pi: lgpio on ``hardware.gpio_chip`` only). Each fallback is logged as a
  WARNING with its reason, the choice at INFO (at WARNING when it is a fallback).

The driver's name (``lgpio``, ``rpigpio``, ``native``, ``mock``) goes into the health report,
technician mode and the booth's platform line. gpiozero is imported here and in
:mod:`kiosk.hardware.gpio` only; ``$GPIOZERO_PIN_FACTORY`` is not consulted.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpiozero import Device
from gpiozero.exc import PinUnknownPi
from gpiozero.pins.local import get_pi_revision
from gpiozero.pins.mock import MockFactory, MockPWMPin
from gpiozero.pins.pi import PiBoardInfo

from kiosk.config import HardwareConfig, PinFactoryKind
from kiosk.hardware.protocols import HardwareError

log = logging.getLogger(__name__)

#: The order ``auto`` tries the drivers in.
AUTO_ORDER = (PinFactoryKind.LGPIO, PinFactoryKind.RPIGPIO, PinFactoryKind.NATIVE)
#: The SoC of the Raspberry Pi 5 (and CM5, Pi 500), whose pins only lgpio drives.
PI5_SOC = "BCM2712"
#: The revision code lgpio's factory is given on a board that is not a Raspberry Pi (a Pi 4
#: Model B): gpiozero then names the pins GPIO0-27, which lgpio drives as line offsets 0-27.
STAND_IN_REVISION = 0xC03111
#: Where the GPIO character devices are.
DEV = Path("/dev")

#: Class names of gpiozero's pin factories and the names the booth reports for them.
_NAMES = {
    "LGPIOFactory": "lgpio",
    "RPiGPIOFactory": "rpigpio",
    "NativeFactory": "native",
    "MockFactory": "mock",
    "PiGPIOFactory": "pigpio",
}


class PinDriverError(HardwareError):
    """One pin driver cannot drive this booth's pins; the message says why."""


@dataclass(frozen=True)
class Board:
    """The board the booth runs on, as gpiozero identifies a Raspberry Pi."""

    #: The Pi's revision code; None on a machine that is not a Raspberry Pi.
    revision: int | None = None
    #: "BCM2711" (Pi 4), "BCM2712" (Pi 5), ...; None when not a Raspberry Pi.
    soc: str | None = None
    #: "4B", "5B", ...
    model: str | None = None

    @property
    def description(self) -> str:
        if self.revision is None:
            return "not a Raspberry Pi"
        return f"Raspberry Pi {self.model} ({self.soc}, revision {self.revision:x})"


def read_board() -> Board:
    """This machine's board: a Raspberry Pi from its revision code, else ``Board()``."""
    try:
        revision = get_pi_revision()
    except (PinUnknownPi, OSError, ValueError):
        return Board()
    try:
        info = PiBoardInfo.from_revision(revision)
    except PinUnknownPi:
        return Board(revision=revision)
    return Board(revision=revision, soc=str(info.soc), model=str(info.model))


@dataclass(frozen=True)
class PinDriver:
    """The pin driver chosen, and why."""

    #: "lgpio", "rpigpio", "native", "mock" (or "pigpio", given by a caller).
    name: str
    #: The gpiozero pin factory.
    factory: Any
    #: Why this one: "configured", "the first choice", or why the ones before it could not.
    reason: str
    #: Whether it can dim lights (PWM).
    pwm: bool
    #: Whether the booth made the factory (and so closes it); False for one given to it.
    owned: bool = True

    def close(self) -> None:
        """Release the driver (lgpio's gpiochip handle) if the booth made it."""
        if self.owned:
            self.factory.close()


#: Makes one driver's factory for a configuration on a board, or raises PinDriverError.
Maker = Callable[[HardwareConfig, Board], Any]


def factory_name(factory: Any) -> str:
    """The name the booth reports for a gpiozero pin factory."""
    for cls in type(factory).__mro__:
        if cls.__name__ in _NAMES:
            return _NAMES[cls.__name__]
    return type(factory).__name__.lower().removesuffix("factory") or "unknown"


def _gpiochip_problem(chip: int, exc: BaseException) -> str:
    path = DEV / f"gpiochip{chip}"
    if not path.exists():
        return f"{path} does not exist (no GPIO driver for this board, or the wrong chip)"
    if not os.access(path, os.R_OK | os.W_OK):
        return (
            f"{path} cannot be opened by this user: the booth's user needs the gpio group and "
            "a udev rule giving that group /dev/gpiochip*"
        )
    return f"{path} cannot be opened: {exc}"


def _make_lgpio(config: HardwareConfig, board: Board) -> Any:
    try:
        from gpiozero.pins.lgpio import LGPIOFactory
    except ModuleNotFoundError as exc:
        raise PinDriverError(f"lgpio is not installed ({exc})") from exc
    except OSError as exc:
        if ".lgd-nfy" in str(exc):
            # gpiozero #1106: lgpio's import opens the pipe it made in the working directory.
            raise PinDriverError(
                "lgpio cannot make its notification pipe in the working directory: "
                "set LG_WD to a writable directory in the booth's environment "
                f"(the booth's unit sets LG_WD=/run/videobooth) ({exc})"
            ) from exc
        raise PinDriverError(f"lgpio cannot be imported: {exc}") from exc
    chip = config.gpio_chip
    if board.revision is None and chip is None:
        raise PinDriverError(
            "this is not a Raspberry Pi (no board revision in /proc/device-tree or "
            "/proc/cpuinfo): set hardware.gpio_chip to drive that gpiochip's lines by offset"
        )
    if chip is None:
        chip = 4 if board.soc == PI5_SOC and (DEV / "gpiochip4").exists() else 0
    revision = board.revision if board.revision is not None else STAND_IN_REVISION

    class BoothLGPIOFactory(LGPIOFactory):  # type: ignore[misc]
        """lgpio on the board read once by the booth (a stand-in revision off a Pi)."""

        def _get_revision(self) -> int:
            return revision

    try:
        return BoothLGPIOFactory(chip=chip)
    except Exception as exc:  # lgpio.error: "can not open gpiochip"
        raise PinDriverError(_gpiochip_problem(chip, exc)) from exc


def _make_rpigpio(config: HardwareConfig, board: Board) -> Any:
    if board.revision is None:
        raise PinDriverError("RPi.GPIO drives a Raspberry Pi's pins only")
    if board.soc == PI5_SOC:
        raise PinDriverError("RPi.GPIO cannot drive a Raspberry Pi 5's pins")
    try:
        from gpiozero.pins.rpigpio import RPiGPIOFactory
    except ImportError as exc:
        raise PinDriverError(f"RPi.GPIO is not installed ({exc})") from exc
    try:
        return RPiGPIOFactory()
    except Exception as exc:
        raise PinDriverError(f"RPi.GPIO cannot be used: {exc}") from exc


def _make_native(config: HardwareConfig, board: Board) -> Any:
    if board.revision is None:
        raise PinDriverError("gpiozero's native driver drives a Raspberry Pi's pins only")
    if board.soc == PI5_SOC:
        raise PinDriverError(
            "gpiozero's native driver cannot drive a Raspberry Pi 5's pins (no BCM2712 support)"
        )
    if config.led_brightness < 1:
        raise PinDriverError(
            "gpiozero's native driver has no PWM, and hardware.led_brightness "
            f"{config.led_brightness:g} needs it to dim the lights"
        )
    from gpiozero.pins.native import NativeFactory

    try:
        return NativeFactory()
    except Exception as exc:
        raise PinDriverError(f"gpiozero's native driver cannot be used: {exc}") from exc


def _make_mock(config: HardwareConfig, board: Board) -> Any:
    return MockFactory(pin_class=MockPWMPin)


MAKERS: Mapping[PinFactoryKind, Maker] = {
    PinFactoryKind.LGPIO: _make_lgpio,
    PinFactoryKind.RPIGPIO: _make_rpigpio,
    PinFactoryKind.NATIVE: _make_native,
    PinFactoryKind.MOCK: _make_mock,
}
_PWM = {"lgpio": True, "rpigpio": True, "native": False, "mock": True, "pigpio": True}


def choose_pin_driver(
    config: HardwareConfig,
    *,
    given: Any = None,
    board: Callable[[], Board] | None = None,
    makers: Mapping[PinFactoryKind, Maker] = MAKERS,
) -> PinDriver:
    """The pin driver for ``config``; :class:`HardwareError` naming every one tried if none can.

    ``given`` is a gpiozero pin factory chosen by the caller (tests pass ``MockFactory``); in
    ``auto`` a factory already set as gpiozero's default in this process is taken as given.
    ``board`` reads the board (default :func:`read_board`); ``makers`` make each driver.
    Blocks (opens the gpiochip): call it in a worker thread.
    """
    if given is None and config.pin_factory is PinFactoryKind.AUTO:
        given = Device.pin_factory
    if given is not None:
        name = factory_name(given)
        log.info("gpio: pins driven by %s (given to the booth)", name)
        return PinDriver(name, given, "given to the booth", _PWM.get(name, False), owned=False)
    machine = (board or read_board)()
    if config.pin_factory is not PinFactoryKind.AUTO:
        chosen = config.pin_factory
        try:
            factory = makers[chosen](config, machine)
        except PinDriverError as exc:
            raise HardwareError(
                f"hardware.pin_factory = {chosen.value!r} cannot be used on this board "
                f"({machine.description}): {exc}"
            ) from exc
        log.info("gpio: pins driven by %s (configured) on %s", chosen.value, machine.description)
        return PinDriver(chosen.value, factory, "configured", _PWM[chosen.value])
    reasons: list[str] = []
    for index, kind in enumerate(AUTO_ORDER):
        try:
            factory = makers[kind](config, machine)
        except PinDriverError as exc:
            reasons.append(f"{kind.value}: {exc}")
            if index + 1 < len(AUTO_ORDER):
                log.warning(
                    "gpio: %s unavailable (%s); trying %s", kind.value, exc, AUTO_ORDER[index + 1]
                )
            else:
                log.warning("gpio: %s unavailable (%s)", kind.value, exc)
            continue
        pwm = _PWM[kind.value]
        if not reasons:
            log.info("gpio: pins driven by %s on %s", kind.value, machine.description)
            return PinDriver(kind.value, factory, "the first choice", pwm)
        reason = "; ".join(reasons)
        log.warning(
            "gpio: pins driven by %s, a fallback, on %s%s (%s)",
            kind.value,
            machine.description,
            "" if pwm else " without PWM",
            reason,
        )
        return PinDriver(kind.value, factory, f"fallback: {reason}", pwm)
    raise HardwareError(
        f"no GPIO pin driver can be used on this board ({machine.description}): "
        + "; ".join(reasons)
    )
