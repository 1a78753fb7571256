"""Who a request belongs to, and the login endpoints (session cookie for people)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated

from aiohttp import web
from pydantic import Field

from server import boothauth
from server.api import ANONYMOUS, USERS, Access, Api, ApiCall, Caller, RequestBody
from server.http import ProblemError, check_not_blocked
from server.keys import (
    CONFIG,
    DATABASE,
    GUESTS,
    LOGIN_LIMITER,
    NONCES,
    PASSWORD_WORK,
    SWITCHBOARD,
)
from server.ratelimit import BusyError
from server.storage import (
    AppointmentStatus,
    Login,
    Role,
    User,
    authenticate_booth,
    authenticate_user,
    create_auth_session,
    delete_auth_session,
    fold_username,
    get_appointment,
    get_booth,
    login_for_token,
    service_for_token,
)
from server.storage.integrations import TOKEN_PREFIX

log = logging.getLogger(__name__)

COOKIE_NAME = "vb_session"
GUEST_COOKIE = "vb_guest"
MAX_CREDENTIAL_CHARS = 512
#: A guest pass carries its own signed record (ids, expiry, a name of up to 100 characters).
MAX_GUEST_PASS_CHARS = 2048
#: Seconds a login refused because the server is busy checking passwords should wait.
LOGIN_BUSY_RETRY_SECONDS = 2


async def caller_for(request: web.Request) -> Caller:
    """The caller, from a booth's bearer credential or a person's session cookie."""
    db = request.app[DATABASE]
    header = request.headers.get("Authorization", "")
    if header.lower().startswith(boothauth.SCHEME + " "):
        return await _signed_booth(request, header)
    if header:
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer" or not credential or len(credential) > MAX_CREDENTIAL_CHARS:
            return ANONYMOUS
        if credential.startswith(TOKEN_PREFIX):  # a service account's API token
            service = await service_for_token(db, credential.strip())
            if service is None:
                log.warning("refused an API token from %s", request.remote)
                return ANONYMOUS
            return Caller(
                access=Access.SERVICE,
                id=service.account_id,
                name=service.name,
                scopes=service.scopes,
            )
        booth = await authenticate_booth(db, credential.strip())
        if booth is None:
            log.warning("refused a booth credential from %s", request.remote)
            return ANONYMOUS
        return Caller(access=Access.BOOTH, id=booth.id, name=booth.name)
    token = request.cookies.get(COOKIE_NAME)
    login = None
    if token and len(token) <= MAX_CREDENTIAL_CHARS:
        login = await login_for_token(db, token)
    if login is None:
        return await _guest(request)
    user = login.user
    access = Access.ADMIN if user.role is Role.ADMIN else Access.ADVISOR
    return Caller(
        access=access,
        id=user.id,
        name=user.display_name or user.username,
        by_cookie=True,
        login=login.id,
        login_expires_at=login.expires_at,
        must_change_password=user.must_change_password,
    )


async def _signed_booth(request: web.Request, header: str) -> Caller:
    """An enrolled booth: its signature over a nonce this server issued and has not seen back."""
    signed = boothauth.parse_header(header) if len(header) <= MAX_CREDENTIAL_CHARS else None
    if signed is None:
        return ANONYMOUS
    # The nonce is spent before anything else: a header is never good twice, even if wrong.
    if not await request.app[NONCES].spend(signed.nonce, signed.booth_id):
        log.warning("refused a booth signature from %s: unknown, used or old nonce", request.remote)
        return ANONYMOUS
    booth = await get_booth(request.app[DATABASE], signed.booth_id)
    if booth is None or booth.public_key is None or not boothauth.verify(booth.public_key, signed):
        log.warning("refused a booth signature from %s: does not verify", request.remote)
        return ANONYMOUS
    if booth.revoked:
        log.warning("refused booth %s: revoked", booth.id)
        return ANONYMOUS
    return Caller(access=Access.BOOTH, id=booth.id, name=booth.name)


async def _guest(request: web.Request) -> Caller:
    token = request.cookies.get(GUEST_COOKIE)
    if not token or len(token) > MAX_GUEST_PASS_CHARS:
        return ANONYMOUS
    guest = request.app[GUESTS].lookup(token, datetime.now(UTC))
    if guest is None:
        return ANONYMOUS
    if guest.appointment_id is not None:
        # The pass is a signed record the server keeps no copy of: it dies with its
        # appointment because the appointment is looked up each time.
        appointment = await get_appointment(request.app[DATABASE], guest.appointment_id)
        if appointment is None or appointment.status is AppointmentStatus.CANCELLED:
            return ANONYMOUS
    return Caller(
        access=Access.CITIZEN,
        id=guest.id,
        name=guest.name,
        by_cookie=True,
        appointment_id=guest.appointment_id,
        appointment_advisor=guest.advisor_id,
        invited_to=guest.invited_to,
        walk_in=guest.walk_in,
    )


async def start_login(
    request: web.Request,
    user: User,
    response: web.StreamResponse,
    *,
    external_sid: str | None = None,
    id_token: str | None = None,
) -> Login:
    """A new login session for ``user``, its cookie set on ``response``; returns the login.
    A single sign-on gives the provider's session id and ID token (server/oidc/login.py)."""
    db, config = request.app[DATABASE], request.app[CONFIG]
    ttl = timedelta(hours=config.session_hours)
    token = await create_auth_session(db, user, ttl, external_sid=external_sid, id_token=id_token)
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=int(ttl.total_seconds()),
        httponly=True,
        secure=config.effective_cookie_secure,
        samesite="Strict",
        path="/",
    )
    login = await login_for_token(db, token)
    assert login is not None  # made just now
    return login


