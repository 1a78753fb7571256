"""The advisor's video as the citizen sees it: each new frame's stamp read off the screen.

For the glass-to-glass benchmark (``bench/glass.py``): the advisor's browser sends frames that
carry the test pattern's stamp (:mod:`kiosk.media.stamp`, the capture time in wall-clock
milliseconds), and the booth, started with ``--glass-log``, reads the stamp back from its
screen surface right after each new frame of the advisor is drawn and presented, and writes
one line per frame: the time it was drawn, then the frame number and the capture time the
stamp says (``-`` for both when no stamp can be read there: on a panel larger than the booth
image's 1024 x 600 the self-view's tile may cover the end of a 4:3 frame's stamp).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import numpy as np
import pygame

from kiosk.media.stamp import Stamp, cell_centres, stamp_from_cells
from kiosk.ui.canvas import ADVISOR, Placed

log = logging.getLogger(__name__)


def stamp_on_screen(surface: pygame.Surface, placed: Placed) -> Stamp | None:
    """The stamp of the frame drawn at ``placed`` on ``surface``, read off the screen's
    pixels; None where it is not drawn whole or not readable."""
    xs, ys = cell_centres(placed.size[0])
    screen_x = (placed.left + xs * placed.scale).astype(np.intp)
    screen_y = (placed.top + ys * placed.scale).astype(np.intp)
    rect = placed.rect
    if not (rect.left <= screen_x.min() and screen_x.max() < rect.right) or not (
        rect.top <= screen_y.min() and screen_y.max() < rect.bottom
    ):
        return None
    pixels = pygame.surfarray.pixels3d(surface)  # indexed [x, y], a view of the screen
    try:
        samples = pixels[screen_x[None, :], screen_y[:, None]]
    finally:
        del pixels  # unlocks the surface
    return stamp_from_cells(samples)


class GlassLog:
    """One line per new frame of the advisor drawn on the screen (see the module's text)."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        # A line buffer of a local file: a few dozen bytes 30 times a second, written where
        # the frame is drawn (a worker thread would only blur the time it records).
        self._file: TextIO = path.open("a", buffering=1)
        self._clock = clock
        self._last: object = None
        log.info("glass log: the advisor's frames as drawn go to %s", path)

    def drawn(self, placed: dict[str, Placed], surface: pygame.Surface | None = None) -> None:
        """The screen (``surface``, the display's by default) was drawn and presented;
        ``placed``: where each participant's frame went (``Canvas.placed``)."""
        advisor = placed.get(ADVISOR)
        screen = surface or pygame.display.get_surface()
        if advisor is None or advisor.frame_id is self._last or screen is None:
            return
        self._last = advisor.frame_id
        now_ms = int(self._clock() * 1000)
        stamp = stamp_on_screen(screen, advisor)
        if stamp is None:
            self._file.write(f"{now_ms} - -\n")
        else:
            self._file.write(f"{now_ms} {stamp.frame_number} {stamp.capture_ms}\n")

    def close(self) -> None:
        """Safe to call twice."""
        self._file.close()
