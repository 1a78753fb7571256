"""Call invitations as the nodes of a cluster share them: a link an advisor made into a
running call (kept in the switchboard's memory on one server) opens on any node. Only the hash
of a link's token is stored, with its call, its label and when it expires."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from .database import Database
from .models import CallInvitation

__all__ = ["add_call_invitation", "call_invitation"]


async def add_call_invitation(
    db: Database, token_hash: str, *, session_id: str, label: str, expires_at: datetime
) -> None:
    async with db.session() as session:
        session.add(
            CallInvitation(
                token_hash=token_hash, session_id=session_id, label=label, expires_at=expires_at
            )
        )
        await session.commit()


async def call_invitation(db: Database, token_hash: str) -> tuple[str, str] | None:
    """The call and label of the invitation whose token has ``token_hash``, if not expired."""
    query = select(CallInvitation.session_id, CallInvitation.label).where(
        CallInvitation.token_hash == token_hash, CallInvitation.expires_at > db.now()
    )
    async with db.reads() as session:
        row = (await session.execute(query)).first()
    return None if row is None else (row[0], row[1])
