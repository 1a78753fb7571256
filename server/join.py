"""A citizen's way in: the appointment link opens the join page, which trades the link's token
for a guest pass (a cookie for that one appointment) and then waits in the lobby. The same page
opens a running call's invitation link (an interpreter): the pass is then for that call."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated

from aiohttp import web
from pydantic import Field

from server.api import Access, Api, ApiCall, RequestBody
from server.calls import set_guest_cookie
from server.http import ProblemError, check_not_blocked
from server.keys import DATABASE, GUESTS, JOIN_LIMITER, SHARED_CALLS, SWITCHBOARD
from server.storage import (
    ActorKind,
    LinkState,
    appointment_for_link,
    get_user,
    join_window,
    record_audit,
)
from server.switchboard import INVITATION_SECONDS

log = logging.getLogger(__name__)


_REFUSALS = {
    LinkState.TOO_EARLY: (
        409,
        "Conflict",
        "It is too early: the link opens 15 minutes before the appointment.",
    ),
    LinkState.OVER: (
        410,
        "Gone",
        "This appointment is over. Please contact the office if you need another one.",
    ),
    LinkState.CANCELLED: (
        410,
        "Gone",
        "This appointment was cancelled. Please contact the office to make a new one.",
    ),
}


class JoinBody(RequestBody):
    token: Annotated[str, Field(min_length=1, max_length=200)]


def register(api: Api) -> None:
    @api.endpoint(
        "POST",
        "/join",
        allow=frozenset({Access.ANONYMOUS, Access.CITIZEN}),
        summary="Open an appointment link",
        body=JoinBody,
    )
    async def join(call: ApiCall) -> web.StreamResponse:
        request, body = call.request, call.body_as(JoinBody)
        limiter = request.app[JOIN_LIMITER]
        key = f"ip:{request.remote}"
        check_not_blocked(limiter, [key], "invalid links")
        db = request.app[DATABASE]
        shared = request.app.get(SHARED_CALLS)  # in a cluster, a link made on any node
        if shared is not None:
            invitation = await shared.invitation(body.token)
        else:
            invitation = request.app[SWITCHBOARD].invitation(body.token)
        if invitation is not None:
            ttl = int(INVITATION_SECONDS)
            token = request.app[GUESTS].issue(
                invited_to=invitation.session_id,
                name=invitation.label,
                expires_at=datetime.now(UTC) + timedelta(seconds=ttl),
            )
            await record_audit(
                db,
                actor_kind=ActorKind.CITIZEN,
                actor_id=None,
                action="call.invitation_opened",
                subject=invitation.session_id,
            )
            response = web.json_response({"kind": "invitation", "label": invitation.label})
            set_guest_cookie(request, response, token, ttl)
            return response
        state, appointment = await appointment_for_link(db, body.token)
        if appointment is None:
            limiter.record_failure(key)  # guessing links: counted
            raise ProblemError(
                404,
                "Not Found",
                "This link is not known, or the call it was made for has ended. Check that the "
                "whole link was copied, or ask the office for a new one.",
                reason=state.value,
            )
        opens, closes = join_window(appointment)
        if state is not LinkState.OPEN:
            # The page says this in the citizen's language from the reason (and the time).
            raise ProblemError(*_REFUSALS[state], reason=state.value, opens_at=opens.isoformat())
        advisor = await get_user(db, appointment.advisor_id)
        token = request.app[GUESTS].issue(
            appointment_id=appointment.id, advisor_id=appointment.advisor_id, expires_at=closes
        )
        await record_audit(
            db,
            actor_kind=ActorKind.CITIZEN,
            actor_id=None,
            action="appointment.link_opened",
            subject=appointment.id,
        )
        response = web.json_response(
            {
                "kind": "appointment",
                "appointment_id": appointment.id,
                "advisor_name": advisor.display_name if advisor else "your advisor",
                "starts_at": appointment.starts_at.isoformat(),
                "duration_minutes": appointment.duration_minutes,
            }
        )
        set_guest_cookie(
            request, response, token, int((closes - datetime.now(UTC)).total_seconds())
        )
        return response
