"""The booth's touchscreen: a pygame window (fullscreen on the booth) showing
:mod:`kiosk.ui.screens`, and the taps, clicks and keys turned into the booth's inputs."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import pygame

from kiosk import flow
from kiosk.i18n import load_catalogue
from kiosk.ui.actions import Action, Input, PinKey
from kiosk.ui.display import Screen
from kiosk.ui.screens import BoothScreens, Target, Theme, View, target_at

log = logging.getLogger(__name__)

#: A press this long in the top corner opens the technician PIN screen (the hidden gesture).
GESTURE_SECONDS = 3.0
PIN_DIGITS = 12


class WindowDisplay:
    """Draws every frame from the booth's :class:`View`; touch and mouse both work."""

    def __init__(self, size: tuple[int, int] | None = None, theme: Theme | None = None) -> None:
        pygame.display.init()
        if pygame.display.get_driver() == "KMSDRM":
            # Straight on KMS/DRM, SDL presents frames with a renderer on EGL; its first choice,
            # desktop OpenGL, is missing on the booth image (no libGL), and SDL then takes GL
            # calls from the GLES library: every frame black. OpenGL ES 2 is what the Pi's GPU
            # and Mesa's software fallback speak.
            os.environ.setdefault("SDL_RENDER_DRIVER", "opengles2")
        pygame.font.init()
        if size is None:  # the booth: the panel's own resolution, no window frame
            self._surface = pygame.display.set_mode((0, 0), pygame.FULLSCREEN)
            pygame.mouse.set_visible(False)
        else:
            self._surface = pygame.display.set_mode(size)
        pygame.display.set_caption("Videobooth")
        self._size = self._surface.get_size()
        self.screens = BoothScreens(self._size, theme or Theme(), load_catalogue())
        self._targets: list[Target] = []
        self._pin = ""
        self._press: tuple[tuple[int, int], float] | None = None
        #: What the window shows must be drawn again although nothing changed.
        self.stale = True
        log.info("booth screen %dx%d through %s", *self._size, pygame.display.get_driver())

    @property
    def targets(self) -> list[Target]:
        """The touch targets of the frame drawn last."""
        return list(self._targets)

    def set_theme(self, theme: Theme) -> None:
        self.screens.theme = theme

    def draw(self, screen: Screen) -> None:
        view = screen.view
        if not isinstance(view, View):
            view = View(state=flow.State.OFFLINE)
        if view.state is not flow.State.TECHNICIAN_PIN:
            self._pin = ""
        view.pin_digits = len(self._pin)
        self._targets = self.screens.draw(self._surface, view)
        pygame.display.flip()
        self.stale = False

    def _corner(self, pos: tuple[int, int]) -> bool:
        width, height = self._size
        return pos[0] > width * 0.9 and pos[1] < height * 0.12

    def poll(self) -> list[Input]:
        inputs: list[Input] = []
        for event in pygame.event.get():
            if event.type == pygame.QUIT:
                inputs.append(Action.QUIT)
            elif event.type == pygame.MOUSEBUTTONDOWN:
                self._press = (event.pos, time.monotonic())
            elif event.type == pygame.MOUSEBUTTONUP:
                press, self._press = self._press, None
                held = press is not None and time.monotonic() - press[1] >= GESTURE_SECONDS
                if held and press and self._corner(press[0]) and self._corner(event.pos):
                    inputs.append(flow.TechnicianGesture())
                    continue
                inputs.extend(self._tap(event.pos))
            elif event.type == pygame.KEYDOWN:
                inputs.extend(self._key(event))
            elif event.type in (pygame.WINDOWEXPOSED, pygame.VIDEOEXPOSE):
                self.stale = True  # uncovered on a desktop: drawn again, changed or not
        return inputs

    def _tap(self, pos: tuple[int, int]) -> list[Input]:
        target = target_at(self._targets, pos)
        if target is None:
            return []
        if isinstance(target.action, PinKey):
            return self._pin_key(target.action.key)
        if target.event is not None:
            return [target.event]
        return [target.action] if target.action is not None else []

    def _pin_key(self, key: str) -> list[Input]:
        if key == "delete":
            self._pin = self._pin[:-1]
        elif key == "ok":
            pin, self._pin = self._pin, ""
            return [flow.PinEntered(pin)]
        elif len(self._pin) < PIN_DIGITS:
            self._pin += key
        return []

    def _key(self, event: Any) -> list[Input]:
        """A keyboard (development, and booths with a keypad): digits, Enter, Escape."""
        if event.key == pygame.K_ESCAPE:
            return [flow.Cancel()]
        if event.key in (pygame.K_RETURN, pygame.K_KP_ENTER):
            return [Action.CALL]
        if event.key == pygame.K_BACKSPACE:
            return [flow.Backspace()]
        if event.unicode and event.unicode.isdigit():
            return [flow.Digit(event.unicode)]
        return []

    def close(self) -> None:
        pygame.display.quit()
