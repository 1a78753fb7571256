"""The accessibility statement: everybody reads it, administrators change it (checked, audited).

Abuse that fails: an advisor or a stranger changing it, markup or invisible characters in its
texts, a made-up e-mail address that would become a link, dates in the future or a review
before the statement was made; each is refused with the field named and changes nothing.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import aiohttp
import pytest

from server.keys import DATABASE
from server.storage import list_audit
from tests.server.conftest import Harness
from tests.server.test_admin import admin, call

__all__ = ["admin"]  # the fixture, shared with test_admin

PATH = "/accessibility-statement"
STATEMENT = {
    "conformance": "partial",
    "prepared_on": "2026-11-02",
    "reviewed_on": "2026-12-01",
    "feedback_email": " barrierefrei@musterhausen.example ",
    "texts": {
        "de": {
            "limitations": "  Keine Live-Untertitel.\r\nAlternative: Dolmetschung.  ",
            "feedback": "Telefon 0800 123",
            "enforcement": "",
        },
        "en": {"limitations": "No live captions."},
    },
}


async def _public(harness: Harness) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.get(harness.url("/api/v1" + PATH)) as response,
    ):
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


async def test_statement_defaults_are_public(harness: Harness) -> None:
    statement = await _public(harness)
    assert statement == {
        "conformance": "partial",
        "prepared_on": None,
        "reviewed_on": None,
        "feedback_email": None,
        "texts": {},
        "set": False,
        "languages": ["de", "en"],
    }


async def test_statement_page_is_served_to_everyone(harness: Harness) -> None:
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.get(harness.url("/accessibility/")) as response,
    ):
        assert response.status == 200
        page = await response.text()
    assert '<script type="module" src="/static/statement/statement.js">' in page


async def test_statement_is_stored_cleaned_audited_and_served(
    harness: Harness, admin: aiohttp.ClientSession
) -> None:
    status, saved = await call(admin, harness, "PUT", PATH, STATEMENT)
    assert status == 200, saved
    statement = await _public(harness)
    assert statement["set"] is True
    assert statement["feedback_email"] == "barrierefrei@musterhausen.example"
    assert (statement["prepared_on"], statement["reviewed_on"]) == ("2026-11-02", "2026-12-01")
    assert statement["texts"] == {
        "de": {
            "limitations": "Keine Live-Untertitel.\nAlternative: Dolmetschung.",
            "feedback": "Telefon 0800 123",
        },
        "en": {"limitations": "No live captions."},
    }
    events = await list_audit(harness.app[DATABASE])
    assert [(e.action, e.detail) for e in events] == [
        ("accessibility_statement.update", '{"conformance":"partial","languages":["de","en"]}')
    ]


TOMORROW = (date.today() + timedelta(days=1)).isoformat()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"conformance": "mostly"}, "conformance"),
        ({"feedback_email": "javascript:alert(1)"}, "feedback_email: not an e-mail address"),
        ({"feedback_email": "a b@example.org"}, "feedback_email"),
        ({"feedback_email": "x@y"}, "feedback_email"),
        ({"prepared_on": TOMORROW, "reviewed_on": None}, "prepared_on: a date in the future"),
        ({"reviewed_on": "2026-10-01"}, "reviewed_on: the review cannot be before"),
        ({"prepared_on": "2026-02-30"}, "prepared_on"),
        ({"texts": {"fr": {"limitations": "Aucune"}}}, "texts.fr"),
        ({"texts": {"de": {"limitations": "<a href=x>hier</a>"}}}, "plain text only"),
        ({"texts": {"en": {"feedback": "Call \u202eus"}}}, "U+202E"),
        ({"texts": {"en": {"enforcement": "x" * 1001}}}, "texts.en.enforcement"),
        ({"surprise": True}, "surprise"),
    ],
)
async def test_statement_refuses_bad_input_and_keeps_what_was_there(
    harness: Harness, admin: aiohttp.ClientSession, change: dict[str, Any], words: str
) -> None:
    status, _ = await call(admin, harness, "PUT", PATH, STATEMENT)
    assert status == 200
    before = await _public(harness)
    status, problem = await call(admin, harness, "PUT", PATH, {**STATEMENT, **change})
    assert status in (400, 422), problem
    assert words.lower() in str(problem).lower(), problem
    assert await _public(harness) == before


async def test_statement_only_administrators_change_it(harness: Harness) -> None:
    await harness.add_advisor("alice")
    async with await harness.login("alice") as advisor:
        status, _ = await call(advisor, harness, "PUT", PATH, STATEMENT)
        assert status == 403
    async with aiohttp.ClientSession() as anonymous:
        status, _ = await call(anonymous, harness, "PUT", PATH, STATEMENT)
        assert status == 401
    assert (await _public(harness))["set"] is False
