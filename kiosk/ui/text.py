"""Text on the booth's screen: one font family for every language, wrapped and fitted into its
box, Arabic shaped and laid out right to left.

SDL_ttf shapes Arabic (joined letters) when the font is told the script and the direction; a
line that mixes Arabic with digits or Latin letters is cut into runs, each rendered in its
own direction, and the runs are placed right to left (the paragraph's direction).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import pygame

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
REGULAR, BOLD = FONT_DIR / "DejaVuSans.ttf", FONT_DIR / "DejaVuSans-Bold.ttf"
Colour = tuple[int, int, int]


def _is_rtl(char: str) -> bool:
    return unicodedata.bidirectional(char) in ("R", "AL")


def _is_ltr(char: str) -> bool:
    return unicodedata.bidirectional(char) in ("L", "EN", "AN")


def _directions(line: str) -> list[bool]:
    """Each character's direction (True: right to left). Spaces and punctuation between two
    left-to-right characters are left to right (an e-mail address, "Art. 6"); elsewhere they go
    with the right-to-left paragraph."""
    strong = [False if _is_ltr(c) else True if _is_rtl(c) else None for c in line]
    after: list[bool | None] = [None] * len(line)
    following: bool | None = None
    for index in range(len(line) - 1, -1, -1):
        after[index] = following
        if strong[index] is not None:
            following = strong[index]
    directions, before = [], None
    for index, direction in enumerate(strong):
        if direction is None:
            direction = not (before is False and after[index] is False)
        else:
            before = direction
        directions.append(direction)
    return directions


def runs(line: str) -> list[tuple[str, bool]]:
    """The line's runs in logical order: (text, right_to_left). Spaces and punctuation go
    with the right-to-left text around them (the paragraph is right to left), except inside
    left-to-right text."""
    result: list[tuple[str, bool]] = []
    for char, rtl in zip(line, _directions(line), strict=True):
        if result and result[-1][1] == rtl:
            result[-1] = (result[-1][0] + char, rtl)
        else:
            result.append((char, rtl))
    # Spaces at the edges of a left-to-right run belong to the paragraph around it.
    cleaned: list[tuple[str, bool]] = []
    for text, rtl in result:
        if not rtl and text != text.strip():
            lead = text[: len(text) - len(text.lstrip())]
            trail = text[len(text.rstrip()) :]
            if lead:
                cleaned.append((lead, True))
            cleaned.append((text.strip(), False))
            if trail:
                cleaned.append((trail, True))
        else:
            cleaned.append((text, rtl))
    return [(t, r) for t, r in cleaned if t]


@dataclass
class Fonts:
    """Fonts by size, weight and direction (SDL_ttf fonts carry their direction)."""

    _cache: dict[tuple[int, bool, bool], pygame.font.Font] = field(default_factory=dict)

    def get(self, size: int, *, bold: bool = False, rtl: bool = False) -> pygame.font.Font:
        key = (size, bold, rtl)
        font = self._cache.get(key)
        if font is None:
            path = BOLD if bold else REGULAR
            font = pygame.font.Font(str(path) if path.exists() else None, size)
            if rtl:
                font.set_script("Arab")
                font.set_direction(pygame.DIRECTION_RTL)
            self._cache[key] = font
        return font

    def render(
        self, line: str, size: int, colour: Colour, *, bold: bool = False, rtl: bool = False
    ) -> pygame.Surface:
        """One line of text; right-to-left lines are shaped and ordered run by run."""
        if not rtl or not any(_is_rtl(c) for c in line):
            return self.get(size, bold=bold).render(line, True, colour)
        pieces = [
            self.get(size, bold=bold, rtl=run_rtl).render(text, True, colour)
            for text, run_rtl in runs(line)
        ]
        width = sum(p.get_width() for p in pieces)
        height = max(p.get_height() for p in pieces)
        surface = pygame.Surface((max(1, width), height), pygame.SRCALPHA)
        x = width
        for piece in pieces:  # logical order, placed from the right edge leftwards
            x -= piece.get_width()
            surface.blit(piece, (x, 0))
        return surface

    def width(self, line: str, size: int, *, bold: bool = False, rtl: bool = False) -> int:
        return self.render(line, size, (0, 0, 0), bold=bold, rtl=rtl).get_width()


def wrap(fonts: Fonts, text: str, size: int, width: int, *, bold: bool, rtl: bool) -> list[str]:
    """Greedy word wrap; a single word wider than ``width`` stays on its own line."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        current = ""
        for word in paragraph.split():
            candidate = f"{current} {word}" if current else word
            if current and fonts.width(candidate, size, bold=bold, rtl=rtl) > width:
                lines.append(current)
                current = word
            else:
                current = candidate
        lines.append(current)
    return lines


@dataclass
class Fitted:
    lines: list[pygame.Surface]
    size: int
    fits: bool


def fit(
    fonts: Fonts,
    text: str,
    box: pygame.Rect,
    colour: Colour,
    *,
    size: int,
    min_size: int,
    bold: bool = False,
    rtl: bool = False,
) -> Fitted:
    """The largest size from ``size`` down to ``min_size`` at which ``text`` fits ``box``."""
    current = size
    while True:
        words = wrap(fonts, text, current, box.width, bold=bold, rtl=rtl)
        lines = [fonts.render(line, current, colour, bold=bold, rtl=rtl) for line in words]
        height = sum(int(line.get_height() * 1.15) for line in lines)
        fits = height <= box.height and all(line.get_width() <= box.width for line in lines)
        if fits or current <= min_size:
            return Fitted(lines, current, fits)
        current = max(min_size, int(current * 0.9))
