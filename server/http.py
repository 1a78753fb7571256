"""HTTP plumbing: problem-details errors (RFC 9457), security headers, same-origin checks."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import hdrs, web

from server.ratelimit import RateLimiter

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(self), geolocation=()",
}


def problem(status: int, title: str, detail: str, **extra: Any) -> web.Response:
    """An ``application/problem+json`` response; ``retry_after`` (seconds) also goes into the
    ``Retry-After`` header, where HTTP clients look for it."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    response = web.json_response(body, status=status, content_type="application/problem+json")
    if isinstance(extra.get("retry_after"), int):
        response.headers[hdrs.RETRY_AFTER] = str(extra["retry_after"])
    return response


class ProblemError(web.HTTPException):
    """Raise from a handler to answer with problem details."""

    def __init__(self, status: int, title: str, detail: str, **extra: Any) -> None:
        self.status_code = status
        super().__init__()
        self._problem = problem(status, title, detail, **extra)

    def response(self) -> web.Response:
        return self._problem


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as problem details; nothing internal leaks to the client."""
    try:
        return await handler(request)
    except ProblemError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem(exc.status, exc.reason, exc.text or exc.reason)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return problem(500, "Internal Server Error", "the server failed; see its log")


@web.middleware
async def security_headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if not response.prepared:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
    return response


#: What the ``Server`` header says: the product, not its versions or the Python and aiohttp
#: behind it (they would tell an attacker which published flaws to try).
SERVER_HEADER = "Videobooth"


async def hide_server_versions(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every response, static files and WebSocket handshakes
    included, names the product only."""
    response.headers[hdrs.SERVER] = SERVER_HEADER


def check_not_blocked(limiter: RateLimiter, keys: Iterable[str], what: str) -> None:
    """Refuse with 429 and when to try again (``reason`` rate_limited, the pages translate
    it) while any of ``keys`` is over ``limiter``'s limit; ``what`` names what was too many."""
    wait = max((limiter.blocked_for(key) for key in keys), default=0.0)
    if wait > 0:
        seconds = int(wait) + 1
        raise ProblemError(
            429,
            "Too Many Requests",
            f"too many {what}; try again in {seconds} seconds",
            retry_after=seconds,
            reason="rate_limited",
        )


def check_same_origin(request: web.Request) -> None:
    """Refuse cross-site requests that carry cookies (CSRF, cross-site WebSocket hijacking).

    Browsers always send ``Origin`` on cross-origin writes and WebSocket handshakes; it must
    name this very server. Non-browser clients (booths) send none and authenticate otherwise.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return
    expected = f"{request.scheme}://{request.host}"
    if origin != expected:
        raise ProblemError(403, "Forbidden", f"cross-origin request from {origin} refused")
