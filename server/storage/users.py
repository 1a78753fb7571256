"""Users (advisors and administrators): creating, logging in, passwords, roles, disabling.

Plain async functions that take the :class:`~server.storage.database.Database`; each call is
one transaction. Returned objects are detached copies: change them through these functions.

One rule looks beyond the record changed: **at least one enabled administrator remains**. The
last one can be neither disabled nor made an advisor (:class:`ConflictError`). The change is
checked in its own transaction: on SQLite it is written first, which takes the database's
write lock, and then checked; on PostgreSQL an advisory lock makes such changes wait for each
other, so two administrators disabling each other at the same moment cannot both succeed.
"""

from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from .common import advisory_lock, insert_unique, rowcount
from .database import Database
from .errors import ConflictError, DuplicateError, InvalidValueError, NotFoundError
from .logins import end_logins_of
from .models import Role, User, new_id
from .passwords import (
    hash_password,
    needs_rehash,
    spend_verify_time,
    validate_new_password,
    verify_password,
)
from .validation import clean_optional_text, clean_text, parse_choice

__all__ = [
    "authenticate_user",
    "create_user",
    "disable_user",
    "enable_user",
    "fold_username",
    "get_user",
    "get_user_by_username",
    "list_users",
    "normalize_username",
    "set_must_change_password",
    "set_password",
    "update_user",
]

logger = logging.getLogger(__name__)

_USERNAME = re.compile(r"[a-z0-9._-]{3,64}")
_DISPLAY_NAME_MAX = 200
# The same on every node: changes to administrators wait for each other (see the module).
_ADMINS_LOCK_ID = 0x5642_4144_4D49_4E53 & 0x7FFF_FFFF_FFFF_FFFF


def fold_username(username: str) -> str:
    """*username* in the one form every comparison uses: NFKC-normalised, trimmed and
    case-folded (so "Carol ", "CAROL" and its full-width spelling are all "carol")."""
    return unicodedata.normalize("NFKC", username).strip().casefold()


def normalize_username(username: str) -> str:
    """Return *username* as stored: :func:`fold_username`'s form.

    Raises :class:`InvalidValueError` unless it is 3 to 64 characters of ``a-z 0-9 . _ -``.
    """
    name = fold_username(username)
    if not _USERNAME.fullmatch(name):
        raise InvalidValueError(
            f"Invalid username {username[:80]!r}: use 3 to 64 characters, "
            "only letters a-z, digits and . _ -"
        )
    return name


async def create_user(
    db: Database,
    *,
    username: str,
    password: str,
    role: Role | str,
    display_name: str | None = None,
) -> User:
    """Create a user and return it.

    *display_name* defaults to the username. Raises :class:`InvalidValueError` for a malformed
    username, role or display name, :class:`WeakPasswordError` for a password that fails the
    policy, and :class:`DuplicateError` if the username is taken (in any letter case).
    """
    name = normalize_username(username)
    parsed_role = parse_choice(Role, role, "role")
    display = clean_optional_text(display_name, "display name", _DISPLAY_NAME_MAX) or name
    validate_new_password(password)
    duplicate = DuplicateError(f"The username {name!r} is already taken; choose another one.")
    # Before hashing (a tenth of a second of work); insert_unique catches a late duplicate.
    async with db.reads() as session:
        if await session.scalar(select(User.id).where(User.username == name)) is not None:
            raise duplicate
    password_hash = await asyncio.to_thread(hash_password, password)
    user = User(
        id=new_id(),
        username=name,
        display_name=display,
        password_hash=password_hash,
        role=parsed_role,
        created_at=db.now(),
        disabled=False,
    )
    await insert_unique(db, user, duplicate)
    logger.info("User %s (%s) created with role %s", user.id, name, parsed_role.value)
    return user


async def authenticate_user(db: Database, username: str, password: str) -> User | None:
    """Return the user if *username* and *password* match an enabled user, else None.

    Takes about as long for an unknown username as for a wrong password, so response times do
    not tell which usernames exist. Upgrades the stored hash when the hashing parameters have
    changed.
    """
    user = await get_user_by_username(db, username)
    if user is None:
        await asyncio.to_thread(spend_verify_time, password)
        # The attempted name is not logged: people type their password into it by mistake.
        logger.info("Login refused: unknown username")
        return None
    if user.external_subject is not None:
        # An account of the identity provider has no password here (EXTERNAL_ACCOUNT_HASH).
        await asyncio.to_thread(spend_verify_time, password)
        logger.info("Login refused for user %s (%s): single sign-on only", user.id, user.username)
        return None
    if not await asyncio.to_thread(verify_password, user.password_hash, password):
        logger.info("Login refused for user %s (%s): wrong password", user.id, user.username)
        return None
    if user.disabled:
        logger.info("Login refused for user %s (%s): account disabled", user.id, user.username)
        return None
    if needs_rehash(user.password_hash):
        await _rehash(db, user, password)
    return user


async def _rehash(db: Database, user: User, password: str) -> None:
    new_hash = await asyncio.to_thread(hash_password, password)
    async with db.session() as session:
        # Only if unchanged since we read it: a password set meanwhile wins.
        await session.execute(
            update(User)
            .where(User.id == user.id, User.password_hash == user.password_hash)
            .values(password_hash=new_hash)
        )
        await session.commit()
    user.password_hash = new_hash
    logger.info("Password hash of user %s upgraded to the current parameters", user.id)


