"""A real booth (kiosk.app.Booth) run in the test's own process against a real server process,
its screen drawn by the booth's own window code on SDL's dummy driver: the test can drive the
booth's flow as taps would and look at, and save, what the screen shows.

The booth fetches topics and branding from the server itself, exactly as on a Pi; only the
panel is SDL's dummy one (headless), 1024 x 600 like the booth image's panel.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame

from kiosk.app import Booth
from kiosk.config import BoothConfig, CameraConfig
from kiosk.flow import State
from kiosk.ui import Screen
from kiosk.ui.booth_view import theme_for, view_of
from kiosk.ui.window import WindowDisplay

#: Where the screenshots go (look at them).
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "e2e"
PANEL = (1024, 600)


class BoothScreen:
    """The booth and its drawn screen."""

    def __init__(self, booth: Booth, folder: Path) -> None:
        self.booth = booth
        self.folder = folder
        self.display = WindowDisplay(PANEL)

    def draw(self, language: str | None = None) -> list[str]:
        """Draw the booth's screen as its display loop does; every text on it. With
        ``language`` the same view is drawn in that language instead of the visitor's."""
        view = view_of(self.booth)
        if language is not None:
            view.visit = replace(view.visit, language=language)
        self.display.set_theme(theme_for(self.booth.info))
        self.display.draw(Screen(state=str(self.booth.state), headline="", view=view))
        return list(getattr(self.display.screens, "drawn", []))

    def save(self, name: str, language: str | None = None) -> tuple[Path, list[str]]:
        """Draw and save the screen as ``<name>.png``; the file and every text on it."""
        texts = self.draw(language)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{name}.png"
        pygame.image.save(pygame.display.get_surface(), str(path))
        return path, texts

    async def until(self, check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        for _ in range(int(timeout / 0.05)):
            if check():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(
            f"timed out after {timeout} s waiting for {what}; the booth is {self.booth.state}"
        )

    async def state(self, state: State) -> None:
        await self.until(lambda: self.booth.state is state, f"the booth to show {state}")


def booth_config(server_url: str, **settings: object) -> BoothConfig:
    return BoothConfig(
        server_url=server_url,
        camera=CameraConfig(kind="test-pattern", allow_test_pattern=True),
        **settings,  # type: ignore[arg-type]
    )


@contextlib.asynccontextmanager
async def running_booth(config: BoothConfig, folder: Path) -> AsyncIterator[BoothScreen]:
    """Run a booth for ``config`` in this event loop; stop it afterwards."""
    booth = Booth(config)
    task = asyncio.create_task(booth.run())
    screen = BoothScreen(booth, folder)
    try:
        yield screen
    finally:
        booth.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 30)
        screen.display.close()
