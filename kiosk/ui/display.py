"""The display seam: a small protocol, a headless stand-in, and the factory that picks one."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Protocol

from kiosk.config import DisplayMode
from kiosk.ui.actions import Input

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Screen:
    """Everything one frame of the booth screen is drawn from."""

    state: str
    headline: str
    remote_video: Any = None  # av.VideoFrame (newest only) or None
    self_view: Any = None  # av.VideoFrame or None
    #: The full view for the touchscreen (kiosk.ui.screens.View); None for simple displays.
    view: Any = None


class Display(Protocol):
    """Draws screens and reports the user's few inputs."""

    def draw(self, screen: Screen) -> None: ...

    def poll(self) -> list[Input]:
        """Inputs since the last poll."""
        ...

    def close(self) -> None: ...


class HeadlessDisplay:
    """Draws nothing; used where no screen exists (CI, servers, smoke boots)."""

    def draw(self, screen: Screen) -> None:
        pass

    def poll(self) -> list[Input]:
        return []

    def close(self) -> None:
        pass


def open_display(mode: DisplayMode, *, env: dict[str, str] | None = None) -> Display:
    """A window when asked or when a display exists (mode auto); headless otherwise."""
    environ = os.environ if env is None else env
    has_screen = bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))
    if mode is DisplayMode.HEADLESS or (mode is DisplayMode.AUTO and not has_screen):
        log.info("display: headless (mode %s)", mode)
        return HeadlessDisplay()
    from kiosk.ui.window import WindowDisplay

    log.info("display: window (mode %s)", mode)
    return WindowDisplay(None if mode is DisplayMode.FULLSCREEN else (1024, 600))
