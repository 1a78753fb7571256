"""Booths: their records, how they join the fleet (enrolment) and how they log in with a
secret.

Plain async functions that take the :class:`~server.storage.database.Database`; each call is
one transaction. Returned objects are detached copies: change them through these functions.

A booth is added in one of two ways:

- **enrolment** (the fleet): an administrator adds a booth (name, branch) and gets a one-time
  token; the booth sends the token with its Ed25519 public key and the token is spent. From
  then on the booth proves itself by signing nonces (``server/boothauth.py``).
- **a secret** (development, the command line): :func:`create_booth` returns a credential
  ``"<booth id>.<secret>"`` once; :func:`authenticate_booth` checks it.

Only hashes of tokens and secrets are stored, and only public keys: nothing here lets anyone
act as a booth.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from .common import insert_unique, rowcount, sha256_hex
from .database import Database
from .errors import (
    DuplicateError,
    EnrolmentError,
    EnrolmentRefusal,
    InvalidValueError,
    NotFoundError,
)
from .models import Booth, BoothEnrolment, Branch, new_id
from .validation import clean_text

__all__ = [
    "MAX_HARDWARE_CHARS",
    "TOKEN_PREFIX",
    "NewBooth",
    "add_booth_for_enrolment",
    "authenticate_booth",
    "create_booth",
    "enrol_booth",
    "get_booth",
    "get_booth_by_name",
    "hardware_facts",
    "list_booths",
    "new_enrolment_token",
    "rename_booth",
    "revoke_booth",
    "set_booth_branch",
]

logger = logging.getLogger(__name__)

_BOOTH_NAME_MAX = 100
_BOOTH_ID = re.compile(r"[0-9a-f]{32}")
# secrets.token_urlsafe(32) gives 43 characters; accept a margin, refuse anything huge early.
_BOOTH_SECRET = re.compile(r"[A-Za-z0-9_-]{16,128}")
# Compared against when the booth id is unknown, so both paths do the same work.
_NO_SECRET_HASH = sha256_hex("no booth has this secret")

TOKEN_PREFIX = "vbe_"  # noqa: S105 - a prefix, not a secret
_TOKEN = re.compile(r"^vbe_[A-Za-z0-9_-]{32,64}$")
_PUBLIC_KEY = re.compile(r"^[0-9a-f]{64}$")
#: What a booth may say about its hardware at enrolment (JSON), at most.
MAX_HARDWARE_CHARS = 2000
#: A booth whose enrolment's answer was lost (a timeout, a cut connection) sends the same token
#: and the same public key again: for this long after the token was spent it gets the same
#: answer, not "already used" (its key is the one enrolled: nothing new is given away).
ENROLMENT_REPEAT_WINDOW = timedelta(hours=1)


def _clean_booth_name(name: str) -> str:
    if not name.strip():
        raise InvalidValueError("A booth needs a name.")
    return clean_text(name, "booth name", _BOOTH_NAME_MAX)


def _duplicate_name(name: str) -> DuplicateError:
    return DuplicateError(f"A booth named {name!r} already exists; choose another name.")


async def _add_booth(
    db: Database, name: str, *, secret_hash: str | None, branch_id: str | None
) -> Booth:
    cleaned = _clean_booth_name(name)
    async with db.reads() as session:
        if branch_id is not None and await session.get(Branch, branch_id) is None:
            raise NotFoundError(f"No branch with id {branch_id!r}.")
        if await session.scalar(select(Booth.id).where(Booth.name == cleaned)) is not None:
            raise _duplicate_name(cleaned)
    booth = Booth(
        id=new_id(),
        name=cleaned,
        secret_hash=secret_hash,
        created_at=db.now(),
        revoked_at=None,
        branch_id=branch_id,
    )
    await insert_unique(db, booth, _duplicate_name(cleaned))
    return booth


# ---------------------------------------------------------------------------------------------
# The records


async def get_booth(db: Database, booth_id: str) -> Booth | None:
    """Return the booth with *booth_id*, or None."""
    async with db.reads() as session:
        return await session.get(Booth, booth_id)


async def get_booth_by_name(db: Database, name: str) -> Booth | None:
    """Return the booth named *name* (surrounding spaces ignored), or None."""
    async with db.reads() as session:
        return await session.scalar(select(Booth).where(Booth.name == name.strip()))


async def list_booths(db: Database, *, include_revoked: bool = True) -> list[Booth]:
    """Return the booths ordered by name, with or without the revoked ones."""
    query = select(Booth).order_by(Booth.name)
    if not include_revoked:
        query = query.where(Booth.revoked_at.is_(None))
    async with db.reads() as session:
        return list(await session.scalars(query))


async def rename_booth(db: Database, booth_id: str, name: str) -> Booth:
    """Give the booth a new name; return it.

    Raises :class:`InvalidValueError` for an empty, overlong or malformed name,
    :class:`DuplicateError` if another booth has it and :class:`NotFoundError` for an unknown
    booth.
    """
    cleaned = _clean_booth_name(name)
    async with db.session() as session:
        booth = await session.get(Booth, booth_id)
        if booth is None:
            raise NotFoundError(f"No booth with id {booth_id!r}.")
        clash = await session.scalar(
            select(Booth.id).where(Booth.name == cleaned, Booth.id != booth_id)
        )
        if clash is not None:
            raise _duplicate_name(cleaned)
        booth.name = cleaned
        await session.commit()
    return booth


async def set_booth_branch(db: Database, booth_id: str, branch_id: str | None) -> None:
    """Put the booth in the branch *branch_id*, or in none.

    Raises :class:`NotFoundError` for an unknown booth or branch.
    """
    async with db.session() as session:
        try:
            result = await session.execute(
                update(Booth).where(Booth.id == booth_id).values(branch_id=branch_id)
            )
        except IntegrityError as exc:  # the foreign key
            raise NotFoundError(f"No branch with id {branch_id!r}.") from exc
        if rowcount(result) == 0:
            raise NotFoundError(f"No booth with id {booth_id!r}.")
        await session.commit()
    logger.info("Booth %s now belongs to branch %s", booth_id, branch_id)


async def revoke_booth(db: Database, booth_id: str) -> Booth:
    """Revoke the booth's credential so it can no longer log in; return the booth.

    Revoking twice keeps the first time. Raises :class:`NotFoundError` for an unknown booth.
    """
    async with db.session() as session:
        # Write first, then read (see Database); the condition keeps the first revocation.
        result = await session.execute(
            update(Booth)
            .where(Booth.id == booth_id, Booth.revoked_at.is_(None))
            .values(revoked_at=db.now())
        )
        booth = await session.get(Booth, booth_id)
        await session.commit()
    if booth is None:
        raise NotFoundError(f"No booth with id {booth_id!r}.")
    if rowcount(result):
        logger.info("Booth %s (%s) revoked", booth.id, booth.name)
    return booth


# ---------------------------------------------------------------------------------------------
# Enrolment


@dataclass(frozen=True)
class NewBooth:
    """A booth added for enrolment, with its one-time token (shown once) and its expiry."""

    booth: Booth
    token: str
    expires_at: datetime


async def add_booth_for_enrolment(
    db: Database, name: str, *, branch_id: str | None, ttl: timedelta
) -> NewBooth:
    """A new booth that is not enrolled yet, and its one-time token (valid for ``ttl``).

    Raises :class:`InvalidValueError` for a malformed name, :class:`DuplicateError` if a booth
    has it and :class:`NotFoundError` for an unknown branch.
    """
    booth = await _add_booth(db, name, secret_hash=None, branch_id=branch_id)
    token, expires_at = await new_enrolment_token(db, booth.id, ttl=ttl)
    logger.info("Booth %s (%s) added for enrolment", booth.id, booth.name)
    return NewBooth(booth=booth, token=token, expires_at=expires_at)


async def new_enrolment_token(
    db: Database, booth_id: str, *, ttl: timedelta
) -> tuple[str, datetime]:
    """A fresh token for ``booth_id`` (to enrol a replacement device); older unused tokens of
    the booth stop working."""
    now = db.now()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
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


async def enrol_booth(
    db: Database, token: str, public_key: str, hardware: dict[str, Any]
) -> tuple[Booth, bool]:
    """Spend ``token``: the booth it belongs to is from now on the holder of ``public_key``.

    The same token with the same key again, within :data:`ENROLMENT_REPEAT_WINDOW` of its use,
    is the booth asking again for an answer it did not get: the same booth is returned and
    nothing changes. Returns the booth and whether this was such a repeat.

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
                again = await session.get(Booth, enrolment.booth_id)
                if (
                    again is not None
                    and not again.revoked
                    and again.public_key == public_key
                    and again.enrolled_at == enrolment.used_at
                    and now - enrolment.used_at <= ENROLMENT_REPEAT_WINDOW
                ):
                    session.expunge(again)  # as it was read: the rollback expires the rest
                    await session.rollback()
                    logger.info("Booth %s (%s) asked again for its enrolment", again.id, again.name)
                    return again, True
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
        booth.enrolled_at = now  # the same instant as the token's use: a repeat is told by it
        booth.hardware = facts
        await session.commit()
    logger.info("Booth %s (%s) enrolled", booth.id, booth.name)
    return booth, False


