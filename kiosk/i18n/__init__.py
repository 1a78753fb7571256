"""The booth's message catalogues: one TOML data file per language in this folder.

Every catalogue has the same keys as the German one (checked by a test); ``{name}`` fields
are filled in by :meth:`Catalogue.text`. Arabic is written right to left (:func:`rtl`).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from kiosk.flow import LANGUAGES

FOLDER = Path(__file__).parent
RIGHT_TO_LEFT = frozenset({"ar"})
#: The languages in the order the idle screen offers them.
LANGUAGES_IN_ORDER = LANGUAGES


def rtl(language: str) -> bool:
    return language in RIGHT_TO_LEFT


@dataclass(frozen=True)
class Catalogue:
    texts: dict[str, dict[str, str]]

    def text(self, language: str, key: str, **values: object) -> str:
        entries = self.texts.get(language) or self.texts["de"]
        template = entries.get(key) or self.texts["en"].get(key) or key
        return template.format(**values) if values else template

    def language_name(self, language: str) -> str:
        return self.texts[language]["language_name"]


def load_catalogue(folder: Path = FOLDER) -> Catalogue:
    texts: dict[str, dict[str, str]] = {}
    for language in LANGUAGES:
        with (folder / f"{language}.toml").open("rb") as fh:
            data = tomllib.load(fh)
        texts[language] = {str(k): str(v) for k, v in data.items()}
    return Catalogue(texts)
