"""Advisor login with a session cookie, and who a request belongs to."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from aiohttp import web

from protocol import Role
from server.http import ProblemError, check_same_origin
from server.keys import CONFIG, DATABASE, LOGIN_LIMITER
from server.storage import (
    authenticate_booth,
    authenticate_user,
    create_auth_session,
    delete_auth_session,
    user_for_token,
)

log = logging.getLogger(__name__)

COOKIE_NAME = "vb_session"
MAX_CREDENTIAL_CHARS = 512


@dataclass(frozen=True)
class Principal:
    """Who is calling: an advisor (a user) or a booth."""

    role: Role
    id: str
    name: str


async def principal_for(request: web.Request) -> Principal | None:
    """The authenticated caller, from a booth's bearer credential or an advisor's cookie."""
    db = request.app[DATABASE]
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer" or not credential or len(credential) > MAX_CREDENTIAL_CHARS:
            return None
        booth = await authenticate_booth(db, credential.strip())
        if booth is None:
            log.warning("refused a booth credential from %s", request.remote)
            return None
        return Principal(role=Role.BOOTH, id=booth.id, name=booth.name)
    token = request.cookies.get(COOKIE_NAME)
    if not token or len(token) > MAX_CREDENTIAL_CHARS:
        return None
    user = await user_for_token(db, token)
    if user is None:
        return None
    return Principal(role=Role.ADVISOR, id=user.id, name=user.display_name or user.username)


async def require_advisor(request: web.Request) -> Principal:
    principal = await principal_for(request)
    if principal is None or principal.role is not Role.ADVISOR:
        raise ProblemError(401, "Unauthorized", "log in first")
    return principal


async def login(request: web.Request) -> web.Response:
    """``POST /api/v1/auth/login`` with ``{"username": ..., "password": ...}``."""
    check_same_origin(request)
    try:
        body = await request.json()
    except ValueError:
        raise ProblemError(400, "Bad Request", "the body must be JSON") from None
    if not isinstance(body, dict):
        raise ProblemError(400, "Bad Request", "the body must be a JSON object")
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise ProblemError(400, "Bad Request", "username and password are required strings")
    if len(username) > 64 or len(password) > 1024:
        raise ProblemError(400, "Bad Request", "username or password too long")

    limiter = request.app[LOGIN_LIMITER]
    keys = (f"user:{username.lower()}", f"ip:{request.remote}")
    wait = max(limiter.blocked_for(k) for k in keys)
    if wait > 0:
        raise ProblemError(
            429,
            "Too Many Requests",
            f"too many failed logins; try again in {int(wait) + 1} seconds",
            retry_after=int(wait) + 1,
        )
    db = request.app[DATABASE]
    user = await authenticate_user(db, username, password)
    if user is None:
        for key in keys:
            limiter.record_failure(key)
        # The username stays out of the log: people type their password into it by mistake.
        log.info("failed login from %s", request.remote)
        raise ProblemError(401, "Unauthorized", "wrong username or password")
    limiter.reset(keys[0])

    config = request.app[CONFIG]
    ttl = timedelta(hours=config.session_hours)
    token = await create_auth_session(db, user, ttl)
    log.info("user %s logged in from %s", user.username, request.remote)
    response = web.json_response(
        {"id": user.id, "username": user.username, "name": user.display_name or user.username}
    )
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=int(ttl.total_seconds()),
        httponly=True,
        secure=config.cookie_secure,
        samesite="Strict",
        path="/",
    )
    return response


async def logout(request: web.Request) -> web.Response:
    """``POST /api/v1/auth/logout``: ends the session behind the cookie."""
    check_same_origin(request)
    await require_advisor(request)
    token = request.cookies.get(COOKIE_NAME, "")
    await delete_auth_session(request.app[DATABASE], token)
    response = web.json_response({"ok": True})
    response.del_cookie(COOKIE_NAME, path="/")
    return response


async def me(request: web.Request) -> web.Response:
    """``GET /api/v1/me``: the logged-in advisor."""
    principal = await require_advisor(request)
    return web.json_response({"id": principal.id, "name": principal.name, "role": "advisor"})
