"""Staff sign in through the organisation's OpenID provider: the authorization code flow with
PKCE, the account made or brought up to date from the provider's claims, a logout at the
provider (RP-initiated) and the provider's back-channel logout ending this server's sessions
and their live connections.

The flow's secrets (state, nonce, PKCE verifier, where to go afterwards) ride in a short-lived
cookie signed with the server key (``server/signed.py``), so any node of a cluster can finish
a login another node began. What can go wrong on the way (the provider refused, the link is
old, a token fails a check, no group of this service) ends on a page that says so in plain
words, and in the log without tokens or personal data.
"""

from __future__ import annotations

import base64
import hashlib
import html
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from server.api import USERS, Access, Api, ApiCall, Caller
from server.auth import start_login
from server.config import OidcConfig
from server.http import ProblemError
from server.keys import CONFIG, DATABASE, GUESTS, SWITCHBOARD
from server.oidc.provider import Provider, ProviderError
from server.oidc.tokens import TokenError, check_id_token, check_logout_token
from server.signed import sign, unsign
from server.storage import (
    ConflictError,
    ExternalPerson,
    Role,
    StorageError,
    disable_user,
    end_external_logins,
    get_user_by_subject,
    id_token_of_login,
    save_external_user,
)

__all__ = ["OIDC", "OidcLogin", "register"]

log = logging.getLogger(__name__)

FLOW_COOKIE = "vb_oidc"
FLOW_PURPOSE = "oidc-login"
#: How long a person may take at the provider's login page.
FLOW_SECONDS = 600
CALLBACK = "/api/v1/auth/oidc/callback"
#: Pages a login may return to (anything else: the advisor's workspace).
NEXT_PAGES = ("/advisor/", "/admin/")


@dataclass(frozen=True)
class OidcLogin:
    """The single sign-on of this server: its configuration, the provider, the signing key."""

    config: OidcConfig
    provider: Provider
    key: bytes


OIDC = web.AppKey("oidc", OidcLogin)


class SignInError(Exception):
    """A login that cannot finish: the page's status and its words."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def _base(request: web.Request) -> str:
    public = request.app[CONFIG].public_url
    return public if public else f"{request.scheme}://{request.host}"


def _login(request: web.Request) -> OidcLogin:
    login = request.app.get(OIDC)
    if login is None:
        raise ProblemError(404, "Not Found", "single sign-on is not configured on this server")
    return login


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _claim(claims: dict[str, Any], path: str) -> Any:
    """A claim by name, or by a dotted path into objects (``realm_access.roles``)."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _groups(claims: dict[str, Any], path: str) -> list[str]:
    value = _claim(claims, path)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [g for g in value if isinstance(g, str)]
    return []


def role_of(config: OidcConfig, groups: list[str]) -> Role | None:
    """The role the person's groups give (administrator first), or None for neither."""
    if set(groups) & set(config.admin_groups):
        return Role.ADMIN
    if set(groups) & set(config.advisor_groups):
        return Role.ADVISOR
    return None


def topics_of(config: OidcConfig, groups: list[str]) -> list[str] | None:
    if config.topic_prefix is None:
        return None
    prefix = config.topic_prefix
    return [g[len(prefix) :] for g in groups if g.startswith(prefix) and len(g) > len(prefix)]


def _page(status: int, title: str, text: str, *, back: str = "/advisor/") -> web.Response:
    """A plain page for a login that did not work (the browser is on a redirect, not on one
    of the app's pages)."""
    body = f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} - Videobooth</title>
