"""Login sessions: a person's browser logged in, found by the SHA-256 of its cookie token.

Plain async functions that take the :class:`~server.storage.database.Database`; each call is
one transaction. Only the token's hash is stored, so a copy of the database lets nobody log in;
the hash doubles as the login's id (:attr:`Login.id`), which names a login without being able
to act as it.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from .common import rowcount, sha256_hex
from .database import Database
from .errors import InvalidValueError
from .models import AuthSession, User

__all__ = [
    "Login",
    "create_auth_session",
    "delete_auth_session",
    "end_logins_of",
    "login_by_id",
    "login_for_token",
    "login_is_valid",
    "purge_expired_sessions",
    "user_for_token",
]

logger = logging.getLogger(__name__)

_TOKEN_MAX = 256
# last_seen_at is for display ("active 5 minutes ago"); writing it on every request would
# turn every page load into a database write.
_LAST_SEEN_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class Login:
    """A login session that is valid now: whose it is, its id and until when it lasts.

    The id is the SHA-256 of the session's token (what the database stores): it names the
    login, for example to close its live connections, without being able to act as it.
    """

    user: User
    id: str
    expires_at: datetime


def _token_hash(token: str) -> str | None:
    """The stored form of a session token, or None if *token* cannot be one of ours."""
    if not 0 < len(token) <= _TOKEN_MAX or not token.isascii():
        return None
    return sha256_hex(token)


async def create_auth_session(
    db: Database,
    user: User,
    ttl: timedelta,
    *,
    external_sid: str | None = None,
    id_token: str | None = None,
) -> str:
    """Start a login session for *user* that lasts *ttl*; return its token for the cookie.

    Only the token's SHA-256 is stored, so the token cannot be shown again. A single sign-on
    gives the provider's session id and its ID token (see :mod:`.sso`).
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
        external_sid=external_sid,
        id_token=id_token,
    )
    async with db.session() as session:
        session.add(record)
        await session.commit()
    logger.info("Login session started for user %s until %s", user.id, record.expires_at)
    return token


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
    async with db.reads() as session:
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
        # A transaction of its own that starts with its write (see Database).
        async with db.session() as session:
            await session.execute(
                update(AuthSession)
                .where(AuthSession.token_hash == token_hash)
                .values(last_seen_at=now)
            )
            await session.commit()
    return login


_LOGIN_VALID = (
    "SELECT s.expires_at FROM auth_sessions AS s JOIN users AS u ON s.user_id = u.id"
    " WHERE s.token_hash = $1 AND NOT u.disabled"
)


async def login_is_valid(db: Database, login_id: str) -> bool:
    """Whether the login session with this id is still valid (see :func:`login_by_id`): the
    check a live connection makes before it acts, read without loading the user."""
    if len(login_id) != 64:
        return False
    if db.driver is not None:  # PostgreSQL: straight through the driver (every accept asks)
        async with db.driver.connection("check a login") as conn:
            expires_at = await conn.fetchval(_LOGIN_VALID, login_id)
        return expires_at is not None and expires_at > db.now()
    query = (
        select(AuthSession.expires_at)
        .join(User, AuthSession.user_id == User.id)
        .where(AuthSession.token_hash == login_id, User.disabled.is_(False))
    )
    async with db.statements() as conn:
        expires_at = (await conn.execute(query)).scalar_one_or_none()
    return expires_at is not None and expires_at > db.now()


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


async def end_logins_of(session: AsyncSession, user_id: str) -> int:
    """End every login session of the user, within the caller's transaction (a new password,
    a disabled account); return how many there were."""
    ended = await session.execute(delete(AuthSession).where(AuthSession.user_id == user_id))
    return rowcount(ended)


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
