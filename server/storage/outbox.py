"""The outbox: messages (mails, webhooks) written in the same database as what they are about,
and sent by whichever node's worker claims them first (server/outbox/worker.py).

A claim is a conditional ``UPDATE`` (the row is pending, due, and nobody holds it): on
PostgreSQL and SQLite alike exactly one worker gets a row, whichever node it runs on. The
holder has ``LEASE`` to send it; a node that dies meanwhile lets it go when the lease runs
out (the message may then go out twice, once from each node: the mails carry the same
Message-ID, webhooks the same event id, so the receiving side can tell).

Webhooks of one ordering key (an appointment) go out in the order they were made: a row is
not due while an older one of its key is pending.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, exists, func, select, update
from sqlalchemy.orm import aliased

from .common import rowcount
from .database import Database
from .models import Appointment, AppointmentContact, OutboxItem, new_id

__all__ = [
    "LEASE",
    "OUTBOX_KINDS",
    "OUTBOX_STATES",
    "Claimed",
    "claim_outbox_item",
    "drop_contact",
    "due_outbox_items",
    "enqueue",
    "get_contact",
    "outbox_done",
    "outbox_failed",
    "outbox_figures",
    "outbox_retry",
    "purge_outbox",
    "put_contact",
    "supersede",
]

#: How long a worker holds a row it claimed (a send takes seconds; a dead node's rows wait).
LEASE = timedelta(minutes=2)
PENDING, SENT, FAILED, SUPERSEDED = "pending", "sent", "failed", "superseded"
#: Every state a message can be in, and every kind (the table's check constraint says so too).
OUTBOX_STATES = (PENDING, SENT, FAILED, SUPERSEDED)
OUTBOX_KINDS = ("mail", "webhook")


@dataclass(frozen=True)
class OutboxFigure:
    """How many messages of a kind are in a state, and when the oldest of them was made."""

    kind: str
    state: str
    count: int
    oldest: datetime | None


@dataclass(frozen=True)
class Claimed:
    """A row a worker holds: what to send and how often it was tried before."""

    id: str
    kind: str
    purpose: str
    sealed: bytes
    attempts: int


async def enqueue(
    db: Database,
    *,
    kind: str,
    purpose: str,
    sealed_by: Callable[[str], bytes],
    ordering_key: str | None = None,
    not_before: datetime | None = None,
) -> str:
    """Add a message; ``sealed_by(row id)`` gives its sealed content (the id is the seal's
    associated data). Returns the row's id."""
    row_id = new_id()
    now = db.now()
    item = OutboxItem(
        id=row_id,
        kind=kind,
        purpose=purpose,
        ordering_key=ordering_key,
        state=PENDING,
        sealed=sealed_by(row_id),
        created_at=now,
        next_attempt_at=max(now, not_before) if not_before is not None else now,
        attempts=0,
    )
    async with db.session() as session:
        session.add(item)
        await session.commit()
    return row_id


async def due_outbox_items(db: Database, *, limit: int = 20) -> list[str]:
    """Ids of rows due now and free, oldest first (a webhook not while an older one of its
    key is pending)."""
    now = db.now()
    older = aliased(OutboxItem)
    waiting_behind = exists().where(
        and_(
            older.ordering_key == OutboxItem.ordering_key,
            older.kind == "webhook",
            older.state == PENDING,
            older.created_at < OutboxItem.created_at,
        )
    )
    query = (
        select(OutboxItem.id)
        .where(
            OutboxItem.state == PENDING,
            OutboxItem.next_attempt_at <= now,
            (OutboxItem.lease_until.is_(None)) | (OutboxItem.lease_until < now),
            ~((OutboxItem.kind == "webhook") & waiting_behind),
        )
        .order_by(OutboxItem.created_at)
        .limit(limit)
    )
    async with db.reads() as session:
        return list(await session.scalars(query))


async def claim_outbox_item(db: Database, row_id: str) -> Claimed | None:
    """Hold the row for ``LEASE`` if it is still pending, due and free; None when another
    worker got it first."""
    now = db.now()
    async with db.session() as session:
        result = await session.execute(
            update(OutboxItem)
            .where(
                OutboxItem.id == row_id,
                OutboxItem.state == PENDING,
                OutboxItem.next_attempt_at <= now,
                (OutboxItem.lease_until.is_(None)) | (OutboxItem.lease_until < now),
            )
            .values(lease_until=now + LEASE, attempts=OutboxItem.attempts + 1)
        )
        if rowcount(result) != 1:
            await session.rollback()
            return None
        row = await session.get(OutboxItem, row_id)
        await session.commit()
    assert row is not None
    return Claimed(row.id, row.kind, row.purpose, row.sealed, row.attempts - 1)


