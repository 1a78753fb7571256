"""Live calls: the calls waiting or running now, as the nodes of a cluster share them.

One node *owns* a call: it runs the call's logic (the switchboard is synchronous and in
memory) and is the one that writes the call's row, except for the two steps any node may take,
each one conditional ``UPDATE`` so that exactly one node succeeds however many try at once:

- :func:`claim_live_call`: an advisor takes a waiting call (``WHERE state = 'waiting'``);
  two advisors on two nodes accepting the same caller at the same moment: one row changes,
  the other sees none and is told that someone else has the call.
- :func:`adopt_live_calls` and :func:`take_live_call`: a node takes over the calls of an owner
  that died (``WHERE owner = <the dead node>``): one survivor gets each call.

Each member is kept with the node that holds its connection, so that the node carrying the
call on knows whom to reach where, and who went with the dead node. One process without a
cluster does not use this table.

A cluster runs on PostgreSQL only (server.config says so), and the statements of every call
(opened, claimed, its members, closed) go straight through the driver (:mod:`.driver`); the
rarer ones (take-overs, reloads) through SQLAlchemy.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from server.resume import Member

from .database import Database
from .driver import DriverPool, changed
from .models import LiveCall

__all__ = [
    "LiveMember",
    "LiveRecord",
    "adopt_live_calls",
    "claim_live_call",
    "close_live_call",
    "get_live_call",
    "live_call_owners",
    "live_calls_owned_by",
    "open_live_call",
    "release_live_claim",
    "save_live_members",
    "take_live_call",
    "waiting_live_calls",
]

WAITING, ACTIVE = "waiting", "active"


@dataclass(frozen=True)
class LiveMember:
    """A participant of a live call and the node holding its connection."""

    member: Member
    node: str

    def to_json(self) -> list[str]:
        return [*self.member.to_json(), self.node]

    @classmethod
    def from_json(cls, data: Any) -> LiveMember:
        if not (isinstance(data, list) and len(data) == 5 and isinstance(data[4], str)):
            raise ValueError("a live member is five strings")
        return cls(member=Member.from_json(data[:4]), node=data[4])


@dataclass(frozen=True)
class LiveRecord:
    """One live call's row."""

    session_id: str
    state: str
    owner: str
    caller: LiveMember
    waiting_since: datetime
    advisor: LiveMember | None = None
    guests: tuple[LiveMember, ...] = ()
    appointment_id: str | None = None
    advisor_id: str | None = None
    topic_id: str | None = None
    topic_name: str | None = None
    region: str | None = None

    @property
    def members(self) -> list[LiveMember]:
        return [m for m in (self.caller, self.advisor, *self.guests) if m is not None]


def _dump(member: LiveMember | None) -> str | None:
    return None if member is None else json.dumps(member.to_json())


def _record(row: LiveCall) -> LiveRecord:
    return LiveRecord(
        session_id=row.id,
        state=row.state,
        owner=row.owner,
        caller=LiveMember.from_json(json.loads(row.caller)),
        advisor=None if row.advisor is None else LiveMember.from_json(json.loads(row.advisor)),
        guests=tuple(LiveMember.from_json(g) for g in json.loads(row.guests)),
        appointment_id=row.appointment_id,
        advisor_id=row.advisor_id,
        topic_id=row.topic_id,
        topic_name=row.topic_name,
        region=row.region,
        waiting_since=row.waiting_since,
    )


def _driver(db: Database) -> DriverPool:
    if db.driver is None:
        raise RuntimeError("live calls are kept in PostgreSQL only (a cluster's database)")
    return db.driver


_OPEN = (
    "INSERT INTO live_calls (id, state, owner, caller, advisor, guests, appointment_id,"
    " advisor_id, topic_id, topic_name, region, waiting_since)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    " ON CONFLICT (id) DO NOTHING"
)
_CLAIM = "UPDATE live_calls SET state = 'active', advisor = $2 WHERE id = $1 AND state = 'waiting'"
_MEMBERS = "UPDATE live_calls SET caller = $2, guests = $3 WHERE id = $1"
# The advisor only into a running call: a late write never undoes a claim.
_MEMBERS_AND_ADVISOR = (
    "UPDATE live_calls SET caller = $2, guests = $3,"
    " advisor = CASE WHEN state = 'active' THEN $4 ELSE advisor END WHERE id = $1"
)
# The row, and the call's invitations with the expired ones of any call: one statement.
_CLOSE = (
    "WITH call AS (DELETE FROM live_calls WHERE id = $1)"
    " DELETE FROM call_invitations WHERE session_id = $1 OR expires_at <= $2"
)


