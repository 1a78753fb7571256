"""Webhooks: a booking system hears of its appointments' events (``appointment.waiting``: the
citizen is in the lobby; ``call.started``; ``call.ended``), each POSTed as JSON to its
endpoint, signed, through the outbox: retried with backoff while the endpoint fails, and in
the order they happened for each appointment and endpoint (an event waits for the one before
it).

The signature is ``Videobooth-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>"
with the endpoint's secret>`` (the receiver checks it and the time, as docs/integration.md
shows); ``Videobooth-Event-Id`` names the event once however often it is delivered.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp

from server.outbox.sealing import Sealer, SealError
from server.outbox.worker import PermanentError, TemporaryError
from server.signalling import CallSession
from server.storage import Database, enqueue, get_webhook, mark_no_shows, webhooks_for

__all__ = ["EVENTS", "Webhooks", "openapi_webhooks", "signature"]

log = logging.getLogger(__name__)

EVENTS = ("appointment.waiting", "call.started", "call.ended", "appointment.no_show")
#: How often a node looks for appointments whose join window closed without a call.
NO_SHOW_SCAN_SECONDS = 60.0
SIGNATURE_HEADER = "Videobooth-Signature"
EVENT_ID_HEADER = "Videobooth-Event-Id"
TIMEOUT_SECONDS = 10.0


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


_SAID = {
    "appointment.waiting": "The citizen is in the appointment's lobby (from home or a booth).",
    "call.started": "The advisor took the appointment's call.",
    "call.ended": "The appointment's call ended.",
    "appointment.no_show": "The appointment's join window closed without a call (told once).",
}


def openapi_webhooks() -> dict[str, Any]:
    """The events as OpenAPI 3.1 describes requests an API makes: one POST each, its body,
    its headers and what the receiver's answers mean."""
    call_data = {
        "appointment_id": {"type": "string"},
        "session_id": {"type": "string"},
        "advisor_id": {"type": ["string", "null"]},
    }
    no_show_data = {
        "appointment_id": {"type": "string"},
        "advisor_id": {"type": ["string", "null"]},
        "starts_at": {"type": "string", "format": "date-time"},
    }
    headers = [
        {
            "name": SIGNATURE_HEADER,
            "in": "header",
            "required": True,
            "description": 't=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the '
            "endpoint's secret>: check it and the time before trusting the body",
            "schema": {"type": "string"},
        },
        {
            "name": EVENT_ID_HEADER,
            "in": "header",
            "required": True,
            "description": "the same on every delivery of one event: ignore repeats",
            "schema": {"type": "string"},
        },
    ]
    document: dict[str, Any] = {}
    for event in EVENTS:
        data = no_show_data if event == "appointment.no_show" else call_data
        body = {
            "type": "object",
            "required": ["id", "type", "created_at", "data"],
            "properties": {
                "id": {"type": "string"},
                "type": {"const": event},
                "created_at": {"type": "string", "format": "date-time"},
                "data": {"type": "object", "properties": data},
            },
        }
        document[event] = {
            "post": {
                "summary": _SAID[event],
                "parameters": headers,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": body}},
                },
                "responses": {
                    "2XX": {"description": f"Taken (answer within {TIMEOUT_SECONDS:.0f} s)"},
                    "5XX": {
                        "description": "Delivered again later, with backoff (also 408, 429 "
                        "and no answer); another 4xx gives the event up"
                    },
                },
            }
        }
    return document