class LoginBody(RequestBody):
    username: Annotated[str, Field(min_length=1, max_length=64)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


def register(api: Api) -> None:
    """Add the login endpoints to ``api``."""

    @api.endpoint(
        "POST",
        "/auth/login",
        allow=frozenset({Access.ANONYMOUS, *USERS}),
        summary="Log in with username and password",
        body=LoginBody,
    )
    async def login(call: ApiCall) -> web.StreamResponse:
        request, body = call.request, call.body_as(LoginBody)
        sso = request.app[CONFIG].oidc
        if (
            sso is not None
            and not sso.local_passwords
            and fold_username(body.username) not in {fold_username(n) for n in sso.break_glass}
        ):
            raise ProblemError(
                403, "Forbidden", f"password logins are turned off here: sign in with {sso.label}"
            )
        limiter = request.app[LOGIN_LIMITER]
        # The account's key is the username as it is looked up, so "carol " and "CAROL" are
        # carol too.
        keys = (f"user:{fold_username(body.username)}", f"ip:{request.remote}")
        check_not_blocked(limiter, keys, "failed logins")
        # Counted before the password is checked, so that a burst of attempts sent at once
        # meets the limit like attempts sent one by one; a correct login takes it back.
        for key in keys:
            limiter.record_failure(key)
        db = request.app[DATABASE]
        try:
            async with request.app[PASSWORD_WORK].slot():
                user = await authenticate_user(db, body.username, body.password)
        except BusyError:
            for key in keys:
                limiter.forgive(key)
            log.warning("login refused from %s: too many password checks waiting", request.remote)
            raise ProblemError(
                503,
                "Service Unavailable",
                "the server is busy checking passwords; try again in a few seconds",
                retry_after=LOGIN_BUSY_RETRY_SECONDS,
            ) from None
        if user is None:
            # The username stays out of the log: people type their password into it by mistake.
            log.info("failed login from %s", request.remote)
            raise ProblemError(401, "Unauthorized", "wrong username or password")
        limiter.reset(keys[0])
        limiter.forgive(keys[1])

        log.info("user %s logged in from %s", user.username, request.remote)
        response = web.json_response(
            {
                "id": user.id,
                "username": user.username,
                "name": user.display_name or user.username,
                "role": user.role.value,
                "features": features(request),
            }
        )
        await start_login(request, user, response)
        return response

    @api.endpoint("POST", "/auth/logout", allow=USERS, summary="Log out")
    async def logout(call: ApiCall) -> web.StreamResponse:
        token = call.request.cookies.get(COOKIE_NAME, "")
        at_provider = await _logout_url(call.request, call.caller)
        await delete_auth_session(call.request.app[DATABASE], token)
        if call.caller.id is not None and call.caller.login is not None:
            # This login's live connections end with it (its other logins go on).
            call.request.app[SWITCHBOARD].end_logins(
                call.caller.id, login=call.caller.login, reason="logged out"
            )
        # A single sign-on's login also ends at the provider, if the page goes there next.
        response = web.json_response({"ok": True, "logout_url": at_provider})
        response.del_cookie(COOKIE_NAME, path="/")
        return response

    @api.endpoint("GET", "/me", allow=USERS, summary="Show who is logged in")
    async def me(call: ApiCall) -> web.StreamResponse:
        caller = call.caller
        return web.json_response(
            {
                "id": caller.id,
                "name": caller.name,
                "role": caller.access,
                "features": features(call.request),
            }
        )


def features(request: web.Request) -> dict[str, bool]:
    """What this server offers a logged-in person's pages."""
    return {"email_invitations": request.app[CONFIG].mail is not None}


async def _logout_url(request: web.Request, caller: Caller) -> str | None:
    # Imported here: the single sign-on's module builds on this one.
    from server.oidc.login import logout_url

    return await logout_url(request, caller)
