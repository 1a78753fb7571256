"""Call endings: the calls that ended and the participants who left a call that goes on.

A resume token can take a call up again for 12 hours, also after a restart of the server, so
the server must remember for as long what no token may bring back: a call that ended, and a
participant who hung up or was removed (their token is still signed and unexpired). The
switchboard keeps the same facts in memory; these rows let a restarted server know them too.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime, timedelta

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from .common import delete_older
from .database import Database
from .models import CallEnding

__all__ = [
    "WHOLE_CALL",
    "call_ended",
    "call_endings_since",
    "purge_call_endings",
    "record_call_ending",
]

logger = logging.getLogger(__name__)

#: The participant id of a row that stands for the whole call.
WHOLE_CALL = ""


_RECORD = (
    "INSERT INTO call_endings (session_id, participant_id, at) VALUES ($1, $2, $3)"
    " ON CONFLICT DO NOTHING"
)


async def record_call_ending(
    db: Database, session_id: str, participant_id: str = WHOLE_CALL, *, at: datetime | None = None
) -> None:
    """Remember that the call ended (``participant_id`` empty) or that the participant is
    finished in it. Recording the same ending twice keeps the first."""
    if db.driver is not None:  # PostgreSQL: straight through the driver (every call ends)
        async with db.driver.connection("record a call's ending") as conn:
            await conn.execute(_RECORD, session_id, participant_id, at or db.now())
        return
    row = insert(CallEnding).values(
        session_id=session_id, participant_id=participant_id, at=at or db.now()
    )
    with contextlib.suppress(IntegrityError):  # known already
        async with db.statements() as conn:
            await conn.execute(row)


async def call_ended(db: Database, session_id: str, participant_id: str = WHOLE_CALL) -> bool:
    """Whether the call ended, or (given ``participant_id``) that participant is finished in
    it: what another node of a cluster recorded counts too."""
    query = select(CallEnding.session_id).where(
        CallEnding.session_id == session_id,
        CallEnding.participant_id.in_({WHOLE_CALL, participant_id}),
    )
    async with db.reads() as session:
        return (await session.scalar(query.limit(1))) is not None


async def call_endings_since(db: Database, since: datetime) -> list[tuple[str, str, datetime]]:
    """The endings recorded since ``since``, oldest first: (session id, participant id, when)."""
    query = (
        select(CallEnding.session_id, CallEnding.participant_id, CallEnding.at)
        .where(CallEnding.at >= since)
        .order_by(CallEnding.at)
    )
    async with db.reads() as session:
        return [(s, p, at) for s, p, at in await session.execute(query)]


async def purge_call_endings(db: Database, *, older_than: timedelta) -> int:
    """Forget endings no token can name any more; return how many."""
    count = await delete_older(db, CallEnding.at, older_than)
    if count:
        logger.info("Purged %d call ending(s)", count)
    return count
