"""The JSON API's frame: every endpoint declares who may call it, and that is enforced here.

Endpoints register with :meth:`Api.endpoint`; the wrapper authenticates the caller, refuses
anyone outside the endpoint's ``allow`` set (401 without a login, 403 with the wrong one),
checks the origin of cookie-authenticated writes (CSRF), parses the JSON body into the declared
model, and turns errors into problem details. The same registry produces the OpenAPI document
and drives the test that tries every endpoint with every role.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.http import ProblemError, check_same_origin
from server.storage import SCOPES, DuplicateError, NotFoundError, StorageError

log = logging.getLogger(__name__)

PREFIX = "/api/v1"


class RequestBody(BaseModel):
    """The base of every request body: strict types, and an unknown field is an error."""

    model_config = ConfigDict(extra="forbid", strict=True)


#: A name people read (a user's, a booth's, a topic's, a branch's): not empty, one line's worth.
Name = Annotated[str, Field(min_length=1, max_length=100)]


class Access(StrEnum):
    """Who a caller is, as far as authorisation goes."""

    ANONYMOUS = "anonymous"
    ADVISOR = "advisor"
    ADMIN = "admin"
    BOOTH = "booth"
    CITIZEN = "citizen"  # a guest pass: one appointment, one call's invitation, or a walk-in
    SERVICE = "service"  # a booking system's API token, within its scopes


USERS = frozenset({Access.ADVISOR, Access.ADMIN})
ADMINS = frozenset({Access.ADMIN})
EVERYONE = frozenset(Access)


@dataclass(frozen=True)
class Caller:
    access: Access
    id: str | None = None
    name: str = ""
    #: Authenticated by the session cookie (so writes need a same-origin check).
    by_cookie: bool = False
    #: For a person: the id of the login session, and until when it lasts.
    login: str | None = None
    login_expires_at: datetime | None = None
    #: For a person: given a password by an administrator, to be changed before anything else
    #: (read with the login, in the same request).
    must_change_password: bool = False
    #: For a citizen: the appointment of the guest pass and its advisor ...
    appointment_id: str | None = None
    appointment_advisor: str | None = None
    #: ... or the call whose invitation it opened, or asking for an advisor now.
    invited_to: str | None = None
    walk_in: bool = False
    #: For a service account: what its token allows.
    scopes: frozenset[str] = frozenset()


ANONYMOUS = Caller(access=Access.ANONYMOUS)

Model = TypeVar("Model", bound=BaseModel)


@dataclass(frozen=True)
class ApiCall:
    """What a handler gets: the request, who made it, and the parsed body if one is declared."""

    request: web.Request
    caller: Caller
    body: BaseModel | None = None

    def body_as(self, model: type[Model]) -> Model:
        assert isinstance(self.body, model)
        return self.body


Handler = Callable[[ApiCall], Awaitable[web.StreamResponse]]
CallerLookup = Callable[[web.Request], Awaitable[Caller]]
#: ``once(call, key, handle)``: the write under an idempotency key, done at most once.
Once = Callable[
    [ApiCall, str, Callable[[], Awaitable[web.StreamResponse]]], Awaitable[web.StreamResponse]
]
IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_PARAMETER = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "required": False,
    "description": "a service account's writes: the same key with the same request answers "
    "as the first time did, once (1 to 128 characters; kept for a day)",
    "schema": {"type": "string", "minLength": 1, "maxLength": 128},
}

_REPLAYED = {
    "Idempotent-Replayed": {
        "description": "true: the answer kept for this Idempotency-Key, given again",
        "schema": {"type": "string", "enum": ["true"]},
    }
}
#: What a service account's write under an Idempotency-Key may answer beyond the usual.
IDEMPOTENT_RESPONSES = {
    "200": {"description": "OK", "headers": _REPLAYED},
    "201": {"description": "Created", "headers": _REPLAYED},
    "409": {
        "description": "A request with this Idempotency-Key is still being answered: "
        "send it again after Retry-After",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    },
    "422": {"description": "This Idempotency-Key was used for another request"},
}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    allow: frozenset[Access]
    summary: str
    body: type[BaseModel] | None
    #: The scope a service account's token needs here (None: not for service accounts).
    scope: str | None = None


class Api:
    """A registry of endpoints under ``/api/v1``."""

    def __init__(self) -> None:
        self.endpoints: list[Endpoint] = []

    def endpoint(
        self,
        method: str,
        path: str,
        *,
        allow: frozenset[Access],
        summary: str,
        body: type[BaseModel] | None = None,
        scope: str | None = None,
    ) -> Callable[[Handler], Handler]:
        # Service accounts get in where anyone does, or with the scope an endpoint names.
        if (Access.SERVICE in allow and Access.ANONYMOUS not in allow) != (scope is not None):
            raise ValueError(f"{path}: an endpoint open to service accounts names their scope")

        def register(handler: Handler) -> Handler:
            self.endpoints.append(
                Endpoint(method.upper(), PREFIX + path, handler, allow, summary, body, scope)
            )
            return handler

        return register

    def install(
        self,
        app: web.Application,
        caller_for: CallerLookup,
        *,
        public_url: str | None = None,
        once: Once | None = None,
    ) -> None:
        """Route every endpoint; cookie writes must come from ``public_url``'s origin (when
        set; else from the address the request came to); a service account's write with an
        ``Idempotency-Key`` goes through ``once`` (server/idempotency.py)."""
        for endpoint in self.endpoints:
            guard = _guard(endpoint, caller_for, public_url, once)
            app.router.add_route(endpoint.method, endpoint.path, guard)

    def openapi(
        self, *, title: str, version: str, webhooks: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The OpenAPI 3.1 document of every registered endpoint (and the ``webhooks`` the
        server sends, OpenAPI 3.1's own section for requests the API makes)."""
        paths: dict[str, dict[str, Any]] = {}
        problem = {"content": {"application/problem+json": {"schema": {"type": "object"}}}}
        for e in self.endpoints:
            operation: dict[str, Any] = {
                "summary": e.summary,
                "x-allowed": sorted(a.value for a in e.allow),
                "responses": {
                    "200": {"description": "OK"},
                    "400": {"description": "Bad request", **problem},
                    "401": {"description": "Not logged in", **problem},
                    "403": {"description": "Not allowed for this role", **problem},
                },
            }
            if Access.ANONYMOUS not in e.allow:
                operation["security"] = [{"session": []}, {"booth": []}]
            if e.scope is not None:
                operation["security"].append({"service": [e.scope]})
                operation["x-scope"] = e.scope
                if e.method != "GET":
                    operation["parameters"] = [IDEMPOTENCY_PARAMETER]
                    operation["responses"].update(IDEMPOTENT_RESPONSES)
            if e.body is not None:
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": e.body.model_json_schema()}},
                }
            paths.setdefault(e.path, {})[e.method.lower()] = operation
        return {
            "openapi": "3.1.0",
            "info": {"title": title, "version": version},
            "paths": paths,
            "webhooks": webhooks or {},
            "components": {
                "securitySchemes": {
                    "session": {"type": "apiKey", "in": "cookie", "name": "vb_session"},
                    "booth": {"type": "http", "scheme": "bearer"},
                    "service": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "a service account's API token (vbt_...), within its "
                        "scopes: " + ", ".join(SCOPES),
                    },
                }
            },
        }


