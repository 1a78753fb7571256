"""The one WebSocket per client: authentication, strict parsing, error replies, limits."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import WSMsgType, web

from protocol import (
    Admit,
    AppointmentJoin,
    CallAccept,
    CallRequest,
    Error,
    ErrorCode,
    ProtocolError,
    Remove,
    Resume,
    Role,
    Welcome,
    decode_client,
)
from server.api import Access, ApiCall
from server.boothcode import CodeRefusal, CodeRefusedError, appointment_for_code
from server.http import check_same_origin
from server.keys import CONFIG, DATABASE, SHARED_CALLS, SWITCHBOARD
from server.ratelimit import TokenBucket
from server.signalling import Entitlement, LoginLease, Outbox, Participant
from server.storage import (
    booth_region,
    get_topic,
    list_regions,
    login_is_valid,
    topics_for_user,
)

log = logging.getLogger(__name__)

#: Frames up to this size are read and refused with an error reply (the protocol allows
#: 64 KiB); anything larger is a protocol violation and closes the connection (1009).
TRANSPORT_MAX_BYTES = 4 * 1024 * 1024
#: What a person does on its socket that needs its login to be valid at that moment: taking a
#: call, letting someone in or out, taking a call up again (which hands out relay credentials).
PRIVILEGED = (CallAccept, Admit, Remove, Resume)
#: Refused messages a connection may send before it is closed as abusive.
MAX_ERRORS = 50
#: Wrong appointment codes a booth (or an address) may enter per window before it waits, and
#: per day in all (a booth that keeps guessing is someone trying codes, not a typo).
CODE_GUESSES, CODE_WINDOW = 5, 600.0
CODE_GUESSES_PER_DAY = 20
MESSAGE_RATE = 30.0
MESSAGE_BURST = 100.0


async def websocket_handler(call: ApiCall) -> web.StreamResponse:
    """``GET /api/v1/ws``: signalling for booths (bearer credential) and advisors (cookie)."""
    request, caller = call.request, call.caller
    if caller.by_cookie:
        # Browsers send Origin on every WebSocket handshake: refuse cross-site hijacking.
        check_same_origin(request, request.app[CONFIG].public_url)
    role = {Access.BOOTH: Role.BOOTH, Access.CITIZEN: Role.CITIZEN}.get(caller.access, Role.ADVISOR)

    config = request.app[CONFIG]
    switchboard = request.app[SWITCHBOARD]
    # In a cluster: a call another node carries is reached through it (server/cluster/calls/).
    shared = request.app.get(SHARED_CALLS)
    ws = web.WebSocketResponse(heartbeat=config.heartbeat_seconds, max_msg_size=TRANSPORT_MAX_BYTES)
    await ws.prepare(request)

    def close(code: int, reason: str) -> None:
        if not ws.closed:
            asyncio.get_running_loop().create_task(ws.close(code=code, message=reason.encode()))

    topics: frozenset[str] = frozenset()
    region: str | None = None
    db = request.app[DATABASE]
    if role is Role.ADVISOR and caller.id is not None:
        topics = frozenset(t.id for t in await topics_for_user(db, caller.id))
    elif role is Role.BOOTH and caller.id is not None:
        region = await booth_region(db, caller.id)
    outbox = Outbox(close)
    conn = Participant(
        role=role,
        principal_id=caller.id or "",
        name=caller.name,
        transport=outbox,
        entitlement=Entitlement(
            topics=topics,
            region=region,
            appointment_id=caller.appointment_id,
            appointment_advisor=caller.appointment_advisor,
            invited_to=caller.invited_to,
            walk_in=caller.walk_in,
        ),
        login=None
        if caller.login is None
        else LoginLease(id=caller.login, expires_at=caller.login_expires_at),
        address=request.remote,
    )
    writer = asyncio.create_task(
        _drain(ws, conn, outbox), name=f"ws-writer-{conn.participant_id[:8]}"
    )
    bucket = TokenBucket(rate=MESSAGE_RATE, burst=MESSAGE_BURST)
    errors = 0
    # First the client learns who it is to the others (its participant id names it in a call).
    conn.send(
        Welcome(
            participant_id=conn.participant_id,
            role=role,
            name=conn.name,
            heartbeat_seconds=config.heartbeat_seconds,
            resume_grace_seconds=switchboard.resume_grace_seconds if switchboard.resumable else 0,
        )
    )
    switchboard.register(conn)
    try:
        async for frame in ws:
            ref: str | None = None
            try:
                if frame.type is WSMsgType.BINARY:
                    raise ProtocolError(ErrorCode.BINARY_NOT_ALLOWED, "send JSON text frames")
                if frame.type is not WSMsgType.TEXT:
                    continue
                if not bucket.take():
                    raise ProtocolError(ErrorCode.RATE_LIMITED, "too many messages; slow down")
                message = decode_client(frame.data)
                ref = message.id
                # Disabled, reset or logged out on another node or directly in the database:
                # the login is checked again before it takes, joins or changes a call.
                if (
                    conn.login is not None
                    and isinstance(message, PRIVILEGED)
                    and not await login_is_valid(db, conn.login.id)
                ):
                    switchboard.close_login(conn, "your login has ended")
                    await ws.close(code=4003, message=b"your login has ended")
                    break
                topic = appointment = region = None
                if isinstance(message, CallRequest):
                    if message.topic_id is not None:
                        topic = await _topic(request, message.topic_id)
                    if message.region is not None and conn.role is Role.CITIZEN:
                        region = await _region(request, message.region)
                elif isinstance(message, AppointmentJoin) and conn.role is Role.BOOTH:
                    appointment = await _appointment(request, conn, message.code)
                if shared is not None and await shared.intercept(conn, message):
                    continue
                switchboard.handle(
                    conn, message, topic=topic, appointment=appointment, region=region
                )
            except ProtocolError as exc:
                errors += 1
                switchboard.signalling_errors += 1
                log.info("refused a message from %s: %s", conn, exc)
                conn.send(Error(code=exc.code, message=exc.message, ref=ref))
                if errors >= MAX_ERRORS:
                    log.warning("closing %s after %d refused messages", conn, errors)
                    # The replies so far go out first: they say what was wrong.
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(outbox.queue.join(), timeout=1.0)
                    await ws.close(code=1008, message=b"too many invalid messages")
                    break
            except Exception:
                # A bug handling one message must not end the connection, nor the server.
                log.exception("failed to handle a message from %s", conn)
                conn.send(Error(code=ErrorCode.INTERNAL, message="internal error", ref=ref))
        if ws.exception() is not None:
            log.info("connection of %s ended: %s", conn, ws.exception())
    finally:
        switchboard.unregister(conn)
        # Let the writer flush what is queued (a last hangup, an error) before it stops.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(outbox.queue.join(), timeout=1.0)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        await ws.close()
    return ws


async def _topic(request: web.Request, topic_id: str) -> tuple[str, str]:
    topic = await get_topic(request.app[DATABASE], topic_id)
    if topic is None or not topic.active:
        raise ProtocolError(ErrorCode.UNKNOWN_TOPIC, f"no active topic {topic_id}")
    return topic.id, topic.name


async def _region(request: web.Request, region: str) -> str:
    if region not in await list_regions(request.app[DATABASE]):
        raise ProtocolError(ErrorCode.UNKNOWN_REGION, f"no region {region!r}")
    return region


async def _appointment(request: web.Request, conn: Participant, code: str) -> tuple[str, str]:
    """The appointment a booth's code opens; wrong codes count against the booth and address
    (the same check as the booth's code check right after entry: server/boothcode.py)."""
    try:
        found = await appointment_for_code(request, conn.principal_id, code)
    except CodeRefusedError as exc:
        error = (
            ErrorCode.RATE_LIMITED
            if exc.refusal is CodeRefusal.RATE_LIMITED
            else ErrorCode.WRONG_CODE
        )
        raise ProtocolError(error, exc.message) from None
    return found.id, found.advisor_id


async def _drain(ws: web.WebSocketResponse, conn: Participant, outbox: Outbox) -> None:
    while True:
        text = await outbox.queue.get()
        try:
            if not ws.closed:
                await ws.send_str(text)
        except (ConnectionError, RuntimeError) as exc:
            log.info("could not send to %s: %s", conn, exc)
        finally:
            outbox.queue.task_done()
