"""The aiohttp application factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from protocol import IceServer
from server import (
    account,
    admin,
    appointments,
    auth,
    boothcode,
    branding,
    calls,
    fleet,
    fleet_health,
    idempotency,
    integrations,
    join,
    metrics,
    relay_pool,
    resume,
    statement,
    topics,
)
from server.api import EVERYONE, USERS, Access, Api, ApiCall
from server.boothauth import NonceStore, SharedNonces
from server.cluster import bus_for
from server.cluster.calls import (
    SharedCalls,
    SharedInvitations,
    SharedParticipants,
    SharedSessions,
)
from server.cluster.fleet import ClusterFleet
from server.cluster.membership import Membership
from server.config import ServerConfig
from server.guests import GuestPasses
from server.http import (
    error_middleware,
    forwarded_middleware,
    hide_server_versions,
    security_headers_middleware,
)
from server.keyfile import load_or_create_key
from server.keys import (
    API,
    BUS,
    CODE_LIMITER,
    CONFIG,
    DATABASE,
    ENROL_LIMITER,
    GUESTS,
    JOIN_LIMITER,
    LOGIN_LIMITER,
    MEMBERSHIP,
    NONCES,
    PASSWORD_WORK,
    SHARED_CALLS,
    SWITCHBOARD,
    WALK_IN_LIMITER,
)
from server.oidc import login as oidc_login
from server.outbox import appointment_event, outbox_ctx
from server.outbox.webhooks import openapi_webhooks
from server.ratelimit import RateLimiter, WorkGate
from server.signalling import CallSession, Participant
from server.storage import (
    IDEMPOTENCY_RETENTION,
    Database,
    audit_retention_days,
    call_endings_since,
    mark_appointment_done,
    purge_audit,
    purge_call_endings,
    purge_expired_sessions,
    purge_health,
    purge_idempotency,
    purge_outbox,
    purge_spent_nonces,
    record_call_ending,
)
from server.switchboard import Switchboard
from server.turn import ice_servers_for
from server.updates import api as updates_api
from server.updates.api import UPDATES
from server.updates.service import Updates, run_updates
from server.websocket import CODE_GUESSES, CODE_GUESSES_PER_DAY, CODE_WINDOW, websocket_handler

log = logging.getLogger(__name__)

__version__ = "0.1.0"

STATIC_DIR = Path(__file__).parent / "static"


async def _bus_ctx(app: web.Application) -> AsyncIterator[None]:
    """The bus to the other nodes (in-process for one server) and, in a cluster, this node's
    heartbeat and its view of the others."""
    config = app[CONFIG]
    bus = app[BUS] = bus_for(config)
    await bus.start()
    if config.cluster is not None:
        app[MEMBERSHIP] = Membership(bus, config.cluster.node_id)
        await app[MEMBERSHIP].start()
        app[SHARED_CALLS] = SharedCalls(
            switchboard=app[SWITCHBOARD],
            bus=bus,
            db=app[DATABASE],
            membership=app[MEMBERSHIP],
        )
        await app[SHARED_CALLS].start()
        cluster_fleet = ClusterFleet(
            bus=bus, monitor=app[fleet_health.FLEET], membership=app[MEMBERSHIP]
        )
        await cluster_fleet.start()
    yield
    if config.cluster is not None:
        await cluster_fleet.stop()
    if SHARED_CALLS in app:
        await app[SHARED_CALLS].stop()
    if MEMBERSHIP in app:
        await app[MEMBERSHIP].stop()
    await bus.close()


async def _updates_ctx(app: web.Application) -> AsyncIterator[None]:
    """Booth updates, when configured: bundles kept in their folder, the rollouts' loop."""
    config = app[CONFIG]
    if config.updates is None:
        yield
        return
    updates = Updates(
        db=app[DATABASE],
        config=config.updates,
        folder=config.updates.folder or config.data_dir / "updates",
        fleet=app[fleet_health.FLEET],
        default_timezone=config.timezone,
    )
    app[UPDATES] = updates
    stop = await run_updates(updates)
    yield
    await stop()


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    config.data_dir.mkdir(parents=True, exist_ok=True)
    app[DATABASE] = await Database.open(config.effective_database_url)
    key = load_or_create_key(config.effective_secret_key_file)
    app[DATABASE].code_key = key
    if config.cluster is not None:  # a booth's challenge and its login may reach two nodes
        app[NONCES] = SharedNonces(key, app[DATABASE])
    # Resume tokens and guest passes are signed with the same key: both outlive a restart.
    app[SWITCHBOARD].resume_key = key
    app[GUESTS].key = key
    if config.oidc is not None:  # its login flow's cookie is signed with the same key
        oidc_login.install(app, config.oidc)
    # What ended before a restart stays ended: no old resume token brings it back.
    since = datetime.now(UTC) - timedelta(seconds=resume.TOKEN_SECONDS)
    endings = await call_endings_since(app[DATABASE], since)
    app[SWITCHBOARD].remember_endings((s, p, at.timestamp()) for s, p, at in endings)
    yield
    await app[DATABASE].close()


