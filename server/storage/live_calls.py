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
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, delete, insert, literal, select, update
from sqlalchemy.exc import IntegrityError

from server.resume import Member

from .common import rowcount
from .database import Database
from .models import CallInvitation, LiveCall

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


async def open_live_call(db: Database, record: LiveRecord) -> bool:
    """Add the call's row; False when a row with its id is there already (another node
    rebuilt the same call first)."""
    row = insert(LiveCall).values(
        id=record.session_id,
        state=record.state,
        owner=record.owner,
        caller=_dump(record.caller),
        advisor=_dump(record.advisor),
        guests=json.dumps([g.to_json() for g in record.guests]),
        appointment_id=record.appointment_id,
        advisor_id=record.advisor_id,
        topic_id=record.topic_id,
        topic_name=record.topic_name,
        region=record.region,
        waiting_since=record.waiting_since,
    )
    try:
        async with db.statements() as conn:
            await conn.execute(row)
    except IntegrityError:
        return False
    return True


async def claim_live_call(db: Database, session_id: str, advisor: LiveMember) -> bool:
    """``advisor`` takes the waiting call: True for exactly one of any number of claims."""
    async with db.statements() as conn:
        result = await conn.execute(
            update(LiveCall)
            .where(LiveCall.id == session_id, LiveCall.state == WAITING)
            .values(state=ACTIVE, advisor=_dump(advisor))
        )
    return rowcount(result) == 1


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
    values: dict[str, Any] = {
        "caller": _dump(caller),
        "guests": json.dumps([g.to_json() for g in guests]),
    }
    if advisor is not None:
        values["advisor"] = case(
            (LiveCall.state == ACTIVE, literal(_dump(advisor))), else_=LiveCall.advisor
        )
    async with db.statements() as conn:
        await conn.execute(update(LiveCall).where(LiveCall.id == session_id).values(**values))


async def close_live_call(db: Database, session_id: str) -> None:
    """The call ended: its row goes (the ending itself is in ``call_endings``), and its
    invitation links open nothing any more (expired ones of other calls go too). Each delete
    stands alone: one repeated after a failure finds what the other left."""
    async with db.statements() as conn:
        await conn.execute(delete(LiveCall).where(LiveCall.id == session_id))
        await conn.execute(
            delete(CallInvitation).where(
                (CallInvitation.session_id == session_id) | (CallInvitation.expires_at <= db.now())
            )
        )


async def get_live_call(db: Database, session_id: str) -> LiveRecord | None:
    async with db.session() as session:
        row = await session.get(LiveCall, session_id)
        return None if row is None else _record(row)


async def waiting_live_calls(db: Database) -> list[LiveRecord]:
    """Every waiting call, oldest first."""
    query = select(LiveCall).where(LiveCall.state == WAITING).order_by(LiveCall.waiting_since)
    async with db.session() as session:
        return [_record(row) for row in await session.scalars(query)]


async def live_calls_owned_by(db: Database, owner: str) -> set[str]:
    """The ids of the calls ``owner`` carries."""
    async with db.session() as session:
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