async def get_user(db: Database, user_id: str) -> User | None:
    """Return the user with *user_id*, or None."""
    async with db.reads() as session:
        return await session.get(User, user_id)


async def get_user_by_username(db: Database, username: str) -> User | None:
    """Return the user with *username* (in any letter case), or None; never raises."""
    try:
        name = normalize_username(username)
    except InvalidValueError:
        return None
    async with db.reads() as session:
        return await session.scalar(select(User).where(User.username == name))


async def list_users(db: Database) -> list[User]:
    """Return every user, ordered by username."""
    async with db.reads() as session:
        return list(await session.scalars(select(User).order_by(User.username)))


async def set_password(db: Database, user_id: str, password: str) -> None:
    """Set a new password for the user and end all of the user's login sessions.

    Raises :class:`WeakPasswordError` for a password that fails the policy and
    :class:`NotFoundError` for an unknown user. To keep the current browser logged in, create
    a new session afterwards.
    """
    validate_new_password(password)
    password_hash = await asyncio.to_thread(hash_password, password)
    async with db.session() as session:
        result = await session.execute(
            update(User)
            .where(User.id == user_id, User.external_subject.is_(None))
            .values(password_hash=password_hash)
        )
        if rowcount(result) == 0 and await session.get(User, user_id) is not None:
            raise InvalidValueError(
                "This account logs in through the identity provider and has no password here."
            )
        if rowcount(result) == 0:
            raise NotFoundError(f"No user with id {user_id!r}.")
        ended = await end_logins_of(session, user_id)
        await session.commit()
    logger.info("Password of user %s changed; %d login session(s) ended", user_id, ended)


async def set_must_change_password(db: Database, user_id: str, must: bool) -> None:
    """Make the user change their password at the next request (a generated one), or no
    longer. Raises :class:`NotFoundError` for an unknown user."""
    async with db.session() as session:
        result = await session.execute(
            update(User).where(User.id == user_id).values(must_change_password=must)
        )
        if rowcount(result) == 0:
            raise NotFoundError(f"No user with id {user_id!r}.")
        await session.commit()
    logger.info("User %s must change the password: %s", user_id, "yes" if must else "no")


# ---------------------------------------------------------------------------------------------
# Roles and disabling: the last enabled administrator stays


async def _enabled_admins(session: AsyncSession) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(User)
        .where(User.role == Role.ADMIN, User.disabled.is_(False))
    )
    return int(count or 0)


async def update_user(
    db: Database,
    user_id: str,
    *,
    display_name: str | None = None,
    role: Role | str | None = None,
) -> User:
    """Change the user's display name and/or role; return the user.

    Raises :class:`InvalidValueError` for a malformed name or role, :class:`NotFoundError` for
    an unknown user and :class:`ConflictError` when this would make the last enabled
    administrator an advisor.
    """
    values: dict[str, Any] = {}
    if display_name is not None:
        values["display_name"] = clean_text(display_name, "display name", _DISPLAY_NAME_MAX)
    if role is not None:
        values["role"] = parse_choice(Role, role, "role")
    if not values:
        raise InvalidValueError("Nothing to change: give a display name or a role.")
    async with db.session() as session:
        await advisory_lock(session, db, _ADMINS_LOCK_ID)
        result = await session.execute(update(User).where(User.id == user_id).values(**values))
        if rowcount(result) == 0:
            raise NotFoundError(f"No user with id {user_id!r}.")
        user = await session.get(User, user_id)
        assert user is not None
        if values.get("role") is Role.ADVISOR and await _enabled_admins(session) == 0:
            raise ConflictError(
                f"{user.username!r} is the last enabled administrator and must stay one: "
                "make another user an administrator first."
            )
        await session.commit()
    logger.info("User %s changed: %s", user_id, ", ".join(sorted(values)))
    return user


async def disable_user(db: Database, user_id: str) -> User:
    """Disable the user and end all of the user's login sessions; return the user.

    Disabling twice is allowed. Raises :class:`NotFoundError` for an unknown user and
    :class:`ConflictError` for the last enabled administrator.
    """
    async with db.session() as session:
        await advisory_lock(session, db, _ADMINS_LOCK_ID)
        result = await session.execute(update(User).where(User.id == user_id).values(disabled=True))
        if rowcount(result) == 0:
            raise NotFoundError(f"No user with id {user_id!r}.")
        user = await session.get(User, user_id)
        assert user is not None
        if user.role is Role.ADMIN and await _enabled_admins(session) == 0:
            raise ConflictError(
                f"{user.username!r} is the last enabled administrator and cannot be disabled: "
                "make another user an administrator first."
            )
        ended = await end_logins_of(session, user_id)
        await session.commit()
    logger.info("User %s disabled; %d login session(s) ended", user_id, ended)
    return user


async def enable_user(db: Database, user_id: str) -> User:
    """Let a disabled user log in again; return the user. Raises :class:`NotFoundError`."""
    async with db.session() as session:
        result = await session.execute(
            update(User).where(User.id == user_id).values(disabled=False)
        )
        if rowcount(result) == 0:
            raise NotFoundError(f"No user with id {user_id!r}.")
        user = await session.get(User, user_id)
        await session.commit()
    assert user is not None
    logger.info("User %s enabled", user_id)
    return user
