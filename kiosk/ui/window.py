"""A pygame window: the advisor large, the self-view small, one line of status."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pygame

from kiosk.ui.display import Screen

log = logging.getLogger(__name__)

SIZE = (1024, 600)
BACKGROUND = (16, 24, 40)
TEXT = (240, 240, 240)


class WindowDisplay:
    """The provisional booth window (the full touchscreen UI replaces it)."""

    def __init__(self, size: tuple[int, int] = SIZE) -> None:
        pygame.display.init()
        pygame.font.init()
        self._surface = pygame.display.set_mode(size)
        pygame.display.set_caption("Videobooth")
        self._font = pygame.font.Font(None, 40)
        self._size = size

    def _blit_frame(self, frame: Any, rect: pygame.Rect) -> None:
        # Scaled once, by swscale, straight to the target rectangle.
        rgb = frame.to_ndarray(format="rgb24", width=rect.width, height=rect.height)
        surface = pygame.surfarray.make_surface(np.ascontiguousarray(rgb.swapaxes(0, 1)))
        self._surface.blit(surface, rect)

    def draw(self, screen: Screen) -> None:
        width, height = self._size
        self._surface.fill(BACKGROUND)
        if screen.remote_video is not None:
            self._blit_frame(screen.remote_video, pygame.Rect(0, 0, width, height - 60))
        if screen.self_view is not None:
            small = pygame.Rect(width - 250, height - 250, 240, 180)
            big = pygame.Rect((width - 640) // 2, 20, 640, 480)
            self._blit_frame(screen.self_view, small if screen.remote_video is not None else big)
        label = self._font.render(screen.headline, True, TEXT)
        self._surface.blit(label, (20, height - 50))
        pygame.display.flip()

    def poll(self) -> list[str]:
        inputs: list[str] = []
        for event in pygame.event.get():
            if event.type == pygame.QUIT:
                inputs.append("quit")
            elif event.type == pygame.KEYDOWN and event.key in (pygame.K_SPACE, pygame.K_RETURN):
                inputs.append("call")
            elif event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE:
                inputs.append("hangup")
            elif event.type == pygame.MOUSEBUTTONDOWN:
                inputs.append("call")
        return inputs

    def close(self) -> None:
        pygame.display.quit()
