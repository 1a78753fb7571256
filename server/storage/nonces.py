"""Spent nonces: the booth login challenges a cluster's nodes have seen used (a booth's
challenge and its login may reach two nodes; ``server/boothauth.py``). One row per nonce, by
its SHA-256, until it expires."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError

from .common import rowcount, sha256_hex
from .database import Database
from .models import SpentNonce

__all__ = ["purge_spent_nonces", "spend_nonce"]


async def spend_nonce(db: Database, nonce: str, *, expires_at: datetime) -> bool:
    """Record ``nonce`` as spent: True the first time, False when it was spent already."""
    try:
        async with db.statements() as conn:
            await conn.execute(
                insert(SpentNonce).values(digest=sha256_hex(nonce), expires_at=expires_at)
            )
    except IntegrityError:
        return False
    return True


async def purge_spent_nonces(db: Database) -> int:
    """Forget the expired ones (they are refused for their time anyway); how many."""
    async with db.session() as session:
        result = await session.execute(delete(SpentNonce).where(SpentNonce.expires_at < db.now()))
        await session.commit()
    return rowcount(result)
