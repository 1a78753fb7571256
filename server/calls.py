"""Links into calls: an advisor invites a third participant (an interpreter) into a running
call, and the walk-in page gives a citizen a pass to ask for an advisor now."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated

from aiohttp import web
from pydantic import StringConstraints

from protocol import ProtocolError
from server.api import USERS, Access, Api, ApiCall, RequestBody
from server.auth import GUEST_COOKIE
from server.http import ProblemError, check_not_blocked
from server.keys import CONFIG, DATABASE, GUESTS, SHARED_CALLS, SWITCHBOARD, WALK_IN_LIMITER
from server.storage import ActorKind, list_regions, list_topics, record_audit, topic_names
from server.switchboard import INVITATION_SECONDS

log = logging.getLogger(__name__)

#: How long a walk-in pass lasts: enough to wait in a long queue and have the call.
WALK_IN_PASS = timedelta(hours=3)


class NewInvitation(RequestBody):
    #: How the others will see the invited person: "Interpreter (Turkish)", say.
    label: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60)]


class WalkInBody(RequestBody):
    """No fields: the pass in the cookie says who asks."""


def base_url(request: web.Request) -> str:
    """Where citizens reach this server: the configured public address, or as requested."""
    configured = request.app[CONFIG].public_url
    return configured or f"{request.scheme}://{request.host}"


def set_guest_cookie(request: web.Request, response: web.Response, token: str, ttl: int) -> None:
    response.set_cookie(
        GUEST_COOKIE,
        token,
        max_age=max(60, ttl),
        httponly=True,
        secure=request.app[CONFIG].effective_cookie_secure,
        samesite="Strict",
        path="/",
    )


def register(api: Api) -> None:
    @api.endpoint(
        "POST",
        "/calls/{id}/invitations",
        allow=USERS,
        summary="Invite a third participant into your running call by link",
        body=NewInvitation,
    )
    async def invite(call: ApiCall) -> web.StreamResponse:
        request, body = call.request, call.body_as(NewInvitation)
        session_id = request.match_info["id"]
        shared = request.app.get(SHARED_CALLS)  # in a cluster, the call's owner makes it
        try:
            if shared is not None:
                token = await shared.invite(call.caller.id or "", session_id, body.label)
            else:
                token = request.app[SWITCHBOARD].invite(
                    call.caller.id or "", session_id, body.label
                )
        except ProtocolError as exc:
            status = 409 if exc.code == "call_full" else 404
            title = "Conflict" if status == 409 else "Not Found"
            raise ProblemError(status, title, exc.message) from None
        await record_audit(
            request.app[DATABASE],
            actor_kind=ActorKind.USER,
            actor_id=call.caller.id,
            action="call.invitation_created",
            subject=session_id,
        )
        return web.json_response(
            {
                "link": f"{base_url(request)}/join/{token}",
                "label": body.label,
                "expires_in_seconds": int(INVITATION_SECONDS),
            },
            status=201,
        )

    @api.endpoint(
        "POST",
        "/walk-in",
        allow=frozenset({Access.ANONYMOUS, Access.CITIZEN}),
        summary="Get a pass to ask for an advisor now from the walk-in page",
        body=WalkInBody,
    )
    async def walk_in(call: ApiCall) -> web.StreamResponse:
        request = call.request
        if not request.app[CONFIG].walk_in_web:
            raise ProblemError(
                404,
                "Not Found",
                "This service takes calls by appointment or at a booth only.",
                reason="walk_in_off",
            )
        limiter, key = request.app[WALK_IN_LIMITER], f"ip:{request.remote}"
        check_not_blocked(limiter, [key], "requests from this address")
        limiter.record_failure(key)  # every pass counts: the limit bounds passes per address
        db = request.app[DATABASE]
        token = request.app[GUESTS].issue(walk_in=True, expires_at=datetime.now(UTC) + WALK_IN_PASS)
        topics = [
            # The page shows the name in the citizen's language, the topic's own otherwise.
            {"id": t.id, "name": t.name, "names": topic_names(t)}
            for t in await list_topics(db, include_inactive=False)
        ]
        response = web.json_response({"topics": topics, "regions": await list_regions(db)})
        set_guest_cookie(request, response, token, int(WALK_IN_PASS.total_seconds()))
        return response
