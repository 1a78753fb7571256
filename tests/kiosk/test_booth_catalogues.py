"""The booth's message catalogues: six languages, every one complete, same placeholders."""

from __future__ import annotations

import re
import string

import pytest

from kiosk.flow import LANGUAGES
from kiosk.i18n import load_catalogue, rtl


def test_the_six_languages_are_there() -> None:
    assert set(LANGUAGES) == {"de", "en", "tr", "uk", "ru", "ar"}
    assert rtl("ar")
    assert not rtl("de")


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_catalogue_is_complete(language: str) -> None:
    texts = load_catalogue().texts
    german, other = texts["de"], texts[language]
    assert set(other) == set(german), set(other) ^ set(german)
    for key, text in german.items():
        names = {f for _, f, _, _ in string.Formatter().parse(text) if f}
        assert {f for _, f, _, _ in string.Formatter().parse(other[key]) if f} == names, key
        assert other[key].strip(), f"{language}: {key} is empty"
        assert not re.search(r"[<>]", other[key]), f"{language}: {key} looks like markup"


def test_texts_are_filled_in() -> None:
    catalogue = load_catalogue()
    assert catalogue.text("en", "waiting.position", position=3) == (
        "You are number 3 in the queue."
    )
    assert "3" in catalogue.text("ar", "waiting.position", position=3)
    assert catalogue.language_name("uk") == "Українська"