def _guard(
    endpoint: Endpoint, caller_for: CallerLookup, public_url: str | None, once: Once | None
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        caller = await caller_for(request)
        if caller.access not in endpoint.allow:
            if caller.access is Access.ANONYMOUS:
                raise ProblemError(401, "Unauthorized", "log in first")
            raise ProblemError(
                403, "Forbidden", f"a {caller.access.value} may not {endpoint.summary.lower()}"
            )
        scope = endpoint.scope
        if caller.access is Access.SERVICE and scope is not None and scope not in caller.scopes:
            raise ProblemError(
                403, "Forbidden", f"this token does not have the scope {endpoint.scope}"
            )
        if request.method not in ("GET", "HEAD", "OPTIONS") and (
            caller.by_cookie or caller.access is Access.ANONYMOUS
        ):
            check_same_origin(request, public_url)
        body: BaseModel | None = None
        if endpoint.body is not None:
            body = await _parse(request, endpoint.body)
        call = ApiCall(request=request, caller=caller, body=body)
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if caller.access is Access.SERVICE and request.method != "GET" and key is not None:
            if once is None:  # pragma: no cover - every server installs it
                raise ProblemError(400, "Bad Request", f"{IDEMPOTENCY_HEADER} is not supported")
            return await once(call, key, lambda: _handled(endpoint, call))
        return await _handled(endpoint, call)

    return handle


async def _handled(endpoint: Endpoint, call: ApiCall) -> web.StreamResponse:
    try:
        return await endpoint.handler(call)
    except NotFoundError as exc:
        raise ProblemError(404, "Not Found", str(exc)) from None
    except DuplicateError as exc:
        raise ProblemError(409, "Conflict", str(exc)) from None
    except StorageError as exc:
        if isinstance(exc, ValueError):
            raise ProblemError(400, "Bad Request", str(exc)) from None
        raise


async def _parse(request: web.Request, model: type[BaseModel]) -> BaseModel:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ProblemError(413, "Payload Too Large", "the request body is too large") from None
    try:
        return model.model_validate_json(raw or b"null")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ProblemError(400, "Bad Request", f"{where}: {first['msg']}") from None