<link rel="stylesheet" href="/static/css/base.css"></head>
<body><main class="page-message" role="main">
<h1>{html.escape(title)}</h1>
<p role="alert">{html.escape(text)}</p>
<p><a href="{html.escape(back)}">Back to the login page</a></p>
</main></body></html>
"""
    response = web.Response(status=status, text=body, content_type="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


def _redirect(location: str) -> web.Response:
    response = web.Response(status=302, headers={"Location": location})
    response.headers["Cache-Control"] = "no-store"
    return response


async def _begin(call: ApiCall) -> web.StreamResponse:
    request = call.request
    login = _login(request)
    next_page = request.query.get("next", NEXT_PAGES[0])
    if next_page not in NEXT_PAGES:
        next_page = NEXT_PAGES[0]
    try:
        info = await login.provider.info()
    except ProviderError as exc:
        log.warning("single sign-on could not begin: %s", exc)
        return _page(502, "Sign-in is not available", f"The identity provider: {exc}.")
    state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    verifier = secrets.token_urlsafe(48)
    flow = {
        "s": state,
        "n": nonce,
        "v": verifier,
        "next": next_page,
        "exp": time.time() + FLOW_SECONDS,
    }
    query = {
        "response_type": "code",
        "client_id": login.config.client_id,
        "redirect_uri": _base(request) + CALLBACK,
        "scope": " ".join(login.config.scopes),
        "state": state,
        "nonce": nonce,
        "code_challenge": _challenge(verifier),
        "code_challenge_method": "S256",
    }
    response = _redirect(f"{info.authorization_endpoint}?{urlencode(query)}")
    response.set_cookie(
        FLOW_COOKIE,
        sign(login.key, FLOW_PURPOSE, flow),
        max_age=FLOW_SECONDS,
        httponly=True,
        secure=request.app[CONFIG].effective_cookie_secure,
        # The provider sends the browser back with a top-level navigation from its own site.
        samesite="Lax",
        path="/api/v1/auth/oidc/",
    )
    return response


async def _finish(call: ApiCall) -> web.StreamResponse:
    request = call.request
    login = _login(request)
    try:
        user_name, next_page, token = await _sign_in(request, login)
    except SignInError as exc:
        response = _page(exc.status, "Sign-in did not work", exc.text)
    else:
        log.info("user %s logged in through single sign-on from %s", user_name, request.remote)
        response = _redirect(next_page)
        await token(response)
    response.del_cookie(FLOW_COOKIE, path="/api/v1/auth/oidc/")
    return response


async def _sign_in(request: web.Request, login: OidcLogin) -> tuple[str, str, Any]:
    """The checks and the account of one login: (username, next page, cookie setter)."""
    query = request.query
    if "error" in query:
        code = query["error"][:64]
        log.info("the identity provider refused a sign-in: %s", code)
        raise SignInError(
            401, f"The identity provider did not sign you in ({code}). Try again, or ask IT."
        )
    flow: Any = unsign(login.key, FLOW_PURPOSE, request.cookies.get(FLOW_COOKIE, ""))
    if not isinstance(flow, dict) or float(flow.get("exp", 0)) < time.time():
        raise SignInError(
            400,
            "This sign-in took too long or was started in another browser window. "
            "Start again from the login page.",
        )
    if not secrets.compare_digest(str(flow.get("s", "")), query.get("state", "")):
        raise SignInError(
            400,
            "This answer of the identity provider does not belong to this "
            "sign-in (state). Start again from the login page.",
        )
    code = query.get("code", "")
    if not code or len(code) > 2048:
        raise SignInError(400, "The identity provider's answer has no authorization code.")
    try:
        answer = await login.provider.exchange(code, flow["v"], _base(request) + CALLBACK)
        id_token = answer["id_token"]
        claims = await check_id_token(login.provider, id_token, nonce=flow["n"])
        access = answer.get("access_token")
        if isinstance(access, str) and _claim(claims, login.config.groups_claim) is None:
            extra = await login.provider.userinfo(access)
            if extra.get("sub") == claims["sub"]:
                claims = {**extra, **claims}
    except ProviderError as exc:
        log.warning("single sign-on failed: %s", exc)
        raise SignInError(502, f"The identity provider could not be asked: {exc}.") from None
    except TokenError as exc:
        log.warning("single sign-on refused: %s", exc)
        raise SignInError(401, f"Sign-in refused. {exc}") from None
    return await _account(request, login, claims, id_token, flow["next"])


async def _account(
    request: web.Request, login: OidcLogin, claims: dict[str, Any], id_token: str, next_page: str
) -> tuple[str, str, Any]:
    config, db = login.config, request.app[DATABASE]
    issuer, subject = claims["iss"], str(claims["sub"])
    groups = _groups(claims, config.groups_claim)
    role = role_of(config, groups)
    if role is None:
        existing = await get_user_by_subject(db, issuer, subject)
        if existing is not None and not existing.disabled:
            try:
                await disable_user(db, existing.id)
            except StorageError as exc:  # the last administrator stays
                log.warning("user %s not disabled: %s", existing.id, exc)
            else:
                request.app[SWITCHBOARD].end_logins(existing.id, reason="account disabled")
                log.info("user %s disabled: no group of this service at the provider", existing.id)
        raise SignInError(
            403,
            "Your account at the identity provider is not in a group that may use this "
            "service. Ask your administrator to add you.",
        )
    username = _claim(claims, config.username_claim)
    name = _claim(claims, config.name_claim)
    person = ExternalPerson(
        issuer=issuer,
        subject=subject,
        username=username if isinstance(username, str) else "",
        display_name=name if isinstance(name, str) else "",
        role=role,
        topics=topics_of(config, groups),
    )
    try:
        user = await save_external_user(db, person)
    except ConflictError as exc:
        raise SignInError(409, f"Your account cannot be set up: {exc}.") from None
    except StorageError as exc:  # a username this service cannot use
        raise SignInError(
            400, f"Your account cannot be set up: {exc} (the provider's {config.username_claim})."
        ) from None
    if user.disabled:
        raise SignInError(403, "Your account is disabled on this service. Ask an administrator.")
    sid = claims.get("sid") if isinstance(claims.get("sid"), str) else None

    async def set_cookie(response: web.StreamResponse) -> None:
        await start_login(request, user, response, external_sid=sid, id_token=id_token)

    return user.username, next_page, set_cookie


async def _backchannel(call: ApiCall) -> web.StreamResponse:
    request = call.request
    login = _login(request)
    form = await request.post()
    token = form.get("logout_token")
    if not isinstance(token, str):
        raise ProblemError(400, "Bad Request", "logout_token is missing")
    try:
        subject, sid = await check_logout_token(login.provider, token)
    except (TokenError, ProviderError) as exc:
        log.warning("refused a back-channel logout: %s", exc)
        raise ProblemError(400, "Bad Request", str(exc)) from None
    info = await login.provider.info()
    ended = await end_external_logins(request.app[DATABASE], info.issuer, subject=subject, sid=sid)
    for one in ended:
        request.app[SWITCHBOARD].end_logins(
            one.user_id, login=one.login_id, reason="logged out at the identity provider"
        )
    log.info("back-channel logout from the identity provider: %d login(s) ended", len(ended))
    response = web.Response(status=200)
    response.headers["Cache-Control"] = "no-store"
    return response


async def logout_url(request: web.Request, caller: Caller) -> str | None:
    """Where the browser goes to log out at the provider too (RP-initiated logout), for a
    login that came from a single sign-on; None otherwise."""
    login = request.app.get(OIDC)
    if login is None or caller.login is None:
        return None
    id_token = await id_token_of_login(request.app[DATABASE], caller.login)
    if id_token is None:
        return None
    try:
        info = await login.provider.info()
    except ProviderError as exc:
        log.warning("no logout at the provider: %s", exc)
        return None
    if info.end_session_endpoint is None:
        return None
    query = {
        "id_token_hint": id_token,
        "client_id": login.config.client_id,
        "post_logout_redirect_uri": _base(request) + "/advisor/",
    }
    return f"{info.end_session_endpoint}?{urlencode(query)}"


def methods(request: web.Request) -> dict[str, Any]:
    """How staff log in here (the login pages ask before they show their form)."""
    login = request.app.get(OIDC)
    if login is None:
        return {"passwords": True, "sso": None}
    return {
        "passwords": login.config.local_passwords or bool(login.config.break_glass),
        "sso": {"label": login.config.label, "url": "/api/v1/auth/oidc/login"},
    }


def install(app: web.Application, config: OidcConfig) -> None:
    app[OIDC] = OidcLogin(config=config, provider=Provider(config), key=app[GUESTS].key)


def register(api: Api) -> None:
    """The single sign-on endpoints (they answer 404 where it is not configured)."""
    anyone = frozenset({Access.ANONYMOUS, *USERS, Access.CITIZEN, Access.BOOTH})
    api.endpoint(
        "GET", "/auth/oidc/login", allow=anyone, summary="Begin a sign-in at the identity provider"
    )(_begin)
    api.endpoint(
        "GET",
        "/auth/oidc/callback",
        allow=anyone,
        summary="Finish a sign-in at the identity provider (its redirect)",
    )(_finish)
    api.endpoint(
        "POST",
        "/auth/oidc/backchannel-logout",
        allow=anyone,
        summary="The identity provider's back-channel logout (a signed logout token)",
    )(_backchannel)

    @api.endpoint("GET", "/auth/methods", allow=anyone, summary="Show how staff log in")
    async def _methods(call: ApiCall) -> web.StreamResponse:
        return web.json_response(methods(call.request))
