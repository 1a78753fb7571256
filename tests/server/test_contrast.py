"""WCAG 2.1 AA: every text/background pair the web pages use has a contrast of at least 4.5."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CSS = Path(__file__).resolve().parents[2] / "server" / "static" / "css" / "base.css"

# (text, background, where) — the pairs the stylesheet combines.
PAIRS = [
    ("--fg", "--bg", "page text"),
    ("--muted", "--bg", "hints and statistics"),
    ("#fff", "--accent", "buttons and the top bar"),
    ("#fff", "--danger", "end call"),
    ("#fff", "--muted", "pressed buttons"),
    ("--accent", "#fff", "top bar buttons"),
    ("--fg", "#dfe5ee", "state pills"),
    ("--fg", "#ffe08a", "waiting state"),
    ("--fg", "#b7e4c7", "in-call state"),
    ("--fg", "#fff4ce", "notices"),
    ("--fg", "#fff", "cards"),
    ("--accent", "#fff", "secondary buttons"),
    ("--muted", "#fff", "waiting times on cards"),
    ("#fff", "#000000", "names under participants' video"),
    ("--fg", "#ffe08a", "reconnecting pill"),
]


def _variables() -> dict[str, str]:
    return dict(re.findall(r"(--[a-z]+):\s*(#[0-9a-fA-F]{6})", CSS.read_text()))


def _luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _hex(value: str, variables: dict[str, str]) -> str:
    colour = variables.get(value, value)
    return "#ffffff" if colour.lower() == "#fff" else colour


@pytest.mark.parametrize(("text", "background", "where"), PAIRS)
def test_contrast_is_at_least_aa(text: str, background: str, where: str) -> None:
    variables = _variables()
    lighter, darker = sorted(
        (_luminance(_hex(text, variables)), _luminance(_hex(background, variables))),
        reverse=True,
    )
    ratio = (lighter + 0.05) / (darker + 0.05)
    assert ratio >= 4.5, f"{where}: {text} on {background} has contrast {ratio:.2f}"


def test_the_booth_draws_with_the_pages_colours() -> None:
    """One palette in two syntaxes: the booth's default theme (pygame) and base.css's tokens."""
    from kiosk.ui.theme import Theme

    variables = _variables()
    theme = Theme()
    for token, colour in (
        ("--bg", theme.background),
        ("--fg", theme.text),
        ("--muted", theme.muted),
        ("--accent", theme.primary),
        ("--danger", theme.danger),
    ):
        assert _hex(token, variables).lower() == "#{:02x}{:02x}{:02x}".format(*colour), token
