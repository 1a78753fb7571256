"""The audit log: who did what, when. Metadata only: never chat, media or secrets.

Plain async functions that take the :class:`~server.storage.database.Database`; each call is
one transaction. Events are kept for a number of days an administrator chooses
(:func:`~server.storage.settings.audit_retention_days`); housekeeping purges older ones.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select

from .common import delete_older
from .database import Database
from .errors import InvalidValueError
from .models import ActorKind, AuditEvent, new_id
from .validation import aware, clean_text, parse_choice

__all__ = ["list_audit", "purge_audit", "record_audit", "search_audit"]

logger = logging.getLogger(__name__)

_ID_MAX = 64
_ACTION_MAX = 64
_DETAIL_MAX = 500
_PAGE_MAX = 1000
_ACTION_FILTER = re.compile(r"[a-z0-9_.]{1,64}\*?")


def _optional_short(value: str | None, what: str, max_length: int) -> str | None:
    if value is None:
        return None
    if len(value) > max_length:
        raise InvalidValueError(f"The audit {what} is too long: at most {max_length} characters.")
    return value


async def record_audit(
    db: Database,
    *,
    actor_kind: ActorKind | str,
    actor_id: str | None,
    action: str,
    subject: str | None = None,
    detail: str | None = None,
) -> AuditEvent:
    """Add an event to the audit log and return it.

    Metadata only: who (*actor_kind*, *actor_id*), what (*action*, e.g.
    ``"appointment.create"``, and its *subject*, e.g. an appointment id) and a short *detail*
    (at most 500 characters, e.g. a small JSON object). Never chat, media or secrets.

    Raises :class:`InvalidValueError` for an unknown actor kind or an empty or overlong value.
    """
    kind = parse_choice(ActorKind, actor_kind, "actor kind")
    cleaned_action = clean_text(action, "audit action", _ACTION_MAX)
    event = AuditEvent(
        id=new_id(),
        at=db.now(),
        actor_kind=kind,
        actor_id=_optional_short(actor_id, "actor id", _ID_MAX),
        action=cleaned_action,
        subject=_optional_short(subject, "subject", _ID_MAX),
        detail=_optional_short(detail, "detail", _DETAIL_MAX),
    )
    async with db.session() as session:
        session.add(event)
        await session.commit()
    return event


async def purge_audit(db: Database, *, older_than: timedelta) -> int:
    """Delete the audit events older than *older_than*; return how many there were.

    Raises :class:`InvalidValueError` unless *older_than* is positive.
    """
    if older_than <= timedelta(0):
        raise InvalidValueError(
            f"The audit log must be kept for a positive time, not {older_than}."
        )
    count = await delete_older(db, AuditEvent.at, older_than)
    if count:
        logger.info("Purged %d audit event(s) older than %s", count, older_than)
    return count


async def list_audit(
    db: Database, *, limit: int = 100, before: datetime | None = None
) -> list[AuditEvent]:
    """Return up to *limit* (1 to 1000) audit events, newest first, optionally before a time.

    To page, pass the ``at`` of the last event as *before*; events sharing that exact time
    with it are then skipped (:func:`search_audit` pages without skipping).
    """
    return await search_audit(db, limit=limit, before=before)


def _action_condition(action: str) -> Any:
    if not _ACTION_FILTER.fullmatch(action):
        raise InvalidValueError(
            f"Invalid action filter {action[:80]!r}: give an action such as 'user.create', "
            "or a prefix ending in * such as 'user.*'."
        )
    if action.endswith("*"):
        return AuditEvent.action.startswith(action[:-1], autoescape=True)
    return AuditEvent.action == action


async def search_audit(
    db: Database,
    *,
    limit: int = 100,
    before: datetime | None = None,
    before_id: str | None = None,
    action: str | None = None,
) -> list[AuditEvent]:
    """Return up to *limit* (1 to 1000) audit events, newest first.

    *action* keeps one action (``"user.create"``) or, ending in ``*``, those starting with the
    rest (``"user.*"``). To page, pass the ``at`` and ``id`` of the last event seen as *before*
    and *before_id*; with *before* alone, events at exactly that time are skipped too.

    Raises :class:`InvalidValueError` for a limit out of range, a naive time or a malformed
    action filter.
    """
    if isinstance(limit, bool) or not 1 <= limit <= _PAGE_MAX:
        raise InvalidValueError(f"Invalid limit {limit!r}: use 1 to {_PAGE_MAX}.")
    query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
    if action is not None:
        query = query.where(_action_condition(action))
    if before is not None:
        at = aware(before, "time")
        if before_id is None:
            query = query.where(AuditEvent.at < at)
        else:
            query = query.where(
                or_(AuditEvent.at < at, and_(AuditEvent.at == at, AuditEvent.id < before_id))
            )
    async with db.reads() as session:
        return list(await session.scalars(query))
