"""Topics (the services citizens can ask for), their names per language, and which users
serve which topics.

Plain async functions that take the :class:`~server.storage.database.Database`; each call is
one transaction. Returned objects are detached copies.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from .common import insert_unique, rowcount
from .database import Database
from .errors import DuplicateError, InvalidValueError, NotFoundError
from .models import Topic, User, new_id, user_topics
from .validation import clean_text

__all__ = [
    "TOPIC_LANGUAGES",
    "create_topic",
    "get_topic",
    "list_topics",
    "rename_topic",
    "set_topic_active",
    "set_topic_names",
    "set_user_topics",
    "topic_name",
    "topic_names",
    "topics_for_user",
    "user_topic_ids",
]

logger = logging.getLogger(__name__)

#: The languages a topic can have a name in: those of the booth and the citizens' page.
TOPIC_LANGUAGES = ("de", "en", "tr", "uk", "ru", "ar")

_NAME_MAX = 100


def _duplicate_name(name: str) -> DuplicateError:
    return DuplicateError(f"A topic named {name!r} already exists; choose another name.")


async def create_topic(db: Database, name: str) -> Topic:
    """Create an active topic (a service citizens can ask for) and return it.

    Raises :class:`InvalidValueError` for a malformed name and :class:`DuplicateError` if a
    topic has this name.
    """
    cleaned = clean_text(name, "topic name", _NAME_MAX)
    topic = Topic(id=new_id(), name=cleaned, active=True, created_at=db.now())
    async with db.reads() as session:
        if await session.scalar(select(Topic.id).where(Topic.name == cleaned)) is not None:
            raise _duplicate_name(cleaned)
    await insert_unique(db, topic, _duplicate_name(cleaned))
    logger.info("Topic %s (%s) created", topic.id, cleaned)
    return topic


async def get_topic(db: Database, topic_id: str) -> Topic | None:
    """Return the topic with *topic_id*, or None."""
    async with db.reads() as session:
        return await session.get(Topic, topic_id)


async def list_topics(db: Database, *, include_inactive: bool = True) -> list[Topic]:
    """Return the topics ordered by name, with or without the inactive ones."""
    query = select(Topic).order_by(Topic.name)
    if not include_inactive:
        query = query.where(Topic.active.is_(True))
    async with db.reads() as session:
        return list(await session.scalars(query))


async def rename_topic(db: Database, topic_id: str, name: str) -> Topic:
    """Give the topic a new name; return it.

    Raises :class:`InvalidValueError` for a malformed name, :class:`DuplicateError` if another
    topic has it and :class:`NotFoundError` for an unknown topic.
    """
    cleaned = clean_text(name, "topic name", _NAME_MAX)
    return await _update_topic(db, topic_id, {"name": cleaned}, _duplicate_name(cleaned))


def topic_names(topic: Topic) -> dict[str, str]:
    """The topic's names per language (``{}`` without any, or if the stored JSON is damaged)."""
    if not topic.names:
        return {}
    try:
        stored = json.loads(topic.names)
    except ValueError:
        logger.warning("Topic %s: its names per language are not valid JSON", topic.id)
        return {}
    if not isinstance(stored, dict):
        return {}
    return {
        str(k): str(v)
        for k, v in stored.items()
        if k in TOPIC_LANGUAGES and isinstance(v, str) and v
    }


def topic_name(topic: Topic, language: str) -> str:
    """The topic's name in *language*, or its own name when it has none in that language."""
    return topic_names(topic).get(language) or topic.name


async def set_topic_names(db: Database, topic_id: str, names: dict[str, str]) -> Topic:
    """Make *names* (language -> name) the topic's names per language; an empty name removes
    that language. Return the topic.

    Raises :class:`InvalidValueError` for a language not in :data:`TOPIC_LANGUAGES` or a
    malformed name, and :class:`NotFoundError` for an unknown topic.
    """
    cleaned: dict[str, str] = {}
    for language, name in names.items():
        if language not in TOPIC_LANGUAGES:
            raise InvalidValueError(
                f"No topic names in {language!r}: use one of {', '.join(TOPIC_LANGUAGES)}."
            )
        if name.strip():
            cleaned[language] = clean_text(name, f"topic name in {language!r}", _NAME_MAX)
    stored = json.dumps(cleaned, ensure_ascii=False, sort_keys=True) if cleaned else None
    return await _update_topic(db, topic_id, {"names": stored}, None)


async def set_topic_active(db: Database, topic_id: str, active: bool) -> Topic:
    """Offer the topic to citizens again, or stop offering it; return it.

    Raises :class:`NotFoundError` for an unknown topic.
    """
    return await _update_topic(db, topic_id, {"active": active}, None)


async def _update_topic(
    db: Database, topic_id: str, values: dict[str, Any], duplicate: DuplicateError | None
) -> Topic:
    async with db.session() as session:
        try:
            result = await session.execute(
                update(Topic).where(Topic.id == topic_id).values(**values)
            )
        except IntegrityError as exc:
            if duplicate is None:
                raise
            raise duplicate from exc
        if rowcount(result) == 0:
            raise NotFoundError(f"No topic with id {topic_id!r}.")
        topic = await session.get(Topic, topic_id)
        await session.commit()
    assert topic is not None
    logger.info("Topic %s changed: %s", topic_id, ", ".join(sorted(values)))
    return topic


# ---------------------------------------------------------------------------------------------
# Who serves which topics


async def set_user_topics(db: Database, user_id: str, topic_ids: Iterable[str]) -> None:
    """Make *topic_ids* the topics the user serves, replacing the previous ones.

    Raises :class:`NotFoundError` for an unknown user or topic; then nothing changes.
    """
    wanted = sorted(set(topic_ids))
    async with db.session() as session:
        # Write first (see Database), then check within the same transaction.
        await session.execute(delete(user_topics).where(user_topics.c.user_id == user_id))
        if await session.get(User, user_id) is None:
            raise NotFoundError(f"No user with id {user_id!r}.")
        if wanted:
            found = set(await session.scalars(select(Topic.id).where(Topic.id.in_(wanted))))
            missing = [topic_id for topic_id in wanted if topic_id not in found]
            if missing:
                raise NotFoundError(f"No topic with id {', '.join(map(repr, missing))}.")
            await session.execute(
                insert(user_topics),
                [{"user_id": user_id, "topic_id": topic_id} for topic_id in wanted],
            )
        await session.commit()
    logger.info("User %s now serves %d topic(s)", user_id, len(wanted))


async def topics_for_user(db: Database, user_id: str) -> list[Topic]:
    """Return the topics the user serves, ordered by name (none for an unknown user)."""
    query = (
        select(Topic)
        .join(user_topics, user_topics.c.topic_id == Topic.id)
        .where(user_topics.c.user_id == user_id)
        .order_by(Topic.name)
    )
    async with db.reads() as session:
        return list(await session.scalars(query))


async def user_topic_ids(db: Database) -> dict[str, list[str]]:
    """The ids of the topics each user serves, by user id (users serving none are absent)."""
    query = select(user_topics.c.user_id, user_topics.c.topic_id).order_by(
        user_topics.c.user_id, user_topics.c.topic_id
    )
    found: dict[str, list[str]] = {}
    async with db.reads() as session:
        for user_id, topic_id in await session.execute(query):
            found.setdefault(user_id, []).append(topic_id)
    return found
