"""What every store module does the same way: hashing stored secrets, inserting with a
duplicate check, waiting for an advisory lock, counting changed rows, deleting old rows."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Result, delete, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from .database import Database
from .errors import DuplicateError
from .models import Base

__all__ = ["advisory_lock", "delete_older", "insert_unique", "rowcount", "sha256_hex"]


def sha256_hex(value: str) -> str:
    """The SHA-256 of *value* (ASCII) in hex: how tokens and secrets are stored."""
    return hashlib.sha256(value.encode("ascii")).hexdigest()


async def insert_unique(db: Database, record: Base, duplicate: DuplicateError) -> None:
    """Insert *record* in a transaction of its own; a unique constraint raises *duplicate*."""
    # Checks for duplicates read in an earlier transaction: on SQLite a read transaction that
    # turns into a write can fail at once with "database is locked" when another writer got
    # in between, while a transaction that starts with its write waits for the lock.
    async with db.session() as session:
        session.add(record)
        try:
            await session.commit()
        except IntegrityError as exc:  # created by someone else in the meantime
            raise duplicate from exc


async def advisory_lock(session: AsyncSession, db: Database, lock_id: int) -> None:
    """On PostgreSQL, wait for the advisory lock *lock_id* until the transaction ends, so
    transactions checking the same rule (on any server node) run one after the other.

    SQLite needs none: the first write of a transaction takes the database's one write lock.
    """
    if db.dialect_name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})


def rowcount(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE changed."""
    # UPDATE and DELETE give a CursorResult; the session's signature only says Result.
    return cast(CursorResult[Any], result).rowcount


async def delete_older(
    db: Database, stamp: InstrumentedAttribute[datetime], older_than: timedelta
) -> int:
    """Delete the rows of ``stamp``'s table whose ``stamp`` is older than ``older_than``;
    how many."""
    async with db.session() as session:
        result = await session.execute(delete(stamp.class_).where(stamp < db.now() - older_than))
        await session.commit()
    return rowcount(result)
