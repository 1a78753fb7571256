"""The outbox: mails (and, later, webhooks) written to the database and sent by a worker on
every node (:mod:`.worker`), sealed at rest (:mod:`.sealing`); the appointments' mails
(:mod:`.mail`, texts in :mod:`.texts`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from server.branding import current_branding
from server.keys import CONFIG, DATABASE, GUESTS
from server.outbox.mail import Mailer
from server.outbox.sealing import Sealer
from server.outbox.worker import OutboxWorker

__all__ = ["MAILER", "OUTBOX", "outbox_ctx"]

OUTBOX = web.AppKey("outbox", OutboxWorker)
MAILER = web.AppKey("mailer", Mailer)
#: The sealing key's purpose (HKDF info): a key of its own, derived from the server key.
SEAL_PURPOSE = "videobooth outbox v1"


async def outbox_ctx(app: web.Application) -> AsyncIterator[None]:
    """The worker, and the mailer where ``[mail]`` is set (after the database's context: the
    server key is known by then)."""
    config = app[CONFIG]
    if config.mail is None:
        yield
        return
    db = app[DATABASE]
    sealer = Sealer(app[GUESTS].key, SEAL_PURPOSE)
    worker = OutboxWorker(db, sealer, config.mail)

    async def branding() -> dict[str, Any]:
        return await current_branding(db)

    app[OUTBOX] = worker
    app[MAILER] = Mailer(
        db, config.mail, sealer, zone=config.timezone, branding=branding, wake=worker.wake
    )
    worker.start()
    yield
    await worker.stop()
