"""Booths' health reports: the figures of a booth's heartbeat (version, uptime, temperature,
load, disk, self-tests), kept for a day or so to draw each booth's recent history.

Plain async functions that take the :class:`~server.storage.database.Database`; each call is
one transaction. What the figures mean is :mod:`server.fleet_health`'s business.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import func, insert, select

from .common import delete_older
from .database import Database
from .models import BoothHealth, new_id
from .validation import clean_text

__all__ = [
    "HealthReport",
    "health_since",
    "latest_health",
    "purge_health",
    "record_health",
    "record_health_reports",
]

_STATE_MAX = 32


class HealthReport(NamedTuple):
    """One report to keep: whose, the booth's state and its figures."""

    booth_id: str
    state: str
    data: dict[str, Any]


async def record_health(db: Database, booth_id: str, *, state: str, data: dict[str, Any]) -> None:
    """Keep one health report, dated now (figures only; :func:`purge_health` drops old ones)."""
    await record_health_reports(db, [HealthReport(booth_id, state, data)])


async def record_health_reports(db: Database, reports: Sequence[HealthReport]) -> None:
    """Keep several booths' reports in one statement (a node stores what its booths reported
    in the last moment together, not one statement a booth), all dated now."""
    if not reports:
        return
    now = db.now()
    rows = [
        {
            "id": new_id(),
            "booth_id": report.booth_id,
            "at": now,
            "state": clean_text(report.state, "state", _STATE_MAX),
            "data": json.dumps(report.data, sort_keys=True),
        }
        for report in reports
    ]
    async with db.statements() as conn:
        await conn.execute(insert(BoothHealth), rows)  # the driver's executemany


async def health_since(db: Database, booth_id: str, since: datetime) -> list[BoothHealth]:
    """The booth's health reports from ``since`` on, oldest first."""
    query = (
        select(BoothHealth)
        .where(BoothHealth.booth_id == booth_id, BoothHealth.at >= since)
        .order_by(BoothHealth.at)
    )
    async with db.reads() as session:
        return list(await session.scalars(query))


async def latest_health(db: Database) -> dict[str, BoothHealth]:
    """Each booth's newest health report, by booth id (booths that never reported are absent)."""
    newest = (
        select(BoothHealth.booth_id, func.max(BoothHealth.at).label("at"))
        .group_by(BoothHealth.booth_id)
        .subquery()
    )
    query = select(BoothHealth).join(
        newest, (BoothHealth.booth_id == newest.c.booth_id) & (BoothHealth.at == newest.c.at)
    )
    async with db.reads() as session:
        return {report.booth_id: report for report in await session.scalars(query)}


async def purge_health(db: Database, *, older_than: timedelta) -> int:
    """Delete the health reports older than *older_than*; return how many there were."""
    return await delete_older(db, BoothHealth.at, older_than)
