"""The web pages' message catalogues: complete in every language, and every text the pages
name exists (German and English; a missing key would show the key itself to a citizen)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from protocol import ErrorCode
from server.storage import LinkState
from server.updates.rollout import Progress, RolloutState

STATIC = Path(__file__).resolve().parents[2] / "server" / "static"
CATALOGUES = sorted((STATIC / "i18n").glob("*.json"))
PAGES = [STATIC / d for d in ("advisor", "citizen", "admin", "statement", "js")]
#: Keys the scripts build at run time: call.state.<RTCPeerConnection state> and the like.
DYNAMIC = {
    "call.state.new",
    "call.state.connecting",
    "call.state.connected",
    "call.state.reconnecting",
    "call.state.disconnected",
    "call.state.failed",
    "call.state.closed",
    "call.unmute",
    "call.camera_on",
    "state.waiting",
    "state.in_call",
    "state.done",
    "state.cancelled",
    "state.not_arrived",
    # The accessibility statement names the organisation's conformance by its value.
    *(f"statement.status_{level}" for level in ("full", "partial", "none")),
    # ... and shows its texts, or the built-in ones, by their names (the admin page likewise).
    *(f"statement.{text}_none" for text in ("limitations", "feedback", "enforcement")),
    *(f"admin.statement.{text}" for text in ("limitations", "feedback", "enforcement")),
    # The citizen page says a refusal by its reason code: why a link does not open ...
    *(f"citizen.refused.{state.value}" for state in LinkState if state is not LinkState.OPEN),
    "citizen.refused.walk_in_off",
    # The update section names a rollout's state and each booth's progress by their values.
    *(f"admin.updates.state.{state.value}" for state in RolloutState),
    *(f"admin.updates.progress.{progress.value}" for progress in Progress),
    "citizen.refused.rate_limited",
    # ... and the socket errors a citizen can meet, by their code.
    *(
        f"citizen.error.{code.value}"
        for code in (
            ErrorCode.QUEUE_FULL,
            ErrorCode.ALREADY_IN_CALL,
            ErrorCode.RATE_LIMITED,
            ErrorCode.UNKNOWN_TOPIC,
            ErrorCode.UNKNOWN_REGION,
            ErrorCode.CALL_FULL,
            ErrorCode.UNKNOWN_SESSION,
            ErrorCode.NOT_ALLOWED,
        )
    ),
}


def _load(path: Path) -> dict[str, str]:
    data: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _used_keys() -> set[str]:
    keys = set(DYNAMIC)
    for folder in PAGES:
        for path in folder.iterdir():
            text = path.read_text(encoding="utf-8")
            if path.suffix == ".html":
                keys |= set(re.findall(r'data-i18n(?:-[a-z]+)?="([^"]+)"', text))
            elif path.suffix == ".js":
                keys |= set(re.findall(r'\bt\("([a-z_.0-9]+)"', text))
    return keys


def test_there_are_german_and_english_catalogues() -> None:
    assert {p.stem for p in CATALOGUES} >= {"de", "en"}


@pytest.mark.parametrize("catalogue", CATALOGUES, ids=lambda p: p.stem)
def test_every_text_the_pages_use_is_in_every_catalogue(catalogue: Path) -> None:
    missing = _used_keys() - set(_load(catalogue))
    assert not missing, f"{catalogue.name} lacks {sorted(missing)}"


@pytest.mark.parametrize("catalogue", CATALOGUES, ids=lambda p: p.stem)
def test_catalogues_agree_on_keys_and_placeholders(catalogue: Path) -> None:
    english = _load(STATIC / "i18n" / "en.json")
    other = _load(catalogue)
    assert set(other) == set(english)
    for key, text in english.items():
        wanted = set(re.findall(r"\{(\w+)\}", text))
        assert set(re.findall(r"\{(\w+)\}", other[key])) == wanted, f"{catalogue.name}: {key}"
        assert other[key].strip(), f"{catalogue.name}: {key} is empty"


def test_no_catalogue_key_is_unused() -> None:
    unused = set(_load(STATIC / "i18n" / "en.json")) - _used_keys()
    assert not unused, f"texts nobody shows: {sorted(unused)}"
