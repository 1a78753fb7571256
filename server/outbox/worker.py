"""The outbox's worker: one task per server node, sending what is due (mails through the SMTP
relay) and trying again with backoff what could not go.

It looks every second, and at once when this node queued something. A claim is exclusive
across nodes (:func:`server.storage.claim_outbox_item`). A relay that is down, refuses for a
while (4xx) or times out means "again later" (backoff doubling from 2 s to 30 min); a
permanent refusal (5xx, say an address that does not exist) or content that cannot be opened
means "failed", kept for the record without its content. Logs name the row and its purpose,
never the addressee or the text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from datetime import timedelta

import aiosmtplib

from server.config import MailConfig
from server.outbox.mail import Envelope
from server.outbox.sealing import Sealer, SealError
from server.storage import (
    Claimed,
    Database,
    claim_outbox_item,
    due_outbox_items,
    outbox_done,
    outbox_failed,
    outbox_retry,
)

__all__ = ["OutboxWorker", "PermanentError", "TemporaryError", "backoff"]

log = logging.getLogger(__name__)

LOOK_EVERY_SECONDS = 1.0
FIRST_RETRY_SECONDS = 2.0
LONGEST_RETRY_SECONDS = 1800.0
#: Attempts before a message is given up (about two days with the backoff above).
MAX_ATTEMPTS = 100


class TemporaryError(Exception):
    """Not sent this time; the message says why (no addresses, no content)."""


class PermanentError(Exception):
    """Never going to be sent as it is."""


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed attempt (1, 2, ...), with a tenth of jitter
    so that many messages held by one outage do not all come back in the same second."""
    base = min(FIRST_RETRY_SECONDS * 2 ** max(attempts - 1, 0), LONGEST_RETRY_SECONDS)
    return timedelta(seconds=base * random.uniform(0.9, 1.1))


class OutboxWorker:
    def __init__(self, db: Database, sealer: Sealer, mail: MailConfig | None) -> None:
        self._db = db
        self._sealer = sealer
        self._mail = mail
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        self.retried = 0
        self.failed = 0
        #: What sends each kind of row: mails here; webhooks' sender is added (webhooks.py).
        self.senders: dict[str, Callable[[bytes], Awaitable[None]]] = {"mail": self._send_mail}

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="outbox")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.work()
            except Exception:  # the database away: look again in a second
                log.exception("outbox: could not look at the outbox")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), LOOK_EVERY_SECONDS)

    async def work(self) -> int:
        """Send what is due now; how many rows this worker took."""
        taken = 0
        for row_id in await due_outbox_items(self._db):
            claimed = await claim_outbox_item(self._db, row_id)
            if claimed is None:
                continue  # another node's worker has it
            taken += 1
            await self._one(claimed)
        return taken

    async def _one(self, item: Claimed) -> None:
        sender = self.senders.get(item.kind)
        try:
            if sender is None:
                raise PermanentError(f"no sender for {item.kind} on this node")
            content = self._sealer.open(item.sealed, item.id)
            await sender(content)
        except (PermanentError, SealError) as exc:
            self.failed += 1
            log.warning(
                "outbox: %s %s (%s) failed for good: %s", item.kind, item.id, item.purpose, exc
            )
            await outbox_failed(self._db, item.id, error=str(exc))
        except TemporaryError as exc:
            attempts = item.attempts + 1
            if attempts >= MAX_ATTEMPTS:
                self.failed += 1
                log.warning(
                    "outbox: %s %s given up after %d attempts: %s",
                    item.kind,
                    item.id,
                    attempts,
                    exc,
                )
                await outbox_failed(self._db, item.id, error=f"{attempts} attempts: {exc}")
                return
            self.retried += 1
            wait = backoff(attempts)
            log.info(
                "outbox: %s %s (%s) not sent (%s); again in %.0f s",
                item.kind,
                item.id,
                item.purpose,
                exc,
                wait.total_seconds(),
            )
            await outbox_retry(self._db, item.id, at=self._db.now() + wait, error=str(exc))
        else:
            self.sent += 1
            log.info("outbox: %s %s (%s) sent", item.kind, item.id, item.purpose)
            await outbox_done(self._db, item.id)

    async def _send_mail(self, content: bytes) -> None:
        config = self._mail
        if config is None:
            raise TemporaryError("no [mail] on this node")
        envelope = Envelope.from_bytes(content)
        context = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
        password = None
        if config.password_file is not None:
            try:
                password = config.password_file.read_text().strip()
            except OSError as exc:
                raise TemporaryError(
                    f"cannot read the relay password file: {exc.strerror}"
                ) from None
        try:
            await aiosmtplib.send(
                envelope.message,
                sender=envelope.sender,
                recipients=[envelope.recipient],
                hostname=config.host,
                port=config.port,
                use_tls=config.security == "tls",
                start_tls=config.security == "starttls",
                tls_context=context if config.security != "none" else None,
                username=config.username,
                password=password,
                timeout=config.timeout_seconds,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = sorted({refusal.code for refusal in exc.recipients})
            if all(500 <= code < 600 for code in codes):
                raise PermanentError(f"the relay refused the recipient ({codes})") from None
            raise TemporaryError(f"the relay deferred the recipient ({codes})") from None
        except aiosmtplib.SMTPResponseException as exc:
            if 500 <= exc.code < 600 and exc.code not in (530, 535):  # login problems: fixable
                raise PermanentError(f"the relay refused the message ({exc.code})") from None
            raise TemporaryError(f"the relay answered {exc.code}") from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise TemporaryError(f"the relay cannot be reached ({type(exc).__name__})") from None
