"""Helpers every store module uses: hashing, inserting with a duplicate check, row counts."""

from __future__ import annotations

import hashlib
from typing import Any, cast

from sqlalchemy import CursorResult, Result
from sqlalchemy.exc import IntegrityError

from .database import Database
from .errors import DuplicateError
from .models import Base


def sha256_hex(value: str) -> str:
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


def rowcount(result: Result[Any]) -> int:
    # UPDATE and DELETE give a CursorResult; the session's signature only says Result.
    return cast(CursorResult[Any], result).rowcount
