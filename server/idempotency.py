"""A service account's write under an ``Idempotency-Key`` header, done at most once.

A booking system that does not hear the answer to "create this appointment" (a timeout, a
dropped connection) sends the same request again with the same key: it gets the first answer
again, and there is one appointment. The key is claimed in the database before the write
(so two copies sent at once, to any nodes, cannot both go through: the second is told to try
again in a moment), and the answer is kept with it for a day. The same key with another
request is refused; a write that failed inside the server frees its key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

from aiohttp import web

from server.api import IDEMPOTENCY_HEADER, ApiCall
from server.http import ProblemError
from server.keys import DATABASE
from server.storage import begin_idempotent, drop_idempotent, finish_idempotent

__all__ = ["once"]

MAX_KEY_CHARS = 128
REPLAYED_HEADER = "Idempotent-Replayed"


async def once(
    call: ApiCall, key: str, handle: Callable[[], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if not 1 <= len(key) <= MAX_KEY_CHARS or not key.isascii() or not key.isprintable():
        raise ProblemError(
            400, "Bad Request", f"{IDEMPOTENCY_HEADER}: 1 to {MAX_KEY_CHARS} printable ASCII"
        )
    request, db = call.request, call.request.app[DATABASE]
    account = call.caller.id or ""
    body = await request.read()
    digest = hashlib.sha256(
        f"{request.method} {request.rel_url.path_qs}\n".encode() + body
    ).hexdigest()
    state = await begin_idempotent(db, account, key, digest)
    if state.outcome == "replay":
        assert state.status is not None
        replayed = web.Response(
            status=state.status, text=state.response or "", content_type="application/json"
        )
        replayed.headers[REPLAYED_HEADER] = "true"
        return replayed
    if state.outcome == "conflict":
        raise ProblemError(
            422,
            "Unprocessable Content",
            f"this {IDEMPOTENCY_HEADER} was used for another request; use a new key",
        )
    if state.outcome == "busy":
        raise ProblemError(
            409,
            "Conflict",
            f"a request with this {IDEMPOTENCY_HEADER} is still being answered",
            retry_after=1,
        )
    try:
        response = await handle()
    except ProblemError as exc:
        answer = exc.response()
        if answer.status >= 500:
            await drop_idempotent(db, account, key)
        else:  # a refusal is the answer to this request: the same again gets it again
            await finish_idempotent(
                db, account, key, status=answer.status, response=answer.text or ""
            )
        raise
    except BaseException:
        await drop_idempotent(db, account, key)
        raise
    text = response.text if isinstance(response, web.Response) else None
    await finish_idempotent(db, account, key, status=response.status, response=text or "")
    return response
