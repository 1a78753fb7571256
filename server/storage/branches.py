"""Branch offices and their regions (walk-in queues are kept per region).

Plain async functions that take the :class:`~server.storage.database.Database`; each call is
one transaction. Returned objects are detached copies.

One rule looks beyond the record changed: **a branch can be deleted only while no booth and
no appointment (in any status) refers to it** (:class:`ConflictError`). It is checked in the
deleting transaction: on SQLite the branch is written first, which takes the database's write
lock; on PostgreSQL a row lock keeps booths and appointments from starting to refer to it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from .common import insert_unique, rowcount
from .database import Database
from .errors import ConflictError, DuplicateError, InvalidValueError, NotFoundError
from .models import Appointment, Booth, Branch, new_id
from .validation import clean_text

__all__ = [
    "BranchUsage",
    "booth_region",
    "branch_usage",
    "create_branch",
    "delete_branch",
    "get_branch",
    "list_branches",
    "list_regions",
    "rename_branch",
    "set_branch_window",
    "update_branch",
]

logger = logging.getLogger(__name__)

_NAME_MAX = 100


def _duplicate_name(name: str) -> DuplicateError:
    return DuplicateError(f"A branch named {name!r} already exists; choose another name.")


async def create_branch(db: Database, name: str, region: str) -> Branch:
    """Create a branch office in *region* and return it.

    Raises :class:`InvalidValueError` for an empty, overlong or malformed name or region and
    :class:`DuplicateError` if a branch has this name.
    """
    cleaned = clean_text(name, "branch name", _NAME_MAX)
    cleaned_region = clean_text(region, "region", _NAME_MAX)
    branch = Branch(id=new_id(), name=cleaned, region=cleaned_region, created_at=db.now())
    async with db.reads() as session:
        if await session.scalar(select(Branch.id).where(Branch.name == cleaned)) is not None:
            raise _duplicate_name(cleaned)
    await insert_unique(db, branch, _duplicate_name(cleaned))
    logger.info("Branch %s (%s) created in region %s", branch.id, cleaned, cleaned_region)
    return branch


async def get_branch(db: Database, branch_id: str) -> Branch | None:
    """Return the branch with *branch_id*, or None."""
    async with db.reads() as session:
        return await session.get(Branch, branch_id)


async def list_branches(db: Database, *, region: str | None = None) -> list[Branch]:
    """Return the branches ordered by name, all of them or those in *region*."""
    query = select(Branch).order_by(Branch.name)
    if region is not None:
        query = query.where(Branch.region == region.strip())
    async with db.reads() as session:
        return list(await session.scalars(query))


async def list_regions(db: Database) -> list[str]:
    """The regions that have at least one branch, sorted (walk-in queues are per region)."""
    async with db.reads() as session:
        return list(await session.scalars(select(Branch.region).distinct().order_by(Branch.region)))


async def booth_region(db: Database, booth_id: str) -> str | None:
    """The region of the booth's branch; None for a booth in no branch."""
    query = select(Branch.region).join(Booth, Booth.branch_id == Branch.id)
    async with db.reads() as session:
        region: str | None = await session.scalar(query.where(Booth.id == booth_id))
        return region


async def rename_branch(db: Database, branch_id: str, name: str) -> Branch:
    """Give the branch a new name; return it (:func:`update_branch` with a name only)."""
    return await update_branch(db, branch_id, name=name)


async def update_branch(
    db: Database, branch_id: str, *, name: str | None = None, region: str | None = None
) -> Branch:
    """Rename the branch and/or move it to another region; return it.

    Raises :class:`InvalidValueError` for a malformed name or region, :class:`DuplicateError`
    if another branch has the name and :class:`NotFoundError` for an unknown branch.
    """
    values: dict[str, str] = {}
    if name is not None:
        values["name"] = clean_text(name, "branch name", _NAME_MAX)
    if region is not None:
        values["region"] = clean_text(region, "region", _NAME_MAX)
    if not values:
        raise InvalidValueError("Nothing to change: give a name or a region.")
    async with db.session() as session:
        try:
            result = await session.execute(
                update(Branch).where(Branch.id == branch_id).values(**values)
            )
        except IntegrityError as exc:
            raise _duplicate_name(values["name"]) from exc
        if rowcount(result) == 0:
            raise NotFoundError(f"No branch with id {branch_id!r}.")
        branch = await session.get(Branch, branch_id)
        await session.commit()
    assert branch is not None
    logger.info("Branch %s changed: %s", branch_id, ", ".join(sorted(values)))
    return branch


_WINDOW = re.compile(r"^([01]?\d|2[0-3]):[0-5]\d-([01]?\d|2[0-3]):[0-5]\d$")


async def set_branch_window(
    db: Database, branch_id: str, *, window: str | None, timezone: str | None
) -> Branch:
    """When the branch's booths may install updates (``22:00-05:00``) and in which time zone;
    None for either: the server's default. :class:`InvalidValueError` for a malformed one."""
    if window is not None:
        window = window.replace(" ", "")
        if not _WINDOW.match(window):
            raise InvalidValueError(
                f"{window!r} is not a maintenance window: write HH:MM-HH:MM, e.g. 22:00-05:00"
            )
    if timezone is not None:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidValueError(f"{timezone!r} is not a known time zone") from None
    async with db.session() as session:
        result = await session.execute(
            update(Branch)
            .where(Branch.id == branch_id)
            .values(maintenance_window=window, timezone=timezone)
        )
        if rowcount(result) == 0:
            raise NotFoundError(f"No branch with id {branch_id!r}.")
        branch = await session.get(Branch, branch_id)
        await session.commit()
    assert branch is not None
    return branch


# ---------------------------------------------------------------------------------------------
# What refers to a branch; deleting one


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
    async with db.reads() as session:
        booths = await _counts_by_branch(session, Booth.branch_id)
        appointments = await _counts_by_branch(session, Appointment.branch_id)
    return {
        branch_id: BranchUsage(booths.get(branch_id, 0), appointments.get(branch_id, 0))
        for branch_id in {*booths, *appointments}
    }


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
