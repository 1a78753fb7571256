"""Staff who log in through the organisation's identity provider (OpenID Connect): their
accounts, known by the provider's issuer and subject, and their login sessions, known by the
provider's session id for its back-channel logout.

An account made at a single sign-on has no password (it cannot log in with one) and is kept
in step with what the provider says at each login: name, role, topics. The provider decides
who may log in; an administrator may still disable the account here, and it stays disabled
until an administrator enables it again, whatever the provider says.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select

from .common import advisory_lock
from .database import Database
from .errors import ConflictError
from .models import AuthSession, Role, Topic, User, new_id, user_topics
from .users import _ADMINS_LOCK_ID, _DISPLAY_NAME_MAX, normalize_username
from .validation import clean_text

__all__ = [
    "EXTERNAL_ACCOUNT_HASH",
    "EndedLogin",
    "ExternalPerson",
    "end_external_logins",
    "get_user_by_subject",
    "id_token_of_login",
    "save_external_user",
]

logger = logging.getLogger(__name__)

#: What an account made at a single sign-on has instead of a password hash: no password
#: matches it (the login with a password refuses such an account before it checks one).
EXTERNAL_ACCOUNT_HASH = "!single-sign-on"


@dataclass(frozen=True)
class ExternalPerson:
    """Who the provider says logged in, mapped to this service's terms."""

    issuer: str
    subject: str
    username: str
    display_name: str
    role: Role
    #: Topic names (as the topics are named here); None: topics are not the provider's to set.
    topics: Sequence[str] | None = None


@dataclass(frozen=True)
class EndedLogin:
    """A login session a logout at the provider ended: whose, and its id (live sockets)."""

    user_id: str
    login_id: str


async def get_user_by_subject(db: Database, issuer: str, subject: str) -> User | None:
    """The account the provider ``issuer`` knows as ``subject``, if one was made."""
    async with db.reads() as session:
        return await session.scalar(
            select(User).where(User.external_issuer == issuer, User.external_subject == subject)
        )


async def save_external_user(db: Database, person: ExternalPerson) -> User:
    """Create or update the account of ``person``; return it.

    Raises :class:`ConflictError` when the username belongs to another account (a local one,
    or another of the provider's people): an administrator decides, nobody takes over an
    account by choosing its name at the provider.
    """
    name = normalize_username(person.username)
    display = clean_text(person.display_name or name, "display name", _DISPLAY_NAME_MAX)
    async with db.session() as session:
        await advisory_lock(session, db, _ADMINS_LOCK_ID)
        user = await session.scalar(
            select(User).where(
                User.external_issuer == person.issuer, User.external_subject == person.subject
            )
        )
        holder = await session.scalar(select(User).where(User.username == name))
        if holder is not None and (user is None or holder.id != user.id):
            raise ConflictError(
                f"the username {name!r} belongs to another account here; an administrator "
                "must rename one of the two"
            )
        if user is None:
            user = User(
                id=new_id(),
                username=name,
                display_name=display,
                password_hash=EXTERNAL_ACCOUNT_HASH,
                role=person.role,
                created_at=db.now(),
                disabled=False,
                external_issuer=person.issuer,
                external_subject=person.subject,
            )
            session.add(user)
            logger.info("User %s (%s) created at a single sign-on", user.id, name)
        else:
            user.username, user.display_name, user.role = name, display, person.role
        await session.flush()
        if person.topics is not None:
            wanted = {topic.casefold() for topic in person.topics}
            known = await session.execute(select(Topic.id, Topic.name))
            chosen = {topic_id for topic_id, name_here in known if name_here.casefold() in wanted}
            await session.execute(delete(user_topics).where(user_topics.c.user_id == user.id))
            if chosen:
                await session.execute(
                    user_topics.insert(), [{"user_id": user.id, "topic_id": t} for t in chosen]
                )
        await session.commit()
    return user


async def end_external_logins(
    db: Database, issuer: str, *, subject: str | None, sid: str | None
) -> list[EndedLogin]:
    """End the login sessions a logout at the provider names: its session ``sid``, or every
    session of the person ``subject`` (both given: the session, if it is that person's)."""
    if subject is None and sid is None:
        return []
    query = (
        select(AuthSession.user_id, AuthSession.token_hash)
        .join(User, AuthSession.user_id == User.id)
        .where(User.external_issuer == issuer)
    )
    if subject is not None:
        query = query.where(User.external_subject == subject)
    if sid is not None:
        query = query.where(AuthSession.external_sid == sid)
    async with db.session() as session:
        ended = [
            EndedLogin(user_id, token_hash) for user_id, token_hash in await session.execute(query)
        ]
        if ended:
            await session.execute(
                delete(AuthSession).where(
                    AuthSession.token_hash.in_([login.login_id for login in ended])
                )
            )
        await session.commit()
    return ended


async def id_token_of_login(db: Database, login_id: str) -> str | None:
    """The ID token a single sign-on's login was started with (None for a password login)."""
    async with db.reads() as session:
        return await session.scalar(
            select(AuthSession.id_token).where(AuthSession.token_hash == login_id)
        )