def hardware_facts(booth: Booth) -> dict[str, Any]:
    """What the booth said of its hardware at enrolment (``{}`` if nothing, or unreadable).

    Raises :class:`InvalidValueError` if the stored facts are JSON but not an object.
    """
    if not booth.hardware:
        return {}
    try:
        facts = json.loads(booth.hardware)
    except ValueError:
        return {}
    if not isinstance(facts, dict):
        raise InvalidValueError("stored hardware facts are not an object")
    return facts


# ---------------------------------------------------------------------------------------------
# Logging in with a secret


async def create_booth(db: Database, name: str) -> tuple[Booth, str]:
    """Register a booth; return it and its credential, ``"<booth id>.<secret>"``.

    The credential goes into the booth's configuration. Only a hash of the secret is stored,
    so the credential cannot be shown again. Raises :class:`InvalidValueError` for an empty or
    overlong name and :class:`DuplicateError` if a booth has this name.
    """
    secret = secrets.token_urlsafe(32)
    booth = await _add_booth(db, name, secret_hash=sha256_hex(secret), branch_id=None)
    logger.info("Booth %s (%s) registered", booth.id, booth.name)
    return booth, f"{booth.id}.{secret}"


async def authenticate_booth(db: Database, credential: str) -> Booth | None:
    """Return the booth whose credential this is, or None.

    None for anything malformed, an unknown booth, a wrong secret or a revoked booth. Never
    raises for bad input.
    """
    if len(credential) > 200:
        return None
    booth_id, dot, secret = credential.partition(".")
    if not dot or not _BOOTH_ID.fullmatch(booth_id) or not _BOOTH_SECRET.fullmatch(secret):
        return None
    async with db.reads() as session:
        booth = await session.get(Booth, booth_id)
    # A booth enrolled with a key has no secret: nothing matches (compared all the same).
    expected = booth.secret_hash if booth is not None and booth.secret_hash else _NO_SECRET_HASH
    matches = hmac.compare_digest(sha256_hex(secret), expected) and expected != _NO_SECRET_HASH
    if booth is None:
        logger.info("Booth login refused: unknown booth id %s", booth_id)
        return None
    if not matches:
        logger.warning("Booth login refused for booth %s: wrong secret", booth_id)
        return None
    if booth.revoked:
        logger.warning("Booth login refused for booth %s: revoked", booth_id)
        return None
    return booth
