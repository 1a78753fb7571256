"""HTTP plumbing: problem-details errors (RFC 9457), security headers, same-origin checks, and
the client's real address behind the organisation's reverse proxy."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from ipaddress import ip_address, ip_network
from typing import Any

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware
from aiohttp_remotes import XForwardedFiltered

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


#: The status the access log shows for a request whose client went away (nginx's 499).
CLIENT_CLOSED = 499


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
    except ConnectionResetError:
        if request.transport is not None and not request.transport.is_closing():
            log.exception("unhandled error in %s %s", request.method, request.path)
            return problem(500, "Internal Server Error", "the server failed; see its log")
        # The client went away before its answer (a closed tab, a load balancer that gave up
        # on this node): nothing failed here, and nobody is left to answer.
        log.info("%s %s: the client went away before its answer", request.method, request.path)
        return web.Response(status=CLIENT_CLOSED, reason="Client Closed Request")
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return problem(500, "Internal Server Error", "the server failed; see its log")


#: Browsers that saw the server over HTTPS keep to HTTPS for a year (HSTS).
HSTS = "max-age=31536000"


def security_headers_middleware(*, https: bool) -> Middleware:
    """The security headers on every response; HSTS too when clients come over HTTPS."""
    headers = {**SECURITY_HEADERS, **({"Strict-Transport-Security": HSTS} if https else {})}

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if not response.prepared:
            for name, value in headers.items():
                response.headers.setdefault(name, value)
            if request.path.startswith("/api/"):
                response.headers.setdefault("Cache-Control", "no-store")
        return response

    return middleware


class _FromTrustedProxies(XForwardedFiltered):
    """aiohttp-remotes' X-Forwarded-* handling (the client is the right-most address that is
    not one of the proxies), for requests that come from a trusted proxy only: anyone else who
    sends these headers is taken for who it is."""

    def __init__(self, proxies: Sequence[str]) -> None:
        super().__init__({ip_network(proxy, strict=False) for proxy in proxies})
        self._proxies = [ip_network(proxy, strict=False) for proxy in proxies]

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        try:
            address = ip_address(peer[0]) if peer else None
        except ValueError:  # a Unix socket: not a proxy of ours
            address = None
        if address is None or not any(address in proxy for proxy in self._proxies):
            return await handler(request)
        return await super().middleware(request, handler)


def forwarded_middleware(trusted_proxies: Sequence[str]) -> Middleware | None:
    """The middleware that takes the client's address, scheme and host from the headers of
    ``trusted_proxies`` (none configured: None, the connection's own address counts)."""
    if not trusted_proxies:
        return None
    return _FromTrustedProxies(trusted_proxies).middleware


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


def check_same_origin(request: web.Request, public_url: str | None = None) -> None:
    """Refuse cross-site requests that carry cookies (CSRF, cross-site WebSocket hijacking).

    Browsers always send ``Origin`` on cross-origin writes and WebSocket handshakes; it must
    name this very server: its ``public_url`` when one is configured (behind a proxy the
    browser's origin is the proxy's https address), else the address the request came to.
    Non-browser clients (booths) send none and authenticate otherwise.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return
    expected = public_url.rstrip("/") if public_url else f"{request.scheme}://{request.host}"
    if origin != expected:
        raise ProblemError(403, "Forbidden", f"cross-origin request from {origin} refused")
