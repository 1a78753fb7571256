"""What the booth shows. pygame is imported only in :mod:`kiosk.ui.window`."""

from kiosk.ui.display import Display, HeadlessDisplay, Screen, open_display

__all__ = ["Display", "HeadlessDisplay", "Screen", "open_display"]