class Webhooks:
    """Events into the outbox, and their delivery (the worker's ``webhook`` sender)."""

    def __init__(
        self,
        db: Database,
        outbox_sealer: Sealer,
        secret_sealer: Sealer,
        *,
        wake: Callable[[], None],
    ) -> None:
        self._db = db
        self._outbox = outbox_sealer
        self.secrets = secret_sealer
        self._wake = wake
        #: Events being written (the switchboard never awaits).
        self._writing: set[asyncio.Task[None]] = set()
        #: The latest event of each appointment still being written: the next waits for it,
        #: so that their rows (and deliveries) are in the order the switchboard told them.
        self._last: dict[str, asyncio.Task[None]] = {}

    def emit(self, event: str, session: CallSession) -> None:
        """From the switchboard: an appointment's call did ``event``."""
        assert session.appointment_id is not None
        data = {
            "appointment_id": session.appointment_id,
            "session_id": session.id,
            "advisor_id": session.advisor_id,
        }
        appointment_id = session.appointment_id
        before = self._last.get(appointment_id)
        task = asyncio.get_running_loop().create_task(
            self._queue_after(before, event, appointment_id, data)
        )
        self._writing.add(task)
        self._last[appointment_id] = task
        task.add_done_callback(lambda done: self._written(appointment_id, done))

    async def _queue_after(
        self,
        before: asyncio.Task[None] | None,
        event: str,
        appointment_id: str,
        data: dict[str, Any],
    ) -> None:
        if before is not None:  # written, or failed, before this one is
            await asyncio.wait([before])
        await self._queue(event, appointment_id, data)

    def _written(self, appointment_id: str, task: asyncio.Task[None]) -> None:
        self._writing.discard(task)
        if self._last.get(appointment_id) is task:
            del self._last[appointment_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("a webhook event was not queued", exc_info=task.exception())

    async def no_shows(self) -> int:
        """Tell of the appointments whose join window closed without a call (once each,
        whichever node looks first); how many."""
        marked = await mark_no_shows(self._db)
        for appointment in marked:
            data = {
                "appointment_id": appointment.id,
                "advisor_id": appointment.advisor_id,
                "starts_at": appointment.starts_at.isoformat(),
            }
            await self._queue("appointment.no_show", appointment.id, data)
        return len(marked)

    async def watch_no_shows(self) -> None:
        """Every :data:`NO_SHOW_SCAN_SECONDS`, for as long as the server runs."""
        while True:
            try:
                await self.no_shows()
            except Exception:  # the database away: the next round tries again
                log.exception("no-shows: could not look at the appointments")
            await asyncio.sleep(NO_SHOW_SCAN_SECONDS)

    async def _queue(self, event: str, appointment_id: str, data: dict[str, Any]) -> None:
        endpoints = await webhooks_for(self._db, event)
        if not endpoints:
            return
        event_id = uuid.uuid4().hex
        body = json.dumps(
            {
                "id": event_id,
                "type": event,
                "created_at": self._db.now().isoformat(),
                "data": data,
            },
            separators=(",", ":"),
        )
        for endpoint in endpoints:
            payload = json.dumps({"endpoint": endpoint.id, "event": event_id, "body": body})

            def sealed(row_id: str, payload: str = payload) -> bytes:
                return self._outbox.seal(payload.encode(), row_id)

            await enqueue(
                self._db,
                kind="webhook",
                purpose=event,
                sealed_by=sealed,
                ordering_key=f"{endpoint.id}:{appointment_id}",
            )
        self._wake()

    async def send(self, content: bytes) -> None:
        """The worker's sender: one event to one endpoint."""
        record = json.loads(content)
        endpoint = await get_webhook(self._db, record["endpoint"])
        if endpoint is None:
            raise PermanentError("the webhook endpoint was removed")
        try:
            secret = self.secrets.open(endpoint.sealed_secret, endpoint.id).decode()
        except SealError as exc:
            raise PermanentError(str(exc)) from None
        body = record["body"].encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(secret, int(time.time()), body),
            EVENT_ID_HEADER: record["event"],
            "User-Agent": "Videobooth-Webhooks/1",
        }
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                http.post(endpoint.url, data=body, headers=headers, allow_redirects=False) as r,
            ):
                status = r.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise TemporaryError(f"the endpoint cannot be reached ({type(exc).__name__})") from None
        if 200 <= status < 300:
            return
        if status in (408, 429) or status >= 500:
            raise TemporaryError(f"the endpoint answered HTTP {status}")
        raise PermanentError(f"the endpoint refused the event (HTTP {status})")