#: Wrong logins per account and per address within the window before they must wait.
LOGIN_FAILURES, LOGIN_WINDOW = 10, 300.0
#: Password checks (argon2id, about 0.1 s of a core each) running at once and waiting: a burst
#: of logins uses at most this many cores and is refused beyond the queue ("busy").
PASSWORD_SLOTS = max(1, (os.cpu_count() or 2) // 2)
PASSWORD_QUEUE = 16

#: Outbox rows sent, superseded or failed (their content gone already) and the contacts of
#: appointments that started are kept this long.
OUTBOX_RETENTION = timedelta(days=1)
#: How often old audit events and expired login sessions are purged.
HOUSEKEEPING_SECONDS = 3600.0


async def housekeeping(app: web.Application) -> None:
    """One round: purge audit events past retention, expired login sessions and old booth
    health reports.

    The retention an administrator set wins over the configuration's.
    """
    db, config = app[DATABASE], app[CONFIG]
    days = await audit_retention_days(db) or config.audit_retention_days
    purged = await purge_audit(db, older_than=timedelta(days=days))
    sessions = await purge_expired_sessions(db)
    health = await purge_health(db, older_than=fleet_health.HEALTH_RETENTION)
    await purge_call_endings(db, older_than=timedelta(seconds=resume.TOKEN_SECONDS))
    await purge_spent_nonces(db)
    # A day after an appointment, nothing more is mailed about it: its contact goes.
    await purge_outbox(db, older_than=OUTBOX_RETENTION)
    await purge_idempotency(db, older_than=IDEMPOTENCY_RETENTION)
    if purged or sessions or health:
        log.info(
            "housekeeping: %d audit events, %d expired logins, %d health reports purged",
            purged,
            sessions,
            health,
        )


async def _housekeeping_ctx(app: web.Application) -> AsyncIterator[None]:
    async def loop() -> None:
        while True:
            try:
                await housekeeping(app)
            except Exception:
                # A failed round is retried at the next; the server keeps serving.
                log.exception("housekeeping failed")
            await asyncio.sleep(HOUSEKEEPING_SECONDS)

    task = asyncio.create_task(loop(), name="housekeeping")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _away_ctx(app: web.Application) -> AsyncIterator[None]:
    """Every second: calls that waited too long for a lost participant end."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                app[SWITCHBOARD].expire_away()
                app[SWITCHBOARD].expire_logins()
                app[SWITCHBOARD].forget_old_endings()
            except Exception:
                log.exception("ending calls of lost participants failed")

    task = asyncio.create_task(loop(), name="away")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _on_shutdown(app: web.Application) -> None:
    app[SWITCHBOARD].close_all()


async def _index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/advisor/")


async def _advisor_page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "advisor" / "index.html")


async def _admin_page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "admin" / "index.html")


async def _statement_page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "statement" / "index.html")


async def _join_page(request: web.Request) -> web.StreamResponse:
    # The token stays in the address; the page's script sends it to /api/v1/join.
    return web.FileResponse(STATIC_DIR / "citizen" / "join.html")


def _build_api() -> Api:
    api = Api()

    @api.endpoint("GET", "/health", allow=EVERYONE, summary="Check that the server answers")
    async def health(call: ApiCall) -> web.StreamResponse:
        # For load balancers and the demo launcher: says nothing about calls or people. A
        # cluster's node names itself, so a check through the balancer shows who answered.
        cluster = call.request.app[CONFIG].cluster
        node: dict[str, object] = {}
        if cluster is not None:
            membership = call.request.app.get(MEMBERSHIP)
            node = {
                "node": cluster.node_id,
                # Informative only: a node whose bus is down still serves its clients, so the
                # balancer must not take it out for that.
                "bus": call.request.app[BUS].state.value,
                "nodes": membership.alive() if membership is not None else [],
            }
        return web.json_response({"status": "ok", **node})

    auth.register(api)
    oidc_login.register(api)
    account.register(api)
    appointments.register(api)
    join.register(api)
    calls.register(api)
    fleet.register(api)
    fleet_health.register(api)
    topics.register(api)
    admin.register(api)
    branding.register(api)
    statement.register(api)
    boothcode.register(api)
    updates_api.register(api)
    integrations.register(api)
    api.endpoint(
        "GET",
        "/ws",
        allow=frozenset({Access.ADVISOR, Access.BOOTH, Access.CITIZEN}),
        summary="Open the signalling WebSocket",
    )(websocket_handler)

    @api.endpoint(
        "GET",
        "/relay",
        allow=frozenset({Access.BOOTH}),
        summary="Name the relay's addresses (no credentials) for a booth's network check",
    )
    async def relay(call: ApiCall) -> web.StreamResponse:
        turn = call.request.app[CONFIG].turn
        return web.json_response({"urls": list(turn.all_urls) if turn else []})

    @api.endpoint(
        "GET",
        "/openapi.json",
        allow=frozenset({*USERS, Access.SERVICE}),
        summary="Read the API description",
        scope="appointments:read",
    )
    async def openapi(call: ApiCall) -> web.StreamResponse:
        document = api.openapi(title="Videobooth", version=__version__, webhooks=openapi_webhooks())
        return web.json_response(document)

    return api


#: How long a stopping server waits for the switchboard's database writes still under way.
WRITES_AT_SHUTDOWN_SECONDS = 5.0


def _finish_writes_ctx(
    tasks: set[asyncio.Task[object]],
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Before the database closes, the writes started beside the switchboard (a call's end, a
    finished participant) finish: they are what a restarted server must know."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        yield
        if tasks:
            await asyncio.wait(set(tasks), timeout=WRITES_AT_SHUTDOWN_SECONDS)

    return ctx


def _finished(
    tasks: set[asyncio.Task[object]], what: str
) -> Callable[[asyncio.Task[object]], None]:
    def done(task: asyncio.Task[object]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: %s", what, task.exception())

    return done


def create_app(config: ServerConfig) -> web.Application:
    """Build the server application for ``config``."""
    forwarded = forwarded_middleware(config.trusted_proxies)
    app = web.Application(
        # The client's real address first: every limit and log line below sees it.
        middlewares=[
            *([forwarded] if forwarded else []),
            security_headers_middleware(https=config.https),
            error_middleware,
        ],
        client_max_size=64 * 1024,
    )
    app[CONFIG] = config
    app[LOGIN_LIMITER] = RateLimiter(limit=LOGIN_FAILURES, window=LOGIN_WINDOW)
    app[PASSWORD_WORK] = WorkGate(slots=PASSWORD_SLOTS, queue=PASSWORD_QUEUE)
    app[JOIN_LIMITER] = RateLimiter(limit=10, window=300.0)
    # Walk-in passes per address: a family or an office behind one address, not a script.
    app[WALK_IN_LIMITER] = RateLimiter(limit=20, window=3600.0)
    app[CODE_LIMITER] = (
        RateLimiter(limit=CODE_GUESSES, window=CODE_WINDOW),
        RateLimiter(limit=CODE_GUESSES_PER_DAY, window=86_400.0),
    )
    app[GUESTS] = GuestPasses()
    app[NONCES] = NonceStore()
    app[ENROL_LIMITER] = RateLimiter(limit=10, window=600.0)

    relays = relay_pool.install(app, config.turn)

    def ice_for(conn: Participant, session: CallSession) -> list[IceServer]:
        label = f"{session.id}-{conn.participant_id[:8]}"
        if relays is None:
            return ice_servers_for(config.turn, label)
        # Ordered by the session: every participant of a call prefers the same relay.
        return relays.ice_servers_for(label, spread_by=session.id)

    background: set[asyncio.Task[object]] = set()

    def beside(work: Coroutine[Any, Any, object], what: str) -> None:
        # The switchboard never awaits; its database writes run beside it.
        task = asyncio.get_running_loop().create_task(work)
        background.add(task)
        task.add_done_callback(_finished(background, what))

    def call_ended(session: CallSession) -> None:
        if session.appointment_id is not None:
            beside(
                mark_appointment_done(app[DATABASE], session.appointment_id),
                f"appointment {session.appointment_id} not marked done",
            )

    def ending(session_id: str, participant_id: str) -> None:
        beside(
            record_call_ending(app[DATABASE], session_id, participant_id),
            f"session {session_id}: ending not recorded",
        )

    fleet = fleet_health.install(app)
    metrics.install(app, fleet, relays=relays)
    app[SWITCHBOARD] = Switchboard(
        fleet=fleet,
        on_call_ended=call_ended,
        on_ending=ending,
        on_appointment=appointment_event(app),
        ice_servers_for=ice_for,
        booth_ice_policy=config.effective_booth_ice_policy,
        browser_ice_policy=config.browser_ice_policy,
        resume_grace_seconds=config.resume_grace_seconds,
        walk_in_queue_limit=config.walk_in_queue_limit,
        walk_ins_per_address=config.walk_ins_per_address,
        # A node of a cluster writes its calls down for the others (server/cluster/calls/).
        participants=SharedParticipants() if config.cluster is not None else None,
        sessions=SharedSessions() if config.cluster is not None else None,
        invitations=SharedInvitations() if config.cluster is not None else None,
    )
    app.cleanup_ctx.append(_database_ctx)
    app.cleanup_ctx.append(_bus_ctx)
    app.cleanup_ctx.append(_finish_writes_ctx(background))
    app.cleanup_ctx.append(_housekeeping_ctx)
    app.cleanup_ctx.append(_updates_ctx)
    app.cleanup_ctx.append(outbox_ctx)
    app.cleanup_ctx.append(_away_ctx)
    app.on_shutdown.append(_on_shutdown)
    app.on_response_prepare.append(hide_server_versions)

    app.router.add_get("/", _index)
    app.router.add_get("/advisor/", _advisor_page)
    app.router.add_get("/admin/", _admin_page)
    app.router.add_get("/join/{token}", _join_page)
    app.router.add_get("/now/", _join_page)  # the same page, asking for an advisor now
    app.router.add_get("/accessibility/", _statement_page)
    app.router.add_static("/static/", STATIC_DIR, follow_symlinks=False)
    api = _build_api()
    app[API] = api
    api.install(
        app, account.gated(auth.caller_for), public_url=config.public_url, once=idempotency.once
    )
    return app
