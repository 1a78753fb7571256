"""The booth's display loop (kiosk.__main__.drive_display) with its own window code on SDL's
dummy driver: a screen without video is drawn when it changes, not again and again (it is
looked at STILL_FPS times a second), and a tap, a key or a new screen is drawn at once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame

import kiosk.__main__ as booth_main
from kiosk import flow
from kiosk.booth import Booth
from kiosk.config import BoothConfig, CameraConfig
from kiosk.flow import State, pin_digest
from kiosk.ui import Screen
from kiosk.ui.window import WindowDisplay


class CountingDisplay(WindowDisplay):
    """The booth's window, noting when each screen was drawn (the loop's clock)."""

    def __init__(self) -> None:
        super().__init__((1024, 600))
        self.drawn: list[float] = []
        self._drawing = asyncio.Event()

    def draw(self, screen: Screen) -> None:
        super().draw(screen)
        self.drawn.append(asyncio.get_running_loop().time())
        self._drawing.set()

    async def next_drawing(self) -> float:
        """When the next screen is drawn."""
        self._drawing.clear()
        await asyncio.wait_for(self._drawing.wait(), 10)
        return self.drawn[-1]


@contextlib.asynccontextmanager
async def offline_booth(folder: Path) -> AsyncIterator[tuple[Booth, CountingDisplay]]:
    """An enrolled booth whose server does not answer (its "offline" screen: no video),
    drawn by the display loop."""
    config = BoothConfig(
        server_url="http://127.0.0.1:9",
        credential="b00th.not-a-secret",
        identity_dir=folder,
        camera=CameraConfig(kind="test-pattern", allow_test_pattern=True),
        technician_pin_digest=pin_digest("2468"),
    )
    booth = Booth(config)
    running = asyncio.create_task(booth.run())
    display = CountingDisplay()
    drawer = asyncio.create_task(booth_main.drive_display(booth, display))
    try:
        for _ in range(200):
            if booth.state is State.OFFLINE:
                break
            await asyncio.sleep(0.05)
        assert booth.state is State.OFFLINE
        yield booth, display
    finally:
        drawer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await drawer
        booth.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(running, 30)
        display.close()


async def test_a_screen_without_video_is_not_drawn_again_while_it_stays_the_same(
    tmp_path: Path,
) -> None:
    async with offline_booth(tmp_path) as (booth, display):
        await asyncio.sleep(0.5)
        before = len(display.drawn)
        await asyncio.sleep(2.0)
        # The old loop drew it 30 times a second, then STILL_FPS times.
        assert len(display.drawn) == before, "an unchanged screen was drawn again"
        # Uncovered on a desktop: drawn again, though unchanged.
        exposed = asyncio.get_running_loop().time()
        pygame.event.post(pygame.event.Event(pygame.WINDOWEXPOSED))
        assert await display.next_drawing() - exposed < 0.5
        # A new screen is drawn at once (the technician's PIN screen).
        asked = asyncio.get_running_loop().time()
        booth.post(flow.TechnicianGesture())
        assert await display.next_drawing() - asked < 0.5
        assert booth.state is State.TECHNICIAN_PIN


async def test_an_input_is_drawn_at_once_on_a_still_screen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Looked at once a second while still: an input waiting for the next look would wait
    # half a second on average; it is drawn at the next look for input instead (DISPLAY_FPS a
    # second), although the screen is still.
    monkeypatch.setattr(booth_main, "STILL_FPS", 1)
    async with offline_booth(tmp_path) as (_, display):
        waits: list[float] = []
        loop = asyncio.get_running_loop()
        for _ in range(6):
            await asyncio.sleep(0.3)
            # A digit on a keypad (a booth with one): an input the loop hands to the booth.
            key: dict[str, Any] = {"key": pygame.K_1, "unicode": "1", "mod": 0}
            pressed = loop.time()
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, **key))
            waits.append(await display.next_drawing() - pressed)
    assert statistics.median(waits) < 0.3, waits