async def outbox_done(db: Database, row_id: str) -> None:
    """Sent: the content goes (only the fact that it was sent stays)."""
    async with db.session() as session:
        await session.execute(
            update(OutboxItem)
            .where(OutboxItem.id == row_id)
            .values(state=SENT, sent_at=db.now(), sealed=b"", lease_until=None, last_error=None)
        )
        await session.commit()


async def outbox_retry(db: Database, row_id: str, *, at: datetime, error: str) -> None:
    """Not sent this time: again at ``at``; ``error`` says why (no addresses, no content)."""
    async with db.session() as session:
        await session.execute(
            update(OutboxItem)
            .where(OutboxItem.id == row_id)
            .values(next_attempt_at=at, lease_until=None, last_error=error[:200])
        )
        await session.commit()


async def outbox_failed(db: Database, row_id: str, *, error: str) -> None:
    """Given up on (too many attempts, or content that cannot be sent): kept for the record
    without its content."""
    async with db.session() as session:
        await session.execute(
            update(OutboxItem)
            .where(OutboxItem.id == row_id)
            .values(state=FAILED, sealed=b"", lease_until=None, last_error=error[:200])
        )
        await session.commit()


async def supersede(db: Database, *, ordering_key: str, purpose: str) -> int:
    """Pending messages of ``purpose`` for ``ordering_key`` that are no longer wanted (the
    reminder of an appointment that moved or was cancelled); how many."""
    async with db.session() as session:
        result = await session.execute(
            update(OutboxItem)
            .where(
                OutboxItem.ordering_key == ordering_key,
                OutboxItem.purpose == purpose,
                OutboxItem.state == PENDING,
            )
            .values(state=SUPERSEDED, sealed=b"")
        )
        await session.commit()
    return rowcount(result)


async def purge_outbox(db: Database, *, older_than: timedelta) -> tuple[int, int]:
    """Forget messages sent, superseded or failed before ``older_than`` ago (their content is
    gone already), and the contacts of appointments that ended before then; how many of each."""
    before = db.now() - older_than
    async with db.session() as session:
        rows = await session.execute(
            delete(OutboxItem).where(
                OutboxItem.state.in_([SENT, SUPERSEDED, FAILED]), OutboxItem.created_at < before
            )
        )
        ended = select(Appointment.id).where(Appointment.starts_at < before)
        contacts = await session.execute(
            delete(AppointmentContact).where(AppointmentContact.appointment_id.in_(ended))
        )
        await session.commit()
    return rowcount(rows), rowcount(contacts)


async def put_contact(db: Database, appointment_id: str, sealed: bytes, *, sequence: int) -> None:
    """Keep (or replace) how to reach the appointment's citizen."""
    async with db.session() as session:
        contact = await session.get(AppointmentContact, appointment_id)
        if contact is None:
            session.add(
                AppointmentContact(appointment_id=appointment_id, sealed=sealed, sequence=sequence)
            )
        else:
            contact.sealed, contact.sequence = sealed, sequence
        await session.commit()


async def get_contact(db: Database, appointment_id: str) -> tuple[bytes, int] | None:
    """The sealed contact and the calendar sequence, if the citizen was invited by e-mail."""
    async with db.reads() as session:
        contact = await session.get(AppointmentContact, appointment_id)
        return None if contact is None else (contact.sealed, contact.sequence)


async def drop_contact(db: Database, appointment_id: str) -> None:
    async with db.session() as session:
        await session.execute(
            delete(AppointmentContact).where(AppointmentContact.appointment_id == appointment_id)
        )
        await session.commit()


async def outbox_figures(db: Database) -> list[OutboxFigure]:
    """The outbox by kind and state (for ``/metrics``: a growing ``pending`` or ``failed``
    count, or an old pending message, is mail or webhooks not getting through)."""
    query = select(
        OutboxItem.kind, OutboxItem.state, func.count(), func.min(OutboxItem.created_at)
    ).group_by(OutboxItem.kind, OutboxItem.state)
    async with db.reads() as session:
        rows = (await session.execute(query)).all()
    return [OutboxFigure(kind, state, count, oldest) for kind, state, count, oldest in rows]
