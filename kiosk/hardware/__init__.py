"""The booth's buttons and lights. gpiozero is imported only in :mod:`kiosk.hardware.gpio`."""

from kiosk.hardware.fake import FakeButton, FakeHardware, FakeLed, FakePresenceSensor
from kiosk.hardware.leds import BUSY, FAULT, OFF, READY, CameraLight, Pattern, StatusLight
from kiosk.hardware.protocols import (
    BoothHardware,
    Button,
    Callback,
    HardwareError,
    Led,
    NullButton,
    NullLed,
    PresenceSensor,
    null_hardware,
    open_hardware,
)

__all__ = [
    "BUSY",
    "FAULT",
    "OFF",
    "READY",
    "BoothHardware",
    "Button",
    "Callback",
    "CameraLight",
    "FakeButton",
    "FakeHardware",
    "FakeLed",
    "FakePresenceSensor",
    "HardwareError",
    "Led",
    "NullButton",
    "NullLed",
    "Pattern",
    "PresenceSensor",
    "StatusLight",
    "null_hardware",
    "open_hardware",
]
