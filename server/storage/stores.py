"""Reading and writing users, login sessions and booths.

Plain async functions that take the :class:`~server.storage.database.Database`; each call is
one transaction. Returned objects are detached copies: change them through these functions.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from .common import insert_unique, rowcount, sha256_hex
from .database import Database
from .errors import DuplicateError, InvalidValueError, NotFoundError
from .models import AuthSession, Booth, Role, User, new_id
from .passwords import (
    hash_password,
    needs_rehash,
    spend_verify_time,
    validate_new_password,
    verify_password,
)

__all__ = [
    "Login",
    "authenticate_booth",
    "authenticate_user",
    "create_auth_session",
    "create_booth",
    "create_user",
    "delete_auth_session",
    "fold_username",
    "get_booth",
    "get_booth_by_name",
    "get_user",
    "get_user_by_username",
    "list_booths",
    "list_users",
    "login_by_id",
    "login_for_token",
    "normalize_username",
    "purge_expired_sessions",
    "revoke_booth",
    "set_password",
    "user_for_token",
]

logger = logging.getLogger(__name__)

_USERNAME = re.compile(r"[a-z0-9._-]{3,64}")
_DISPLAY_NAME_MAX = 200
_BOOTH_NAME_MAX = 100
_BOOTH_ID = re.compile(r"[0-9a-f]{32}")
# secrets.token_urlsafe(32) gives 43 characters; accept a margin, refuse anything huge early.
_BOOTH_SECRET = re.compile(r"[A-Za-z0-9_-]{16,128}")
_TOKEN_MAX = 256
# last_seen_at is for display ("active 5 minutes ago"); writing it on every request would
# turn every page load into a database write.
_LAST_SEEN_RESOLUTION = timedelta(minutes=1)


# Compared against when the booth id is unknown, so both paths do the same work.
_NO_SECRET_HASH = sha256_hex("no booth has this secret")


# ---------------------------------------------------------------------------------------------
# Users


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


def _parse_role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        choices = ", ".join(r.value for r in Role)
        raise InvalidValueError(f"Unknown role {role!r}: use one of {choices}.") from None


def _clean_display_name(display_name: str | None, default: str) -> str:
    name = (display_name or "").strip()
    if not name:
        return default
    if len(name) > _DISPLAY_NAME_MAX:
        raise InvalidValueError(
            f"The display name is too long: use at most {_DISPLAY_NAME_MAX} characters."
        )
    if not name.isprintable():
        raise InvalidValueError("The display name must not contain control characters.")
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
    parsed_role = _parse_role(role)
    display = _clean_display_name(display_name, default=name)
    validate_new_password(password)
    duplicate = DuplicateError(f"The username {name!r} is already taken; choose another one.")
    async with db.session() as session:
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
    async with db.session() as session:
        return await session.get(User, user_id)


async def get_user_by_username(db: Database, username: str) -> User | None:
    """Return the user with *username* (in any letter case), or None; never raises."""
    try:
        name = normalize_username(username)
    except InvalidValueError:
        return None
    async with db.session() as session:
        return await session.scalar(select(User).where(User.username == name))


async def list_users(db: Database) -> list[User]:
    """Return every user, ordered by username."""
    async with db.session() as session:
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
            update(User).where(User.id == user_id).values(password_hash=password_hash)
        )
        if rowcount(result) == 0:
            raise NotFoundError(f"No user with id {user_id!r}.")
        ended = await session.execute(delete(AuthSession).where(AuthSession.user_id == user_id))
        await session.commit()
    logger.info("Password of user %s changed; %d login session(s) ended", user_id, rowcount(ended))


# ---------------------------------------------------------------------------------------------
# Login sessions


def _token_hash(token: str) -> str | None:
    """The stored form of a session token, or None if *token* cannot be one of ours."""
    if not 0 < len(token) <= _TOKEN_MAX or not token.isascii():
        return None
    return sha256_hex(token)


async def create_auth_session(db: Database, user: User, ttl: timedelta) -> str:
    """Start a login session for *user* that lasts *ttl*; return its token for the cookie.

    Only the token's SHA-256 is stored, so the token cannot be shown again.
    """
    if ttl <= timedelta(0):
        raise InvalidValueError(f"A login session must last a positive time, not {ttl}.")
    token = secrets.token_urlsafe(32)
    now = db.now()
    record = AuthSession(
        token_hash=sha256_hex(token),
        user_id=user.id,
        created_at=now,
        expires_at=now + ttl,
        last_seen_at=now,
    )
    async with db.session() as session:
        session.add(record)
        await session.commit()
    logger.info("Login session started for user %s until %s", user.id, record.expires_at)
    return token


@dataclass(frozen=True)
class Login:
    """A login session that is valid now: whose it is, its id and until when it lasts.

    The id is the SHA-256 of the session's token (what the database stores): it names the
    login, for example to close its live connections, without being able to act as it.
    """

    user: User
    id: str
    expires_at: datetime


async def user_for_token(db: Database, token: str) -> User | None:
    """Return the user whose login session has *token*.

    None if the token is unknown, malformed or expired, or the user is disabled. Records the
    time of use, at most once a minute.
    """
    login = await login_for_token(db, token)
    return login.user if login is not None else None


async def login_for_token(db: Database, token: str) -> Login | None:
    """The login session with *token*, if it is valid now (see :func:`user_for_token`)."""
    token_hash = _token_hash(token)
    return await login_by_id(db, token_hash) if token_hash is not None else None


async def login_by_id(db: Database, login_id: str) -> Login | None:
    """The login session with this id (:attr:`Login.id`), if it is still valid: not ended,
    not expired and its user not disabled."""
    if len(login_id) != 64:
        return None
    token_hash = login_id
    now = db.now()
    async with db.session() as session:
        row = (
            await session.execute(
                select(AuthSession, User)
                .join(User, AuthSession.user_id == User.id)
                .where(AuthSession.token_hash == token_hash)
            )
        ).one_or_none()
        if row is None:
            return None
        record, user = row
    if record.expires_at <= now or user.disabled:
        return None
    login = Login(user=user, id=token_hash, expires_at=record.expires_at)
    if now - record.last_seen_at >= _LAST_SEEN_RESOLUTION:
        # A transaction of its own, starting with the write (see _insert).
        async with db.session() as session:
            await session.execute(
                update(AuthSession)
                .where(AuthSession.token_hash == token_hash)
                .values(last_seen_at=now)
            )
            await session.commit()
    return login


async def delete_auth_session(db: Database, token: str) -> bool:
    """End the login session with *token* (logout). Return whether there was one."""
    token_hash = _token_hash(token)
    if token_hash is None:
        return False
    async with db.session() as session:
        result = await session.execute(
            delete(AuthSession).where(AuthSession.token_hash == token_hash)
        )
        await session.commit()
    return rowcount(result) > 0


async def purge_expired_sessions(db: Database) -> int:
    """Delete the expired login sessions; return how many there were."""
    async with db.session() as session:
        result = await session.execute(
            delete(AuthSession).where(AuthSession.expires_at <= db.now())
        )
        await session.commit()
    count = rowcount(result)
    if count:
        logger.info("Purged %d expired login session(s)", count)
    return count


# ---------------------------------------------------------------------------------------------
# Booths


def _clean_booth_name(name: str) -> str:
    cleaned = name.strip()
    if not cleaned:
        raise InvalidValueError("A booth needs a name.")
    if len(cleaned) > _BOOTH_NAME_MAX:
        raise InvalidValueError(
            f"The booth name is too long: use at most {_BOOTH_NAME_MAX} characters."
        )
    if not cleaned.isprintable():
        raise InvalidValueError("The booth name must not contain control characters.")
    return cleaned


async def create_booth(db: Database, name: str) -> tuple[Booth, str]:
    """Register a booth; return it and its credential, ``"<booth id>.<secret>"``.

    The credential goes into the booth's configuration. Only a hash of the secret is stored,
    so the credential cannot be shown again. Raises :class:`InvalidValueError` for an empty or
    overlong name and :class:`DuplicateError` if a booth has this name.
    """
    cleaned = _clean_booth_name(name)
    secret = secrets.token_urlsafe(32)
    booth = Booth(
        id=new_id(),
        name=cleaned,
        secret_hash=sha256_hex(secret),
        created_at=db.now(),
        revoked_at=None,
    )
    duplicate = DuplicateError(f"A booth named {cleaned!r} already exists; choose another name.")
    async with db.session() as session:
        if await session.scalar(select(Booth.id).where(Booth.name == cleaned)) is not None:
            raise duplicate
    await insert_unique(db, booth, duplicate)
    logger.info("Booth %s (%s) registered", booth.id, cleaned)
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
    async with db.session() as session:
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


async def get_booth(db: Database, booth_id: str) -> Booth | None:
    """Return the booth with *booth_id*, or None."""
    async with db.session() as session:
        return await session.get(Booth, booth_id)


async def get_booth_by_name(db: Database, name: str) -> Booth | None:
    """Return the booth named *name* (surrounding spaces ignored), or None."""
    async with db.session() as session:
        return await session.scalar(select(Booth).where(Booth.name == name.strip()))


async def list_booths(db: Database, *, include_revoked: bool = True) -> list[Booth]:
    """Return the booths ordered by name, with or without the revoked ones."""
    query = select(Booth).order_by(Booth.name)
    if not include_revoked:
        query = query.where(Booth.revoked_at.is_(None))
    async with db.session() as session:
        return list(await session.scalars(query))


async def revoke_booth(db: Database, booth_id: str) -> Booth:
    """Revoke the booth's credential so it can no longer log in; return the booth.

    Revoking twice keeps the first time. Raises :class:`NotFoundError` for an unknown booth.
    """
    async with db.session() as session:
        # Write first, then read (see _insert); the condition keeps the first revocation.
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
