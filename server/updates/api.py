"""The update endpoints: administrators upload bundles and run rollouts; a booth fetches the
bundle it was offered (in ranges: an interrupted download goes on where it stopped)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field

from server.api import ADMINS, Access, Api, ApiCall, RequestBody
from server.auditing import audit
from server.http import ProblemError
from server.keys import DATABASE
from server.storage import ConflictError, DuplicateError, NotFoundError
from server.storage.models import Rollout, UpdateBundle
from server.storage.updates import (
    ACTIVE_STATES,
    delete_bundle,
    get_bundle,
    get_rollout,
    list_bundles,
    list_rollouts,
    rollout_booths,
    rollouts_in,
)

from .errors import BundleError, UpdateError
from .service import RolloutPlan, Updates

__all__ = ["UPDATES", "register"]

UPDATES = web.AppKey("updates", Updates)
#: Read from an upload in pieces of this size.
_UPLOAD_CHUNK = 1 << 20
_Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class RolloutBody(RequestBody):
    bundle_id: _Id
    #: The booths that go first, alone; the next stage waits until all of them are done.
    canaries: Annotated[tuple[_Id, ...], Field(max_length=100)] = ()
    #: Batches by share of the other booths, rising to 100 (e.g. [10, 50, 100]) ...
    shares: Annotated[list[Annotated[int, Field(ge=1, le=100)]], Field(max_length=20)] | None = None
    #: ... or by branch: each batch a list of branch ids; booths of other branches last.
    branch_batches: Annotated[list[list[_Id]], Field(max_length=100)] | None = None
    max_failure_share: Annotated[float, Field(ge=0, le=1)] = 0.2
    health_timeout_minutes: Annotated[float, Field(ge=1, le=24 * 60)] = 30.0
    max_parallel: Annotated[int, Field(ge=1, le=10_000)] = 50


def bundle_json(bundle: UpdateBundle) -> dict[str, Any]:
    return {
        "id": bundle.id,
        "version": bundle.version,
        "compatible": bundle.compatible,
        "signer": bundle.signer,
        "sha256": bundle.sha256,
        "size": bundle.size,
        "uploaded_at": bundle.uploaded_at.isoformat(),
    }


def rollout_json(rollout: Rollout) -> dict[str, Any]:
    return {
        "id": rollout.id,
        "bundle_id": rollout.bundle_id,
        "state": rollout.state,
        "stage": rollout.stage,
        "reason": rollout.reason,
        "max_failure_share": rollout.max_failure_share,
        "health_timeout_minutes": rollout.health_timeout_seconds / 60,
        "max_parallel": rollout.max_parallel,
        "created_at": rollout.created_at.isoformat(),
        "updated_at": rollout.updated_at.isoformat(),
    }


def _updates(call: ApiCall) -> Updates:
    updates = call.request.app.get(UPDATES)
    if updates is None:
        raise ProblemError(
            409,
            "Conflict",
            "booth updates are not set up: add an [updates] section with the signing "
            "certificate (keyring) to the server's configuration",
        )
    return updates


def register(api: Api) -> None:
    @api.endpoint(
        "POST",
        "/updates/bundles",
        allow=ADMINS,
        summary="Upload a booth update bundle (the .raucb file as the body); checked with RAUC",
    )
    async def upload(call: ApiCall) -> web.StreamResponse:
        updates = _updates(call)

        async def chunks() -> AsyncIterator[bytes]:
            while piece := await call.request.content.read(_UPLOAD_CHUNK):
                yield piece

        try:
            bundle = await updates.receive(chunks(), user_id=call.caller.id)
        except BundleError as exc:
            raise ProblemError(422, "Unprocessable Content", f"bundle refused: {exc}") from None
        except DuplicateError as exc:
            raise ProblemError(409, "Conflict", str(exc)) from None
        await audit(call, "update.bundle_upload", bundle.id, version=bundle.version)
        return web.json_response(bundle_json(bundle), status=201)

    @api.endpoint("GET", "/updates/bundles", allow=ADMINS, summary="The uploaded bundles")
    async def bundles(call: ApiCall) -> web.StreamResponse:
        found = await list_bundles(call.request.app[DATABASE])
        return web.json_response({"bundles": [bundle_json(b) for b in found]})

    @api.endpoint("DELETE", "/updates/bundles/{id}", allow=ADMINS, summary="Delete a bundle")
    async def remove(call: ApiCall) -> web.StreamResponse:
        bundle_id = call.request.match_info["id"]
        try:
            bundle = await delete_bundle(call.request.app[DATABASE], bundle_id)
        except NotFoundError:
            raise ProblemError(404, "Not Found", "no such bundle") from None
        except ConflictError as exc:
            raise ProblemError(409, "Conflict", str(exc)) from None
        updates = call.request.app.get(UPDATES)
        if updates is not None:
            updates.path_of(bundle).unlink(missing_ok=True)
        await audit(call, "update.bundle_delete", bundle_id, version=bundle.version)
        return web.Response(status=204)

    @api.endpoint(
        "GET",
        "/updates/bundles/{id}/file",
        allow=frozenset({Access.BOOTH}),
        summary="A booth fetches the bundle of a rollout it is in (range requests)",
    )
    async def file(call: ApiCall) -> web.StreamResponse:
        updates, db = _updates(call), call.request.app[DATABASE]
        bundle_id, booth_id = call.request.match_info["id"], call.caller.id
        # Only a bundle offered to this booth: a running or paused rollout of it names it.
        for rollout in await rollouts_in(db, ACTIVE_STATES):
            if rollout.bundle_id != bundle_id:
                continue
            if any(t.booth_id == booth_id for t in await rollout_booths(db, rollout.id)):
                bundle = await get_bundle(db, bundle_id)
                if bundle is None:
                    break
                path = updates.path_of(bundle)
                if not await asyncio.to_thread(path.is_file):
                    # Another node took the upload and this one has no copy: the booth asks
                    # again (through the balancer) and reaches one that has it.
                    raise ProblemError(
                        503,
                        "Service Unavailable",
                        "this server node has no copy of the bundle ([updates] folder must be "
                        "shared by the nodes)",
                        retry_after=30,
                    )
                return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})
        raise ProblemError(404, "Not Found", "no rollout offers this bundle to this booth")

    @api.endpoint(
        "GET",
        "/updates/rollouts/{id}/still",
        allow=frozenset({Access.BOOTH}),
        summary="A booth asks, just before it installs, whether its rollout still wants it",
    )
    async def still(call: ApiCall) -> web.StreamResponse:
        db, rollout_id = call.request.app[DATABASE], call.request.match_info["id"]
        found = await get_rollout(db, rollout_id)
        mine = found is not None and any(
            t.booth_id == call.caller.id for t in await rollout_booths(db, rollout_id)
        )
        if found is None or not mine:
            raise ProblemError(404, "Not Found", "no such rollout for this booth")
        return web.json_response({"state": found.state, "install": found.state == "running"})

    @api.endpoint(
        "POST", "/updates/rollouts", allow=ADMINS, summary="Start a rollout", body=RolloutBody
    )
    async def start(call: ApiCall) -> web.StreamResponse:
        body = call.body_as(RolloutBody)
        if body.shares is not None and body.branch_batches is not None:
            raise ProblemError(400, "Bad Request", "give shares or branch_batches, not both")
        plan = RolloutPlan(
            bundle_id=body.bundle_id,
            canaries=body.canaries,
            shares=body.shares,
            branch_batches=body.branch_batches,
            max_failure_share=body.max_failure_share,
            health_timeout_minutes=body.health_timeout_minutes,
            max_parallel=body.max_parallel,
        )
        try:
            rollout = await _updates(call).start(plan, user_id=call.caller.id)
        except (UpdateError, NotFoundError) as exc:
            raise ProblemError(400, "Bad Request", str(exc)) from None
        except ConflictError as exc:
            raise ProblemError(409, "Conflict", str(exc)) from None
        await audit(call, "update.rollout_start", rollout.id, bundle=rollout.bundle_id)
        return web.json_response(rollout_json(rollout), status=201)

    @api.endpoint("GET", "/updates/rollouts", allow=ADMINS, summary="The rollouts, newest first")
    async def rollouts(call: ApiCall) -> web.StreamResponse:
        found = await list_rollouts(call.request.app[DATABASE])
        return web.json_response({"rollouts": [rollout_json(r) for r in found]})

    @api.endpoint("GET", "/updates/rollouts/{id}", allow=ADMINS, summary="A rollout and its booths")
    async def rollout(call: ApiCall) -> web.StreamResponse:
        db, rollout_id = call.request.app[DATABASE], call.request.match_info["id"]
        found = await get_rollout(db, rollout_id)
        if found is None:
            raise ProblemError(404, "Not Found", "no such rollout")
        booths = [
            {
                "booth_id": t.booth_id,
                "stage": t.stage,
                "progress": t.progress,
                "percent": t.percent,
                "since": t.since.isoformat() if t.since else None,
                "detail": t.detail,
            }
            for t in await rollout_booths(db, rollout_id)
        ]
        return web.json_response({**rollout_json(found), "booths": booths})

    async def change(
        call: ApiCall, action: str, move: Callable[[str], Awaitable[bool]]
    ) -> web.StreamResponse:
        db, rollout_id = call.request.app[DATABASE], call.request.match_info["id"]
        if await get_rollout(db, rollout_id) is None:
            raise ProblemError(404, "Not Found", "no such rollout")
        moved = await move(rollout_id)
        found = await get_rollout(db, rollout_id)
        assert found is not None
        if not moved:
            raise ProblemError(
                409, "Conflict", f"the rollout is {found.state}: it cannot be {action}d"
            )
        await audit(call, f"update.rollout_{action}", rollout_id)
        return web.json_response(rollout_json(found))

    @api.endpoint("POST", "/updates/rollouts/{id}/pause", allow=ADMINS, summary="Pause a rollout")
    async def pause(call: ApiCall) -> web.StreamResponse:
        return await change(call, "pause", _updates(call).pause)

    @api.endpoint("POST", "/updates/rollouts/{id}/resume", allow=ADMINS, summary="Resume a rollout")
    async def resume(call: ApiCall) -> web.StreamResponse:
        return await change(call, "resume", _updates(call).resume)

    @api.endpoint("POST", "/updates/rollouts/{id}/cancel", allow=ADMINS, summary="Cancel a rollout")
    async def cancel(call: ApiCall) -> web.StreamResponse:
        return await change(call, "cancel", _updates(call).cancel)
