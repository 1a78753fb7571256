"""The accessibility statement a public body must publish (EU directive 2016/2102; in Germany
§ 12b BGG and BITV 2.0), shown to everybody at ``/accessibility/`` and linked from every page.

The page's structure and built-in parts come with the product: what was checked and how (an
accessibility engine at the WCAG 2.1 A/AA rules in every state of every page, keyboard-only and
screen-reader journeys), and the booth's accessibility mode. What only the organisation can say
is set on the administration page and stored as the setting ``accessibility_statement``: how far
the service conforms (``full``, ``partial``, ``none``), when the statement was made and last
reviewed, the parts that are not accessible and their alternatives, how to give feedback (an
e-mail address and a text: telephone, post) and the enforcement procedure (the body a person may
turn to when feedback goes unanswered). Texts are plain text per page language, with the same
checks as the branding's texts (:func:`server.branding.plain_text`).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import Field

from server.api import ADMINS, EVERYONE, Api, ApiCall, RequestBody
from server.auditing import audit
from server.branding import BrandingError, plain_text
from server.http import ProblemError
from server.keys import DATABASE
from server.storage import Database, get_setting, put_setting

STATEMENT_KEY = "accessibility_statement"
#: The languages of the web pages (server/static/i18n).
LANGUAGES = ("de", "en")
TEXT_LIMITS = {"limitations": 4000, "feedback": 1000, "enforcement": 1000}
Conformance = Literal["full", "partial", "none"]
#: A plain address: something, one @, a domain with a dot; no spaces, no markup.
_EMAIL = re.compile(r"[^@\s<>\"']{1,64}@[^@\s<>\"']{1,255}\.[^@\s<>\"'.]{2,63}")


class StatementTexts(RequestBody):
    limitations: Annotated[str, Field(max_length=TEXT_LIMITS["limitations"])] | None = None
    feedback: Annotated[str, Field(max_length=TEXT_LIMITS["feedback"])] | None = None
    enforcement: Annotated[str, Field(max_length=TEXT_LIMITS["enforcement"])] | None = None


class StatementLanguages(RequestBody):
    de: StatementTexts | None = None
    en: StatementTexts | None = None


class StatementBody(RequestBody):
    conformance: Conformance
    prepared_on: date | None = None
    reviewed_on: date | None = None
    feedback_email: Annotated[str, Field(max_length=320)] | None = None
    texts: StatementLanguages = Field(default_factory=StatementLanguages)


def clean_statement(body: StatementBody) -> dict[str, Any]:
    """The statement as stored: checked, trimmed, without empty texts; raises
    :class:`BrandingError` naming the field."""
    if body.prepared_on and body.reviewed_on and body.reviewed_on < body.prepared_on:
        raise BrandingError("reviewed_on: the review cannot be before the statement was made")
    today = date.today()
    for name, day in (("prepared_on", body.prepared_on), ("reviewed_on", body.reviewed_on)):
        if day is not None and day > today:
            raise BrandingError(f"{name}: a date in the future")
    email = (body.feedback_email or "").strip()
    if email and not _EMAIL.fullmatch(email):
        raise BrandingError("feedback_email: not an e-mail address (name@example.org)")
    texts: dict[str, dict[str, str]] = {}
    for language in LANGUAGES:
        given: StatementTexts | None = getattr(body.texts, language)
        if given is None:
            continue
        for key in TEXT_LIMITS:
            raw = getattr(given, key)
            cleaned = plain_text(raw, f"texts.{language}.{key}", multiline=True) if raw else ""
            if cleaned:
                texts.setdefault(language, {})[key] = cleaned
    return {
        "conformance": body.conformance,
        "prepared_on": body.prepared_on.isoformat() if body.prepared_on else None,
        "reviewed_on": body.reviewed_on.isoformat() if body.reviewed_on else None,
        "feedback_email": email or None,
        "texts": texts,
    }


def _defaults() -> dict[str, Any]:
    return {
        "conformance": "partial",
        "prepared_on": None,
        "reviewed_on": None,
        "feedback_email": None,
        "texts": {},
    }


async def current_statement(db: Database) -> dict[str, Any]:
    stored = await get_setting(db, STATEMENT_KEY)
    statement = _defaults()
    if isinstance(stored, dict):
        statement.update({k: v for k, v in stored.items() if k in statement})
    return {**statement, "set": isinstance(stored, dict)}


def register(api: Api) -> None:
    """Add the statement's endpoints to ``api``."""

    @api.endpoint(
        "GET",
        "/accessibility-statement",
        allow=EVERYONE,
        summary="Read the organisation's accessibility statement",
    )
    async def read(call: ApiCall) -> web.StreamResponse:
        statement = await current_statement(call.request.app[DATABASE])
        return web.json_response({**statement, "languages": list(LANGUAGES)})

    @api.endpoint(
        "PUT",
        "/accessibility-statement",
        allow=ADMINS,
        summary="Change the accessibility statement's conformance, dates, contact and texts",
        body=StatementBody,
    )
    async def write(call: ApiCall) -> web.StreamResponse:
        try:
            statement = clean_statement(call.body_as(StatementBody))
        except BrandingError as exc:
            raise ProblemError(400, "Bad Request", str(exc)) from None
        db = call.request.app[DATABASE]
        await put_setting(db, STATEMENT_KEY, statement)
        await audit(
            call,
            "accessibility_statement.update",
            STATEMENT_KEY,
            conformance=statement["conformance"],
            languages=sorted(statement["texts"]),
        )
        return web.json_response({**statement, "set": True, "languages": list(LANGUAGES)})
