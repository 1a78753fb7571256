"""The fleet: booths enrolled with a one-time token and an Ed25519 key, and their health.

Enrolment: an administrator adds a booth (name, branch) and gets a token once; the booth sends
the token with its public key; the token is then spent. Only hashes of tokens are stored, and
only public keys: nothing here lets anyone act as a booth.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, func, select, update

from .common import insert_unique, rowcount, sha256_hex
from .database import Database
from .domain import _clean_text
from .errors import DuplicateError, InvalidValueError, NotFoundError, StorageError
from .models import Booth, BoothEnrolment, BoothHealth, Branch, new_id
from .stores import _clean_booth_name

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "vbe_"  # noqa: S105 - a prefix, not a secret
_TOKEN = re.compile(r"^vbe_[A-Za-z0-9_-]{32,64}$")
_PUBLIC_KEY = re.compile(r"^[0-9a-f]{64}$")
#: What a booth may say about its hardware at enrolment (JSON), at most.
MAX_HARDWARE_CHARS = 2000


class EnrolmentRefusal(StrEnum):
    """Why an enrolment was refused, for a booth to explain in its own language."""

    # (S105: these name reasons, they are no secrets)
    NOT_A_TOKEN = "not_a_token"  # noqa: S105
    BAD_REQUEST = "bad_request"  # a malformed key or hardware description: a booth's bug
    TOKEN_UNKNOWN = "token_unknown"  # noqa: S105
    TOKEN_USED = "token_used"  # noqa: S105
    TOKEN_EXPIRED = "token_expired"  # noqa: S105
    BOOTH_REVOKED = "booth_revoked"
    KEY_TAKEN = "key_taken"


class EnrolmentError(StorageError):
    """The enrolment cannot go ahead; the message says why (shown to the technician), and
    :attr:`reason` says it as a code."""

    def __init__(self, message: str, reason: EnrolmentRefusal) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class NewBooth:
    booth: Booth
    token: str
    expires_at: datetime


def _new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


async def _check_branch(db: Database, branch_id: str | None) -> None:
    if branch_id is None:
        return
    async with db.session() as session:
        if await session.get(Branch, branch_id) is None:
            raise NotFoundError(f"No branch with id {branch_id!r}.")


async def add_booth_for_enrolment(
    db: Database, name: str, *, branch_id: str | None, ttl: timedelta
) -> NewBooth:
    """A new booth that is not enrolled yet, and its one-time token (valid for ``ttl``)."""
    cleaned = _clean_booth_name(name)
    await _check_branch(db, branch_id)
    booth = Booth(
        id=new_id(),
        name=cleaned,
        secret_hash=None,
        created_at=db.now(),
        revoked_at=None,
        branch_id=branch_id,
    )
    await insert_unique(
        db, booth, DuplicateError(f"A booth named {cleaned!r} already exists; choose another name.")
    )
    token, expires_at = await new_enrolment_token(db, booth.id, ttl=ttl)
    logger.info("Booth %s (%s) added for enrolment", booth.id, cleaned)
    return NewBooth(booth=booth, token=token, expires_at=expires_at)


async def new_enrolment_token(
    db: Database, booth_id: str, *, ttl: timedelta
) -> tuple[str, datetime]:
    """A fresh token for ``booth_id`` (to enrol a replacement device); older unused tokens of
    the booth stop working."""
    now = db.now()
    token = _new_token()
    expires_at = now + ttl
    async with db.session() as session:
        booth = await session.get(Booth, booth_id)
        if booth is None:
            raise NotFoundError(f"No booth with id {booth_id!r}.")
        if booth.revoked:
            raise EnrolmentError(
                "This booth is revoked; add a new booth instead.", EnrolmentRefusal.BOOTH_REVOKED
            )
        await session.execute(
            delete(BoothEnrolment).where(
                BoothEnrolment.booth_id == booth_id, BoothEnrolment.used_at.is_(None)
            )
        )
        session.add(
            BoothEnrolment(
                token_hash=sha256_hex(token),
                booth_id=booth_id,
                created_at=now,
                expires_at=expires_at,
                used_at=None,
            )
        )
        await session.commit()
    return token, expires_at


async def enrol_booth(db: Database, token: str, public_key: str, hardware: dict[str, Any]) -> Booth:
    """Spend ``token``: the booth it belongs to is from now on the holder of ``public_key``.

    Raises :class:`EnrolmentError` with the reason (unknown, used, expired, revoked, a key
    already in use) and changes nothing then.
    """
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise EnrolmentError(
            "This is not an enrolment token; scan the code again.", EnrolmentRefusal.NOT_A_TOKEN
        )
    if not isinstance(public_key, str) or not _PUBLIC_KEY.fullmatch(public_key):
        raise EnrolmentError(
            "The public key must be 64 hex digits (an Ed25519 key).", EnrolmentRefusal.BAD_REQUEST
        )
    facts = json.dumps(hardware, sort_keys=True, ensure_ascii=True)
    if len(facts) > MAX_HARDWARE_CHARS:
        raise EnrolmentError("The hardware description is too long.", EnrolmentRefusal.BAD_REQUEST)
    now = db.now()
    async with db.session() as session:
        # Spend the token first (write first: on SQLite this takes the lock), then check.
        result = await session.execute(
            update(BoothEnrolment)
            .where(
                BoothEnrolment.token_hash == sha256_hex(token),
                BoothEnrolment.used_at.is_(None),
                BoothEnrolment.expires_at > now,
            )
            .values(used_at=now)
        )
        enrolment = await session.get(BoothEnrolment, sha256_hex(token))
        refusal: tuple[str, EnrolmentRefusal] | None = None
        booth: Booth | None = None
        if rowcount(result) == 0:
            if enrolment is None:
                refusal = (
                    "This enrolment token is not known; ask for a new one.",
                    EnrolmentRefusal.TOKEN_UNKNOWN,
                )
            elif enrolment.used_at is not None:
                refusal = (
                    "This enrolment token was already used; ask for a new one.",
                    EnrolmentRefusal.TOKEN_USED,
                )
            else:
                refusal = (
                    "This enrolment token has expired; ask for a new one.",
                    EnrolmentRefusal.TOKEN_EXPIRED,
                )
        else:
            assert enrolment is not None
            booth = await session.get(Booth, enrolment.booth_id)
            if booth is None or booth.revoked:
                refusal = (
                    "This booth is revoked; it cannot be enrolled.",
                    EnrolmentRefusal.BOOTH_REVOKED,
                )
            elif await session.scalar(
                select(Booth.id).where(Booth.public_key == public_key, Booth.id != booth.id)
            ):
                refusal = (
                    "This key already belongs to another booth.",
                    EnrolmentRefusal.KEY_TAKEN,
                )
        if refusal is not None:
            await session.rollback()  # the token stays as it was
            raise EnrolmentError(*refusal)
        assert booth is not None
        booth.public_key = public_key
        booth.enrolled_at = now
        booth.hardware = facts
        await session.commit()
    logger.info("Booth %s (%s) enrolled", booth.id, booth.name)
    return booth


async def rename_booth(db: Database, booth_id: str, name: str) -> Booth:
    cleaned = _clean_booth_name(name)
    async with db.session() as session:
        booth = await session.get(Booth, booth_id)
        if booth is None:
            raise NotFoundError(f"No booth with id {booth_id!r}.")
        clash = await session.scalar(
            select(Booth.id).where(Booth.name == cleaned, Booth.id != booth_id)
        )
        if clash is not None:
            raise DuplicateError(f"A booth named {cleaned!r} already exists; choose another name.")
        booth.name = cleaned
        await session.commit()
    return booth


# ---------------------------------------------------------------------------------------------
# Health


async def record_health(db: Database, booth_id: str, *, state: str, data: dict[str, Any]) -> None:
    """Keep one health report (figures only; :func:`purge_health` drops old ones)."""
    report = BoothHealth(
        id=new_id(),
        booth_id=booth_id,
        at=db.now(),
        state=_clean_text(state, "state", 32),
        data=json.dumps(data, sort_keys=True),
    )
    async with db.session() as session:
        session.add(report)
        await session.commit()


async def health_since(db: Database, booth_id: str, since: datetime) -> list[BoothHealth]:
    """The booth's health reports from ``since`` on, oldest first."""
    query = (
        select(BoothHealth)
        .where(BoothHealth.booth_id == booth_id, BoothHealth.at >= since)
        .order_by(BoothHealth.at)
    )
    async with db.session() as session:
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
    async with db.session() as session:
        return {report.booth_id: report for report in await session.scalars(query)}


async def purge_health(db: Database, *, older_than: timedelta) -> int:
    async with db.session() as session:
        result = await session.execute(
            delete(BoothHealth).where(BoothHealth.at < db.now() - older_than)
        )
        await session.commit()
    return rowcount(result)


def hardware_facts(booth: Booth) -> dict[str, Any]:
    if not booth.hardware:
        return {}
    try:
        facts = json.loads(booth.hardware)
    except ValueError:
        return {}
    if not isinstance(facts, dict):
        raise InvalidValueError("stored hardware facts are not an object")
    return facts
