"""Administrative changes whose rules look beyond one record, and the administrators' views.

The rules, each checked in the same transaction as the change:

- at least one enabled administrator remains: the last one can be neither disabled nor made
  an advisor (:class:`ConflictError`);
- a branch can be deleted only while no booth and no appointment refers to it.

On SQLite the change is written first, which takes the database's write lock, and then
checked; on PostgreSQL an advisory lock (administrators) or a row lock (branches) makes
concurrent changes wait for each other, so two administrators disabling each other at the same
moment cannot both succeed.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from .common import rowcount
from .database import Database
from .domain import _aware, _clean_text
from .errors import DuplicateError, InvalidValueError, NotFoundError, StorageError
from .models import Appointment, AuditEvent, AuthSession, Booth, Branch, Role, User, user_topics
from .stores import _clean_display_name, _parse_role

__all__ = [
    "BranchUsage",
    "ConflictError",
    "branch_usage",
    "delete_branch",
    "disable_user",
    "enable_user",
    "search_audit",
    "set_must_change_password",
    "update_branch",
    "update_user",
    "user_topic_ids",
]

logger = logging.getLogger(__name__)

_NAME_MAX = 100
_AUDIT_PAGE_MAX = 1000
_ACTION_FILTER = re.compile(r"[a-z0-9_.]{1,64}\*?")
_ADMINS_LOCK_ID = 0x5642_4144_4D49_4E53 & 0x7FFF_FFFF_FFFF_FFFF


class ConflictError(StorageError, ValueError):
    """The change would break a rule about other records: it would leave no enabled
    administrator, or it deletes a branch that booths or appointments still refer to."""


# ---------------------------------------------------------------------------------------------
# Users


async def _lock_admins(session: AsyncSession, db: Database) -> None:
    if db.dialect_name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _ADMINS_LOCK_ID})


async def _enabled_admins(session: AsyncSession) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(User)
        .where(User.role == Role.ADMIN, User.disabled.is_(False))
    )
    return int(count or 0)


async def update_user(
    db: Database,
    user_id: str,
    *,
    display_name: str | None = None,
    role: Role | str | None = None,
) -> User:
    """Change the user's display name and/or role; return the user.

    Raises :class:`InvalidValueError` for a malformed name or role, :class:`NotFoundError` for
    an unknown user and :class:`ConflictError` when this would make the last enabled
    administrator an advisor.
    """
    values: dict[str, Any] = {}
    if display_name is not None:
        cleaned = _clean_display_name(display_name, default="")
        if not cleaned:
            raise InvalidValueError("The display name must not be empty.")
        values["display_name"] = cleaned
    if role is not None:
        values["role"] = _parse_role(role)
    if not values:
        raise InvalidValueError("Nothing to change: give a display name or a role.")
    async with db.session() as session:
        await _lock_admins(session, db)
        result = await session.execute(update(User).where(User.id == user_id).values(**values))
        if rowcount(result) == 0:
            raise NotFoundError(f"No user with id {user_id!r}.")
        user = await session.get(User, user_id)
        assert user is not None
        if values.get("role") is Role.ADVISOR and await _enabled_admins(session) == 0:
            raise ConflictError(
                f"{user.username!r} is the last enabled administrator and must stay one: "
                "make another user an administrator first."
            )
        await session.commit()
    logger.info("User %s changed: %s", user_id, ", ".join(sorted(values)))
    return user


async def disable_user(db: Database, user_id: str) -> User:
    """Disable the user and end all of the user's login sessions; return the user.

    Disabling twice is allowed. Raises :class:`NotFoundError` for an unknown user and
    :class:`ConflictError` for the last enabled administrator.
    """
    async with db.session() as session:
        await _lock_admins(session, db)
        result = await session.execute(update(User).where(User.id == user_id).values(disabled=True))
        if rowcount(result) == 0:
            raise NotFoundError(f"No user with id {user_id!r}.")
        user = await session.get(User, user_id)
        assert user is not None
        if user.role is Role.ADMIN and await _enabled_admins(session) == 0:
            raise ConflictError(
                f"{user.username!r} is the last enabled administrator and cannot be disabled: "
                "make another user an administrator first."
            )
        ended = await session.execute(delete(AuthSession).where(AuthSession.user_id == user_id))
        await session.commit()
    logger.info("User %s disabled; %d login session(s) ended", user_id, rowcount(ended))
    return user


async def enable_user(db: Database, user_id: str) -> User:
    """Let a disabled user log in again; return the user. Raises :class:`NotFoundError`."""
    async with db.session() as session:
        result = await session.execute(
            update(User).where(User.id == user_id).values(disabled=False)
        )
        if rowcount(result) == 0:
            raise NotFoundError(f"No user with id {user_id!r}.")
        user = await session.get(User, user_id)
        await session.commit()
    assert user is not None
    logger.info("User %s enabled", user_id)
    return user


async def set_must_change_password(db: Database, user_id: str, must: bool) -> None:
    """Make the user change their password at the next request (a generated one), or no
    longer. Raises :class:`NotFoundError` for an unknown user."""
    async with db.session() as session:
        result = await session.execute(
            update(User).where(User.id == user_id).values(must_change_password=must)
        )
        if rowcount(result) == 0:
            raise NotFoundError(f"No user with id {user_id!r}.")
        await session.commit()
    logger.info("User %s must change the password: %s", user_id, "yes" if must else "no")


async def user_topic_ids(db: Database) -> dict[str, list[str]]:
    """The ids of the topics each user serves, by user id (users serving none are absent)."""
    query = select(user_topics.c.user_id, user_topics.c.topic_id).order_by(
        user_topics.c.user_id, user_topics.c.topic_id
    )
    found: dict[str, list[str]] = {}
    async with db.session() as session:
        for user_id, topic_id in await session.execute(query):
            found.setdefault(user_id, []).append(topic_id)
    return found


# ---------------------------------------------------------------------------------------------
# Branches


@dataclass(frozen=True)
class BranchUsage:
    """How many booths and appointments (in any status) refer to a branch."""

    booths: int = 0
    appointments: int = 0

    @property
    def in_use(self) -> bool:
        return bool(self.booths or self.appointments)


async def _counts_by_branch(session: AsyncSession, column: Any) -> dict[str, int]:
    query = select(column, func.count()).where(column.is_not(None)).group_by(column)
    return {str(branch_id): int(count) for branch_id, count in await session.execute(query)}


async def branch_usage(db: Database) -> dict[str, BranchUsage]:
    """What refers to each branch, by branch id (unused branches are absent)."""
    async with db.session() as session:
        booths = await _counts_by_branch(session, Booth.branch_id)
        appointments = await _counts_by_branch(session, Appointment.branch_id)
    return {
        branch_id: BranchUsage(booths.get(branch_id, 0), appointments.get(branch_id, 0))
        for branch_id in {*booths, *appointments}
    }


async def update_branch(
    db: Database, branch_id: str, *, name: str | None = None, region: str | None = None
) -> Branch:
    """Rename the branch and/or move it to another region; return it.

    Raises :class:`InvalidValueError` for a malformed name or region, :class:`DuplicateError`
    if another branch has the name and :class:`NotFoundError` for an unknown branch.
    """
    values: dict[str, str] = {}
    if name is not None:
        values["name"] = _clean_text(name, "branch name", _NAME_MAX)
    if region is not None:
        values["region"] = _clean_text(region, "region", _NAME_MAX)
    if not values:
        raise InvalidValueError("Nothing to change: give a name or a region.")
    async with db.session() as session:
        try:
            result = await session.execute(
                update(Branch).where(Branch.id == branch_id).values(**values)
            )
        except IntegrityError as exc:
            raise DuplicateError(
                f"A branch named {values['name']!r} already exists; choose another name."
            ) from exc
        if rowcount(result) == 0:
            raise NotFoundError(f"No branch with id {branch_id!r}.")
        branch = await session.get(Branch, branch_id)
        await session.commit()
    assert branch is not None
    logger.info("Branch %s changed: %s", branch_id, ", ".join(sorted(values)))
    return branch


async def delete_branch(db: Database, branch_id: str) -> None:
    """Delete a branch that no booth and no appointment (in any status) refers to.

    Raises :class:`NotFoundError` for an unknown branch and :class:`ConflictError` for one in
    use; then nothing changes.
    """
    async with db.session() as session:
        # A write first takes SQLite's lock; FOR UPDATE keeps PostgreSQL's booths and
        # appointments from starting to refer to the row before it is gone.
        touched = await session.execute(
            update(Branch).where(Branch.id == branch_id).values(name=Branch.name)
        )
        if rowcount(touched) == 0:
            raise NotFoundError(f"No branch with id {branch_id!r}.")
        name = await session.scalar(
            select(Branch.name).where(Branch.id == branch_id).with_for_update()
        )
        booths = await session.scalar(
            select(func.count()).select_from(Booth).where(Booth.branch_id == branch_id)
        )
        appointments = await session.scalar(
            select(func.count()).select_from(Appointment).where(Appointment.branch_id == branch_id)
        )
        if booths or appointments:
            raise ConflictError(
                f"The branch {name!r} is still in use by {booths or 0} booth(s) and "
                f"{appointments or 0} appointment(s): move its booths to another branch "
                "first; a branch with appointments (past ones too) cannot be deleted."
            )
        try:
            await session.execute(delete(Branch).where(Branch.id == branch_id))
            await session.commit()
        except IntegrityError as exc:  # an appointment referring to it came in meanwhile
            raise ConflictError(
                f"The branch {name!r} is still in use by an appointment and cannot be deleted."
            ) from exc
    logger.info("Branch %s (%s) deleted", branch_id, name)


# ---------------------------------------------------------------------------------------------
# Audit log


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
    if isinstance(limit, bool) or not 1 <= limit <= _AUDIT_PAGE_MAX:
        raise InvalidValueError(f"Invalid limit {limit!r}: use 1 to {_AUDIT_PAGE_MAX}.")
    query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
    if action is not None:
        query = query.where(_action_condition(action))
    if before is not None:
        at = _aware(before, "time")
        if before_id is None:
            query = query.where(AuditEvent.at < at)
        else:
            query = query.where(
                or_(AuditEvent.at < at, and_(AuditEvent.at == at, AuditEvent.id < before_id))
            )
    async with db.session() as session:
        return list(await session.scalars(query))
