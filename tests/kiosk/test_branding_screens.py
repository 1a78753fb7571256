"""The organisation's texts on the booth's idle, consent and ended screens, in every language
with the fallback, and a refused enrolment explained in every language; rendered with SDL's
dummy driver and saved under test-output/screens/branding/ (look at them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame

from kiosk.flow import LANGUAGES, State, Visit
from kiosk.i18n import Catalogue, load_catalogue
from kiosk.ui.screens import BoothScreens, Theme, View
from kiosk.ui.text import Fonts

OUT = Path(__file__).resolve().parents[2] / "test-output" / "screens" / "branding"
SIZES = [(800, 480), (1920, 1080)]

#: The longest texts the server accepts (200, 200, 1000 and 300 characters) in three languages;
#: none in Turkish, Ukrainian and Russian, which fall back.
WORDS = {
    "de": "Willkommen im Bürgeramt Mitte",
    "en": "Welcome to the Citizens' Office",
    "ar": "مرحبًا بكم في مكتب المواطنين",
}


def _long(start: str, length: int) -> str:
    text = start
    while len(text) < length:
        text += " " + start
    return text[:length].rstrip()


TEXTS = {
    language: {
        "welcome": _long(words, 200),
        "booth_idle": _long(f"{words}: idle", 200),
        "privacy_notice": _long(f"{words}: privacy", 1000),
        "ended": _long(f"{words}: ended", 300),
    }
    for language, words in WORDS.items()
}


@pytest.fixture(scope="module")
def kit() -> tuple[Catalogue, Fonts]:
    pygame.display.init()
    pygame.font.init()
    return load_catalogue(), Fonts()


def _render(
    kit: tuple[Catalogue, Fonts], size: tuple[int, int], view: View, theme: Theme, name: str
) -> BoothScreens:
    catalogue, fonts = kit
    screens = BoothScreens(size, theme, catalogue, fonts=fonts)
    surface = pygame.Surface(size)
    screens.draw(surface, view)
    folder = OUT / f"{size[0]}x{size[1]}"
    folder.mkdir(parents=True, exist_ok=True)
    pygame.image.save(surface, str(folder / f"{name}.png"))
    return screens


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_organisations_texts_on_idle_consent_and_ended(
    kit: tuple[Catalogue, Fonts], size: tuple[int, int]
) -> None:
    catalogue, _ = kit
    theme = Theme.from_branding("Stadt Beispiel", "#0b5cad", None, TEXTS)
    problems: list[str] = []
    for language in LANGUAGES:
        own = TEXTS.get(language)
        visit = Visit(language=language)
        for state in (State.IDLE, State.CONSENT, State.ENDED):
            screens = _render(
                kit, size, View(state=state, visit=visit), theme, f"{language}-{state.value}"
            )
            problems += screens.overflows
            drawn = screens.drawn
            if state is State.IDLE:
                wanted = (
                    [own["welcome"], own["booth_idle"]]
                    if own
                    else [
                        catalogue.text(language, "idle.title"),
                        catalogue.text(language, "idle.subtitle"),
                    ]
                )
            elif state is State.CONSENT:
                # The notice is shown in every language: English where there is none.
                wanted = [(own or TEXTS["en"])["privacy_notice"]]
                assert catalogue.text(language, "consent.recorded") not in " ".join(drawn)
            else:
                wanted = [own["ended"] if own else catalogue.text(language, "ended.text")]
            for text in wanted:
                assert text in drawn, (language, state, text[:40], drawn)
    # A lost connection says so first, and the organisation's words follow.
    lost = _render(
        kit,
        size,
        View(state=State.ENDED, visit=Visit(language="ar"), ended_reason="connection_lost"),
        theme,
        "ar-ended-lost",
    )
    joined = "\n".join(lost.drawn)
    assert catalogue.text("ar", "ended.connection_lost") in joined
    assert TEXTS["ar"]["ended"] in joined
    assert not problems, "\n".join(problems)


def test_without_texts_the_built_in_ones_stay(kit: tuple[Catalogue, Fonts]) -> None:
    catalogue, _ = kit
    theme = Theme.from_branding("Stadt Beispiel", None, None, {})
    for state, keys in [
        (State.IDLE, ["idle.title", "idle.subtitle"]),
        (State.CONSENT, ["consent.recorded", "consent.chat", "consent.camera"]),
        (State.ENDED, ["ended.text"]),
    ]:
        screens = _render(
            kit, (800, 480), View(state=state, visit=Visit(language="tr")), theme, "tr-builtin"
        )
        text = "\n".join(screens.drawn)
        for key in keys:
            assert catalogue.text("tr", key) in text, key


@pytest.mark.parametrize("reason", ["token_used", "token_expired", "booth_revoked", "odd"])
def test_a_refused_enrolment_says_what_to_do_in_every_language(
    kit: tuple[Catalogue, Fonts], reason: str
) -> None:
    catalogue, _ = kit
    key = "enrol.refused" if reason == "odd" else f"enrol.{reason}"
    texts = {catalogue.text(language, key) for language in LANGUAGES}
    assert len(texts) == len(LANGUAGES)  # translated, not English six times
    problems: list[str] = []
    for size in SIZES:
        for language in LANGUAGES:
            view = View(
                state=State.ENROLMENT, visit=Visit(language=language), enrolment_problem=reason
            )
            screens = _render(kit, size, view, Theme(), f"{language}-enrolment-{reason}")
            problems += screens.overflows
            assert catalogue.text(language, key) in screens.drawn
            # Never the server's English message or the bare code.
            assert not any(reason in text for text in screens.drawn)
    assert not problems, "\n".join(problems)
