"""The glass log (kiosk/ui/glass.py): the advisor's stamp read off the drawn call screen,
drawn unscaled (a camera's frame converted for the stage) or scaled (a smaller frame), on the
booth image's panel and a smaller one; one line per new frame."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame

from kiosk.flow import State, Visit
from kiosk.i18n import load_catalogue
from kiosk.media import Stamp, TestPattern
from kiosk.ui.booth_view import FrameCache
from kiosk.ui.glass import GlassLog, stamp_on_screen
from kiosk.ui.screens import BoothScreens, Theme, View
from kiosk.ui.text import Fonts


@pytest.fixture(scope="module")
def kit() -> tuple[object, Fonts]:
    pygame.display.init()
    pygame.font.init()
    return load_catalogue(), Fonts()


def call_screen(
    kit: tuple[object, Fonts], panel: tuple[int, int]
) -> tuple[BoothScreens, pygame.Surface]:
    catalogue, fonts = kit
    screens = BoothScreens(panel, Theme(), catalogue, fonts=fonts)  # type: ignore[arg-type]
    return screens, pygame.Surface(panel)


def draw(screens: BoothScreens, surface: pygame.Surface, frame: object, frames: FrameCache) -> None:
    """The call screen with ``frame`` (an av.VideoFrame) on the stage, converted for the
    stage as the display loop converts it, and a self-view."""
    stage = screens.video_boxes()[0]
    view = View(
        state=State.IN_CALL,
        visit=Visit(language="de"),
        remote_frame=frames.rgb("advisor", frame, stage),
        remote_frame_id=frame,
        advisor_name="Alex",
        self_view=np.full((240, 320, 3), 80, dtype=np.uint8),
    )
    screens.draw(surface, view)


# On a wider panel the stage's 4:3 frame grows under the self-view (top right), which then
# covers the stamp's last bits.
@pytest.mark.parametrize("panel", [(1024, 600), (800, 480)])
@pytest.mark.parametrize("camera", [(640, 480), (320, 240)])
def test_the_advisor_s_stamp_is_read_off_the_screen(
    kit: tuple[object, Fonts], panel: tuple[int, int], camera: tuple[int, int]
) -> None:
    screens, surface = call_screen(kit, panel)
    pattern = TestPattern(*camera)
    frames = FrameCache()
    for n in (7, 8):
        stamp = Stamp(n, 123_456 + n)
        draw(screens, surface, pattern.render(stamp), frames)
        assert stamp_on_screen(surface, screens.placed["advisor"]) == stamp


def test_one_line_per_new_frame_with_the_time_it_was_drawn(
    kit: tuple[object, Fonts], tmp_path: Path
) -> None:
    screens, surface = call_screen(kit, (1024, 600))
    pattern = TestPattern(640, 480)
    frames = FrameCache()
    path = tmp_path / "glass.log"
    glass = GlassLog(path, clock=lambda: 1000.25)
    first, second = (pattern.render(Stamp(n, 999_000 + n)) for n in (1, 2))
    for frame in (first, first, second):  # drawn again: not a new frame
        draw(screens, surface, frame, frames)
        glass.drawn(screens.placed, surface)
    # A frame whose stamp is covered is logged as unreadable.
    draw(screens, surface, pattern.render(Stamp(3, 3)), frames)
    pygame.draw.rect(surface, (0, 0, 0), screens.placed["advisor"].rect)
    glass.drawn(screens.placed, surface)
    glass.close()
    glass.close()
    assert path.read_text().splitlines() == [
        "1000250 1 999001",
        "1000250 2 999002",
        "1000250 - -",
    ]