async def open_live_call(db: Database, record: LiveRecord) -> bool:
    """Add the call's row; False when a row with its id is there already (another node
    rebuilt the same call first)."""
    if record.waiting_since.tzinfo is None:
        raise ValueError("naive datetime given for waiting_since; pass a timezone-aware one")
    async with _driver(db).connection("open a live call") as conn:
        status = await conn.execute(
            _OPEN,
            record.session_id,
            record.state,
            record.owner,
            _dump(record.caller),
            _dump(record.advisor),
            json.dumps([g.to_json() for g in record.guests]),
            record.appointment_id,
            record.advisor_id,
            record.topic_id,
            record.topic_name,
            record.region,
            record.waiting_since,
        )
    return changed(status) == 1


async def claim_live_call(db: Database, session_id: str, advisor: LiveMember) -> bool:
    """``advisor`` takes the waiting call: True for exactly one of any number of claims."""
    async with _driver(db).connection("claim a live call") as conn:
        status = await conn.execute(_CLAIM, session_id, _dump(advisor))
    return changed(status) == 1


async def release_live_claim(db: Database, session_id: str, advisor: LiveMember) -> None:
    """Undo :func:`claim_live_call` when the call's owner could not be told (it waits again)."""
    async with db.session() as session:
        await session.execute(
            update(LiveCall)
            .where(LiveCall.id == session_id, LiveCall.advisor == _dump(advisor))
            .values(state=WAITING, advisor=None)
        )
        await session.commit()


async def save_live_members(
    db: Database,
    session_id: str,
    *,
    caller: LiveMember,
    advisor: LiveMember | None,
    guests: Sequence[LiveMember],
) -> None:
    """The owner's view of who is in the call, and where. The advisor is written only to a
    running call (a claim writes it first), so a late write never undoes a claim."""
    members = (_dump(caller), json.dumps([g.to_json() for g in guests]))
    async with _driver(db).connection("save a live call's members") as conn:
        if advisor is None:
            await conn.execute(_MEMBERS, session_id, *members)
        else:
            await conn.execute(_MEMBERS_AND_ADVISOR, session_id, *members, _dump(advisor))


async def close_live_call(db: Database, session_id: str) -> None:
    """The call ended: its row goes (the ending itself is in ``call_endings``), and its
    invitation links open nothing any more (expired ones of other calls go too). One
    statement, one round trip; repeated after a failure, it finds nothing left to delete."""
    async with _driver(db).connection("close a live call") as conn:
        await conn.execute(_CLOSE, session_id, db.now())


async def get_live_call(db: Database, session_id: str) -> LiveRecord | None:
    async with db.reads() as session:
        row = await session.get(LiveCall, session_id)
        return None if row is None else _record(row)


async def waiting_live_calls(db: Database) -> list[LiveRecord]:
    """Every waiting call, oldest first."""
    query = select(LiveCall).where(LiveCall.state == WAITING).order_by(LiveCall.waiting_since)
    async with db.reads() as session:
        return [_record(row) for row in await session.scalars(query)]


async def live_calls_owned_by(db: Database, owner: str) -> set[str]:
    """The ids of the calls ``owner`` carries."""
    async with db.reads() as session:
        return set(await session.scalars(select(LiveCall.id).where(LiveCall.owner == owner)))


async def live_call_owners(db: Database) -> set[str]:
    """The nodes carrying calls now."""
    async with db.statements() as conn:
        return set(await conn.scalars(select(LiveCall.owner).distinct()))


async def adopt_live_calls(db: Database, *, dead: str, me: str) -> list[LiveRecord]:
    """Take over every call the dead node ``dead`` carried; what another survivor took over
    first is not in the result."""
    async with db.session() as session:
        rows = await session.scalars(
            update(LiveCall)
            .where(LiveCall.owner == dead)
            .values(owner=me)
            .returning(LiveCall)
            .execution_options(synchronize_session=False)
        )
        records = [_record(row) for row in rows]
        await session.commit()
    return records


async def take_live_call(
    db: Database, session_id: str, *, owner: str, me: str
) -> LiveRecord | None:
    """Take over one call from ``owner`` (gone); None when it moved on or ended meanwhile."""
    async with db.session() as session:
        row = await session.scalar(
            update(LiveCall)
            .where(LiveCall.id == session_id, LiveCall.owner == owner)
            .values(owner=me)
            .returning(LiveCall)
            .execution_options(synchronize_session=False)
        )
        record = None if row is None else _record(row)
        await session.commit()
    return record
