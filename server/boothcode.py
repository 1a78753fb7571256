"""A booth's appointment code: checked as soon as the citizen has entered it, and again when
the booth joins the appointment's lobby over its WebSocket.

Both go through :func:`appointment_for_code`, so a wrong code counts the same wherever it is
tried: against the booth and against its address, in a short window and per day (the
limiters of ``CODE_LIMITER``; tests/server/test_join.py does the arithmetic of why guessing
is hopeless). Checking a code only reads: no call session, no lobby entry, nothing stored.

``POST /api/v1/booth/code-check`` (booths only) answers 200 when the code opens an appointment
now, a problem+json 404 (``reason: wrong_code``) when not, and 429 (``reason: rate_limited``,
``retry_after`` in seconds) while the booth or its address must wait.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Annotated

from aiohttp import web
from pydantic import Field

from server.api import Access, Api, ApiCall, RequestBody
from server.http import ProblemError
from server.keys import CODE_LIMITER, DATABASE
from server.storage import Appointment, appointment_by_code

log = logging.getLogger(__name__)

WRONG_CODE_MESSAGE = "this code opens no appointment now"


class CodeRefusal(StrEnum):
    """Why a code opens nothing (the same names as the protocol's error codes)."""

    WRONG_CODE = "wrong_code"
    RATE_LIMITED = "rate_limited"


class CodeRefusedError(Exception):
    """The code opens no appointment now, or the booth must wait before it tries another."""

    def __init__(self, refusal: CodeRefusal, message: str, *, retry_after: int = 0) -> None:
        super().__init__(message)
        self.refusal = refusal
        self.message = message
        #: Seconds until the booth may try again (rate limited only).
        self.retry_after = retry_after


async def appointment_for_code(request: web.Request, booth_id: str, code: str) -> Appointment:
    """The appointment ``code`` (spaces allowed, as typed) opens now, for the booth
    ``booth_id`` calling from ``request``'s address; :class:`CodeRefusedError` otherwise.

    A wrong code is recorded against the booth and the address, in every limiter.
    """
    limiters = request.app[CODE_LIMITER]
    keys = (f"booth:{booth_id}", f"ip:{request.remote}")
    wait = max(limiter.blocked_for(k) for limiter in limiters for k in keys)
    if wait > 0:
        seconds = int(wait) + 1
        raise CodeRefusedError(
            CodeRefusal.RATE_LIMITED,
            f"too many wrong codes; try again in {seconds} seconds",
            retry_after=seconds,
        )
    # Counted before the lookup, so that guesses sent at once meet the limit like guesses sent
    # one by one; a right code takes it back.
    for limiter in limiters:
        for key in keys:
            limiter.record_failure(key)
    found = await appointment_by_code(request.app[DATABASE], code.replace(" ", ""))
    if found is None:
        raise CodeRefusedError(CodeRefusal.WRONG_CODE, WRONG_CODE_MESSAGE)
    for limiter in limiters:
        for key in keys:
            limiter.forgive(key)
    return found


class CodeCheckBody(RequestBody):
    #: The 8 digits as entered (spaces allowed); anything else is simply a wrong code.
    code: Annotated[str, Field(min_length=1, max_length=32)]


def register(api: Api) -> None:
    @api.endpoint(
        "POST",
        "/booth/code-check",
        allow=frozenset({Access.BOOTH}),
        summary="Check an appointment code entered at a booth",
        body=CodeCheckBody,
    )
    async def code_check(call: ApiCall) -> web.StreamResponse:
        booth_id = call.caller.id or ""
        try:
            await appointment_for_code(call.request, booth_id, call.body_as(CodeCheckBody).code)
        except CodeRefusedError as exc:
            # Never the code itself in the log: it opens a consultation.
            log.info("booth %s: code check refused (%s)", booth_id, exc.refusal)
            if exc.refusal is CodeRefusal.RATE_LIMITED:
                raise ProblemError(
                    429,
                    "Too Many Requests",
                    exc.message,
                    reason=exc.refusal.value,
                    retry_after=exc.retry_after,
                ) from None
            raise ProblemError(404, "Not Found", exc.message, reason=exc.refusal.value) from None
        return web.json_response({"valid": True})
