"""The organisation's look on the booth: colours, name, logo and its own texts.

The organisation's own texts (:attr:`Theme.texts`) take the place of the built-in ones on the
idle, consent and ended screens in the visitor's language; where it wrote none in that
language the built-in text stays, except for its privacy notice, which is shown in English or
German (or any language it exists in) rather than not at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pygame

from kiosk.flow import LANGUAGES
from kiosk.ui.text import Colour

#: The organisation's texts that are shown in another language rather than not at all, and the
#: languages looked at first then (the server's branding module states the same rule).
ALWAYS_SHOWN = frozenset({"privacy_notice"})
FALLBACK_LANGUAGES = ("en", "de")


#: Each text colour of a theme and what it is drawn on, by the theme's names: body text, quiet
#: text, a primary button's label, a secondary button's, a danger button's, a problem box's, the
#: chat over the video.
TEXT_PAIRS = (
    ("text", "background"),
    ("muted", "background"),
    ("on_primary", "primary"),
    ("primary", "secondary"),
    ("on_primary", "danger"),
    ("text", "problem"),
    ("on_stage", "stage"),
)


def luminance(colour: Colour) -> float:
    """WCAG 2.1's relative luminance of an sRGB colour."""

    def linear(value: int) -> float:
        v = value / 255
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in colour)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(one: Colour, other: Colour) -> float:
    """WCAG 2.1's contrast ratio of two colours, from 1 to 21 (AAA text wants 7)."""
    light, dark = sorted((luminance(one), luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _hex(colour: str, default: Colour) -> Colour:
    if len(colour) == 7 and colour.startswith("#"):
        try:
            return (int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16))
        except ValueError:
            return default
    return default


@dataclass(frozen=True)
class Theme:
    """Colours (every text/background pair at WCAG AA or better), name and logo."""

    background: Colour = (245, 247, 250)
    text: Colour = (26, 31, 41)
    muted: Colour = (74, 83, 99)
    primary: Colour = (11, 92, 173)  # buttons; white text on it
    on_primary: Colour = (255, 255, 255)
    secondary: Colour = (255, 255, 255)  # quiet buttons; primary-coloured text
    danger: Colour = (179, 38, 30)
    stage: Colour = (0, 0, 0)  # behind video; white text on it
    on_stage: Colour = (255, 255, 255)
    problem: Colour = (255, 244, 206)
    organisation: str = "Videobooth"
    logo: pygame.Surface | None = None
    #: The organisation's texts: language -> key (welcome, booth_idle, privacy_notice, ended)
    #: -> text.
    texts: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def from_branding(
        cls,
        name: str | None,
        primary: str | None,
        logo: pygame.Surface | None = None,
        texts: dict[str, dict[str, str]] | None = None,
    ) -> Theme:
        """The organisation's theme; its colours were checked for contrast by the server."""
        default = cls()
        return cls(
            primary=_hex(primary or "", default.primary),
            organisation=name or default.organisation,
            logo=logo,
            texts=texts or {},
        )

    def high_contrast(self) -> Theme:
        """The accessibility mode's colours: light text on black, yellow buttons with black
        labels (every pair of :data:`TEXT_PAIRS` at 7:1 or better, WCAG AAA); the
        organisation's colour gives way, its name, logo and texts stay."""
        return replace(
            self,
            background=(0, 0, 0),
            text=(255, 255, 255),
            muted=(230, 230, 230),
            primary=(255, 214, 0),
            on_primary=(0, 0, 0),
            secondary=(0, 0, 0),
            danger=(255, 150, 140),
            stage=(0, 0, 0),
            on_stage=(255, 255, 255),
            problem=(90, 0, 0),
        )

    def contrasts(self) -> dict[str, float]:
        """The contrast ratio of each pair of :data:`TEXT_PAIRS`, named ``ink/ground``."""
        return {
            f"{ink}/{ground}": contrast(getattr(self, ink), getattr(self, ground))
            for ink, ground in TEXT_PAIRS
        }

    def text_for(self, language: str, key: str) -> tuple[str, str] | None:
        """The organisation's text *key* for a visitor in *language*, and the language it is
        written in; None where the built-in text stays."""
        order = [language]
        if key in ALWAYS_SHOWN:
            order += [*FALLBACK_LANGUAGES, *LANGUAGES]
        for candidate in order:
            text = self.texts.get(candidate, {}).get(key, "").strip()
            if text:
                return text, candidate
        return None
