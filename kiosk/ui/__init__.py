"""What the booth shows. pygame is imported only in :mod:`kiosk.ui.window` and the screens."""

from kiosk.ui.actions import Action, Input, PinKey
from kiosk.ui.display import Display, HeadlessDisplay, Screen, open_display

__all__ = ["Action", "Display", "HeadlessDisplay", "Input", "PinKey", "Screen", "open_display"]
