"""The organisation's look on the booth: colours, name, logo and its own texts.

The organisation's own texts (:attr:`Theme.texts`) take the place of the built-in ones on the
idle, consent and ended screens in the visitor's language; where it wrote none in that
language the built-in text stays, except for its privacy notice, which is shown in English or
German (or any language it exists in) rather than not at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pygame

from kiosk.flow import LANGUAGES
from kiosk.ui.text import Colour

#: The organisation's texts that are shown in another language rather than not at all, and the
#: languages looked at first then (the server's branding module states the same rule).
ALWAYS_SHOWN = frozenset({"privacy_notice"})
FALLBACK_LANGUAGES = ("en", "de")


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
