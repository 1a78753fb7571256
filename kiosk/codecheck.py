"""Checking an appointment code with the server right after it is entered, so that a wrong code
is refused on the keypad, before the consent screen (``POST /api/v1/booth/code-check``).

The answer is one of :class:`CodeCheck`. When the server cannot say (unreachable, an error),
the booth goes on to the consent screen: joining the appointment checks the code again, and a
refusal then sends the citizen back to the keypad as before.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any

import aiohttp

from kiosk.identity import ServerAccess

log = logging.getLogger(__name__)

PATH = "/api/v1/booth/code-check"


class CodeCheck(StrEnum):
    OPENS = "opens"  # the code opens an appointment now
    WRONG_CODE = "wrong_code"
    RATE_LIMITED = "rate_limited"  # too many wrong codes from this booth or its address
    UNCHECKED = "unchecked"  # the server could not say; joining checks the code again

    @property
    def refusal(self) -> str | None:
        """What the keypad shows (:attr:`kiosk.flow.Visit.problem`); None: go on."""
        return self.value if self in (CodeCheck.WRONG_CODE, CodeCheck.RATE_LIMITED) else None


async def check_code(access: ServerAccess, code: str) -> CodeCheck:
    """Whether ``code`` opens an appointment now, as the server says (never raises)."""
    try:
        async with access.session() as http:
            headers = await access.headers(http)
            async with http.post(
                f"{access.base}{PATH}", json={"code": code}, headers=headers
            ) as response:
                body: Any = await response.json(content_type=None)
                status = response.status
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        log.warning("could not check the appointment code (%s); joining will check it", exc)
        return CodeCheck.UNCHECKED
    reason = body.get("reason") if isinstance(body, dict) else None
    if status == 200:
        return CodeCheck.OPENS
    if status == 404 and reason == CodeCheck.WRONG_CODE:
        log.info("the server refused the appointment code: it opens no appointment now")
        return CodeCheck.WRONG_CODE
    if status == 429 and reason == CodeCheck.RATE_LIMITED:
        log.warning("the server refused the appointment code: too many wrong codes")
        return CodeCheck.RATE_LIMITED
    log.warning(
        "the server answered the code check with HTTP %d (%s); joining will check it",
        status,
        body.get("detail") if isinstance(body, dict) else "no details",
    )
    return CodeCheck.UNCHECKED
