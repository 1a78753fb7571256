"""A service account's write under an ``Idempotency-Key`` header, done at most once.

A booking system that does not hear the answer to "create this appointment" (a timeout, a
dropped connection) sends the same request again with the same key: it gets the first answer
again, and there is one appointment. The key is claimed in the database before the write
(so two copies sent at once, to any nodes, cannot both go through: the second is told to try
again in a moment), and the answer is kept with it for a day, sealed with a key derived from
the server key (the answer to a create holds the citizen's join link and code: a copy of the
database alone reads none of it). The same key with another request is refused; a write that
failed inside the server frees its key.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable

from aiohttp import web

from server.api import IDEMPOTENCY_HEADER, ApiCall
from server.http import ProblemError
from server.keys import DATABASE, GUESTS
from server.outbox.sealing import Sealer
from server.storage import begin_idempotent, drop_idempotent, finish_idempotent

__all__ = ["once"]

MAX_KEY_CHARS = 128
REPLAYED_HEADER = "Idempotent-Replayed"
SEAL_PURPOSE = "videobooth idempotent answers v1"


def _sealed(sealer: Sealer, row: str, text: str) -> str:
    return base64.b64encode(sealer.seal(text.encode(), row)).decode("ascii")


def _opened(sealer: Sealer, row: str, kept: str) -> str:
    return sealer.open(base64.b64decode(kept), row).decode()


async def once(
    call: ApiCall, key: str, handle: Callable[[], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if not 1 <= len(key) <= MAX_KEY_CHARS or not key.isascii() or not key.isprintable():
        raise ProblemError(
            400, "Bad Request", f"{IDEMPOTENCY_HEADER}: 1 to {MAX_KEY_CHARS} printable ASCII"
        )
    request, db = call.request, call.request.app[DATABASE]
    account = call.caller.id or ""
    sealer, row = Sealer(request.app[GUESTS].key, SEAL_PURPOSE), f"{account}/{key}"
    body = await request.read()
    digest = hashlib.sha256(
        f"{request.method} {request.rel_url.path_qs}\n".encode() + body
    ).hexdigest()
    state = await begin_idempotent(db, account, key, digest)
    if state.outcome == "replay":
        assert state.status is not None
        replayed = web.Response(
            status=state.status,
            text=_opened(sealer, row, state.response) if state.response else "",
            content_type="application/json",
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
                db,
                account,
                key,
                status=answer.status,
                response=_sealed(sealer, row, answer.text or ""),
            )
        raise
    except BaseException:
        await drop_idempotent(db, account, key)
        raise
    text = response.text if isinstance(response, web.Response) else None
    await finish_idempotent(
        db, account, key, status=response.status, response=_sealed(sealer, row, text or "")
    )
    return response
