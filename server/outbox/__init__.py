"""The outbox: mails and webhooks written to the database and sent by a worker on every node
(:mod:`.worker`), sealed at rest (:mod:`.sealing`); the appointments' mails (:mod:`.mail`,
texts in :mod:`.texts`) and the booking system's webhooks (:mod:`.webhooks`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from server.branding import current_branding
from server.keys import CONFIG, DATABASE, GUESTS
from server.outbox.mail import Mailer
from server.outbox.sealing import Sealer
from server.outbox.webhooks import Webhooks
from server.outbox.worker import OutboxWorker
from server.signalling import CallSession

__all__ = ["MAILER", "OUTBOX", "WEBHOOKS", "appointment_event", "outbox_ctx"]

OUTBOX = web.AppKey("outbox", OutboxWorker)
MAILER = web.AppKey("mailer", Mailer)
WEBHOOKS = web.AppKey("webhooks", Webhooks)
#: The sealing keys' purposes (HKDF info): keys of their own, derived from the server key.
SEAL_PURPOSE = "videobooth outbox v1"
SECRETS_PURPOSE = "videobooth webhook secrets v1"


async def outbox_ctx(app: web.Application) -> AsyncIterator[None]:
    """The worker, the webhooks, and the mailer where ``[mail]`` is set (after the database's
    context: the server key is known by then)."""
    config, db = app[CONFIG], app[DATABASE]
    sealer = Sealer(app[GUESTS].key, SEAL_PURPOSE)
    worker = OutboxWorker(db, sealer, config.mail)
    webhooks = Webhooks(db, sealer, Sealer(app[GUESTS].key, SECRETS_PURPOSE), wake=worker.wake)
    worker.senders["webhook"] = webhooks.send
    app[OUTBOX], app[WEBHOOKS] = worker, webhooks
    if config.mail is not None:

        async def branding() -> dict[str, Any]:
            return await current_branding(db)

        app[MAILER] = Mailer(
            db, config.mail, sealer, zone=config.timezone, branding=branding, wake=worker.wake
        )
    worker.start()
    watching = asyncio.get_running_loop().create_task(webhooks.watch_no_shows(), name="no-shows")
    yield
    watching.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watching
    await worker.stop()


def appointment_event(app: web.Application) -> Any:
    """The switchboard's ``on_appointment``: the event to the booking system's webhooks."""

    def emit(event: str, session: CallSession) -> None:
        webhooks = app.get(WEBHOOKS)
        if webhooks is not None:
            webhooks.emit(event, session)

    return emit
