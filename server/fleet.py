"""The fleet's API: administrators add, rename, move and revoke booths and hand out one-time
enrolment tokens; booths enrol with a token and their public key, and log in by signing a
server nonce (:mod:`server.boothauth`)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field

from server.api import ADMINS, EVERYONE, Access, Api, ApiCall, Name, RequestBody
from server.appointments import qr_svg
from server.auditing import audit
from server.fleet_health import FLEET
from server.http import ProblemError, check_not_blocked
from server.keys import CONFIG, DATABASE, ENROL_LIMITER, NONCES, SWITCHBOARD
from server.storage import (
    ActorKind,
    Booth,
    EnrolmentError,
    add_booth_for_enrolment,
    enrol_booth,
    get_booth,
    hardware_facts,
    list_booths,
    new_enrolment_token,
    record_audit,
    rename_booth,
    revoke_booth,
    set_booth_branch,
)

log = logging.getLogger(__name__)

_Id = Annotated[str, Field(min_length=1, max_length=64)]


class NewBoothBody(RequestBody):
    name: Name
    branch_id: _Id | None = None


class BoothChange(RequestBody):
    name: Name | None = None
    #: Move the booth to this branch ("" takes it out of any branch).
    branch_id: Annotated[str, Field(max_length=64)] | None = None


class EnrolBody(RequestBody):
    token: Annotated[str, Field(min_length=1, max_length=100)]
    public_key: Annotated[str, Field(min_length=64, max_length=64)]
    hardware: dict[str, Annotated[str, Field(max_length=200)]] = Field(default_factory=dict)


def booth_json(booth: Booth, online: bool = False) -> dict[str, Any]:
    return {
        "id": booth.id,
        "name": booth.name,
        "branch_id": booth.branch_id,
        "created_at": booth.created_at.isoformat(),
        "enrolled_at": booth.enrolled_at.isoformat() if booth.enrolled_at else None,
        "enrolled": booth.public_key is not None,
        "legacy_secret": booth.secret_hash is not None,
        "revoked": booth.revoked,
        "online": online,
        "hardware": hardware_facts(booth),
    }


def _token_answer(booth: Booth, token: str, expires_at: Any) -> dict[str, Any]:
    return {
        "booth": booth_json(booth),
        "enrolment_token": token,
        "expires_at": expires_at.isoformat(),
        "qr_svg": qr_svg(token),
        "note": "the token is shown once and works once",
    }


def register(api: Api) -> None:
    @api.endpoint(
        "GET",
        "/booth/challenge",
        allow=EVERYONE,
        summary="Get a one-time nonce for a booth to sign when it logs in",
    )
    async def challenge(call: ApiCall) -> web.StreamResponse:
        booth_id = call.request.query.get("booth", "")
        if not 1 <= len(booth_id) <= 64 or not booth_id.isalnum():
            raise ProblemError(400, "Bad Request", "name the booth: ?booth=<booth id>")
        # The same answer for every id: nobody learns which booths exist.
        return web.json_response({"nonce": call.request.app[NONCES].issue(booth_id)})

    @api.endpoint(
        "POST",
        "/enrol",
        allow=frozenset({Access.ANONYMOUS}),
        summary="Enrol a booth: a one-time token and the booth's public key",
        body=EnrolBody,
    )
    async def enrol(call: ApiCall) -> web.StreamResponse:
        request, body = call.request, call.body_as(EnrolBody)
        limiter, key = request.app[ENROL_LIMITER], f"ip:{request.remote}"
        check_not_blocked(limiter, [key], "failed enrolments")
        db = request.app[DATABASE]
        try:
            booth, repeated = await enrol_booth(
                db, body.token, body.public_key, dict(body.hardware)
            )
        except EnrolmentError as exc:
            limiter.record_failure(key)
            log.warning("enrolment refused from %s: %s", request.remote, exc)
            # The reason as a code as well: the booth explains it in its visitor's language.
            raise ProblemError(403, "Forbidden", str(exc), reason=exc.reason.value) from None
        await record_audit(
            db,
            actor_kind=ActorKind.BOOTH,
            actor_id=booth.id,
            # The same answer again for a booth that did not get the first: no new enrolment.
            action="booth.enrol_repeated" if repeated else "booth.enrol",
            subject=booth.id,
        )
        return web.json_response(
            {
                "booth_id": booth.id,
                "name": booth.name,
                "branch_id": booth.branch_id,
                "heartbeat_seconds": request.app[CONFIG].heartbeat_seconds,
            }
        )

    @api.endpoint("GET", "/booths", allow=ADMINS, summary="List the booths")
    async def listing(call: ApiCall) -> web.StreamResponse:
        online = call.request.app[SWITCHBOARD].online_booths()
        elsewhere = await call.request.app[FLEET].others()  # in a cluster, the other nodes'
        online |= {booth_id for booth_id, there in elsewhere.items() if there.sighting.online}
        booths = await list_booths(call.request.app[DATABASE])
        return web.json_response({"booths": [booth_json(b, b.id in online) for b in booths]})

    @api.endpoint(
        "POST",
        "/booths",
        allow=ADMINS,
        summary="Add a booth and get its enrolment token",
        body=NewBoothBody,
    )
    async def add(call: ApiCall) -> web.StreamResponse:
        body = call.body_as(NewBoothBody)
        ttl = timedelta(hours=call.request.app[CONFIG].enrolment_token_hours)
        new = await add_booth_for_enrolment(
            call.request.app[DATABASE], body.name, branch_id=body.branch_id, ttl=ttl
        )
        await audit(call, "booth.create", new.booth.id)
        return web.json_response(_token_answer(new.booth, new.token, new.expires_at), status=201)

    @api.endpoint(
        "POST",
        "/booths/{id}/enrolment",
        allow=ADMINS,
        summary="A new enrolment token for a booth (a replacement device)",
    )
    async def reenrol(call: ApiCall) -> web.StreamResponse:
        booth_id = call.request.match_info["id"]
        ttl = timedelta(hours=call.request.app[CONFIG].enrolment_token_hours)
        db = call.request.app[DATABASE]
        try:
            token, expires_at = await new_enrolment_token(db, booth_id, ttl=ttl)
        except EnrolmentError as exc:
            raise ProblemError(409, "Conflict", str(exc)) from None
        booth = await get_booth(db, booth_id)
        assert booth is not None
        await audit(call, "booth.enrolment_token", booth_id)
        return web.json_response(_token_answer(booth, token, expires_at), status=201)

    @api.endpoint(
        "PATCH", "/booths/{id}", allow=ADMINS, summary="Rename or move a booth", body=BoothChange
    )
    async def change(call: ApiCall) -> web.StreamResponse:
        body, booth_id = call.body_as(BoothChange), call.request.match_info["id"]
        db = call.request.app[DATABASE]
        if await get_booth(db, booth_id) is None:
            raise ProblemError(404, "Not Found", "no such booth")
        if body.name is not None:
            await rename_booth(db, booth_id, body.name)
        if body.branch_id is not None:
            await set_booth_branch(db, booth_id, body.branch_id or None)
        await audit(call, "booth.update", booth_id)
        booth = await get_booth(db, booth_id)
        assert booth is not None
        return web.json_response(booth_json(booth))

    @api.endpoint("POST", "/booths/{id}/revoke", allow=ADMINS, summary="Revoke a booth")
    async def revoke(call: ApiCall) -> web.StreamResponse:
        booth_id = call.request.match_info["id"]
        booth = await revoke_booth(call.request.app[DATABASE], booth_id)
        # A revoked booth holds no session: its live connection goes now.
        call.request.app[SWITCHBOARD].disconnect_booth(booth_id, "revoked")
        await audit(call, "booth.revoke", booth_id)
        return web.json_response(booth_json(booth))
