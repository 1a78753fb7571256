"""Reading and writing the consultation domain: branches, topics, appointments, audit log.

Plain async functions that take the :class:`~server.storage.database.Database`, like
:mod:`server.storage.stores`; each call is one transaction and returned objects are detached
copies. Times come from the database's clock.

Appointments are joined with a link token (``secrets.token_urlsafe(24)``) or an 8-digit code
typed on a booth keypad; both are returned once, at creation, and only hashes are stored. A
code is unique among the scheduled appointments whose join windows overlap, so a booth can
find the appointment from the code alone. Finding one by code scans the scheduled
appointments whose window contains the current time and hashes the code once with each row's
salt: O(k) hashes for k appointments open at the same moment, which is a few hundred at most
in a deployment of branch offices. Callers limit how many codes a client may try.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from .common import insert_unique, rowcount, sha256_hex
from .database import Database
from .errors import DuplicateError, InvalidValueError, NotFoundError
from .models import (
    ActorKind,
    Appointment,
    AppointmentStatus,
    AuditEvent,
    Booth,
    Branch,
    Channel,
    Topic,
    User,
    new_id,
    user_topics,
)

__all__ = [
    "JOIN_CLOSES_AFTER_END",
    "JOIN_CODE_LENGTH",
    "JOIN_OPENS_BEFORE_START",
    "MAX_DURATION_MINUTES",
    "MIN_DURATION_MINUTES",
    "TOPIC_LANGUAGES",
    "LinkState",
    "appointment_by_code",
    "appointment_by_token",
    "appointment_for_link",
    "cancel_appointment",
    "create_appointment",
    "create_branch",
    "create_topic",
    "get_appointment",
    "get_branch",
    "get_topic",
    "join_window",
    "link_state",
    "list_appointments",
    "list_audit",
    "list_branches",
    "list_topics",
    "mark_appointment_done",
    "move_appointment",
    "purge_audit",
    "record_audit",
    "rename_branch",
    "rename_topic",
    "set_booth_branch",
    "set_topic_active",
    "set_topic_names",
    "set_user_topics",
    "topic_name",
    "topic_names",
    "topics_for_user",
]

logger = logging.getLogger(__name__)

JOIN_OPENS_BEFORE_START = timedelta(minutes=15)
"""How long before its start an appointment can be joined."""
JOIN_CLOSES_AFTER_END = timedelta(minutes=30)
"""How long after its planned end an appointment can still be joined (overrun, reconnects)."""
MIN_DURATION_MINUTES = 5
MAX_DURATION_MINUTES = 240
#: How far ahead an appointment can be made (and times stay far from the calendar's end).
MAX_BOOKING_AHEAD = timedelta(days=2 * 366)
JOIN_CODE_LENGTH = 8

_NAME_MAX = 100
_LABEL_MAX = 80
_AUDIT_ID_MAX = 64
_AUDIT_ACTION_MAX = 64
_AUDIT_DETAIL_MAX = 500
_AUDIT_LIST_MAX = 1000
_JOIN_CODE = re.compile(rf"[0-9]{{{JOIN_CODE_LENGTH}}}")
# secrets.token_urlsafe(24) gives 32 characters; refuse anything else before hashing.
_JOIN_TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")
_JOIN_TOKEN_BYTES = 24
# With 10^8 codes and a few hundred open appointments a second draw is already rare.
_CODE_ATTEMPTS = 20
# The longest window: every scheduled appointment whose window meets an interval starts
# within this much before it, so a range on the indexed starts_at narrows the scan.
_LONGEST_WINDOW = (
    JOIN_OPENS_BEFORE_START + timedelta(minutes=MAX_DURATION_MINUTES) + JOIN_CLOSES_AFTER_END
)
# Serialises code allocation between server nodes on PostgreSQL; on SQLite the first write of
# a transaction already takes the database's single write lock.
_JOIN_CODE_LOCK_ID = 0x5642_4A4F_494E_4344 & 0x7FFF_FFFF_FFFF_FFFF


def _clean_text(value: str, what: str, max_length: int) -> str:
    cleaned = value.strip()
    if not cleaned:
        raise InvalidValueError(f"The {what} must not be empty.")
    if len(cleaned) > max_length:
        raise InvalidValueError(f"The {what} is too long: use at most {max_length} characters.")
    if not cleaned.isprintable():
        raise InvalidValueError(f"The {what} must not contain control characters.")
    return cleaned


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidValueError(
            f"The {what} has no time zone; pass a timezone-aware time (for example in UTC)."
        )
    try:
        return value.astimezone(UTC)
    except OverflowError:  # the first or last day the calendar knows, with an offset
        raise InvalidValueError(f"The {what} {value.isoformat()} is out of range.") from None


# ---------------------------------------------------------------------------------------------
# Branches


async def create_branch(db: Database, name: str, region: str) -> Branch:
    """Create a branch office in *region* and return it.

    Raises :class:`InvalidValueError` for an empty, overlong or malformed name or region and
    :class:`DuplicateError` if a branch has this name.
    """
    cleaned = _clean_text(name, "branch name", _NAME_MAX)
    cleaned_region = _clean_text(region, "region", _NAME_MAX)
    branch = Branch(id=new_id(), name=cleaned, region=cleaned_region, created_at=db.now())
    duplicate = DuplicateError(f"A branch named {cleaned!r} already exists; choose another name.")
    async with db.session() as session:
        if await session.scalar(select(Branch.id).where(Branch.name == cleaned)) is not None:
            raise duplicate
    await insert_unique(db, branch, duplicate)
    logger.info("Branch %s (%s) created in region %s", branch.id, cleaned, cleaned_region)
    return branch


async def get_branch(db: Database, branch_id: str) -> Branch | None:
    """Return the branch with *branch_id*, or None."""
    async with db.session() as session:
        return await session.get(Branch, branch_id)


async def list_branches(db: Database, *, region: str | None = None) -> list[Branch]:
    """Return the branches ordered by name, all of them or those in *region*."""
    query = select(Branch).order_by(Branch.name)
    if region is not None:
        query = query.where(Branch.region == region.strip())
    async with db.session() as session:
        return list(await session.scalars(query))


async def list_regions(db: Database) -> list[str]:
    """The regions that have at least one branch, sorted (walk-in queues are per region)."""
    async with db.session() as session:
        return list(await session.scalars(select(Branch.region).distinct().order_by(Branch.region)))


async def booth_region(db: Database, booth_id: str) -> str | None:
    """The region of the booth's branch; None for a booth in no branch."""
    query = select(Branch.region).join(Booth, Booth.branch_id == Branch.id)
    async with db.session() as session:
        region: str | None = await session.scalar(query.where(Booth.id == booth_id))
        return region


async def rename_branch(db: Database, branch_id: str, name: str) -> Branch:
    """Give the branch a new name; return it.

    Raises :class:`InvalidValueError` for a malformed name, :class:`DuplicateError` if another
    branch has it and :class:`NotFoundError` for an unknown branch.
    """
    cleaned = _clean_text(name, "branch name", _NAME_MAX)
    duplicate = DuplicateError(f"A branch named {cleaned!r} already exists; choose another name.")
    async with db.session() as session:
        try:
            result = await session.execute(
                update(Branch).where(Branch.id == branch_id).values(name=cleaned)
            )
        except IntegrityError as exc:
            raise duplicate from exc
        if rowcount(result) == 0:
            raise NotFoundError(f"No branch with id {branch_id!r}.")
        branch = await session.get(Branch, branch_id)
        await session.commit()
    assert branch is not None
    logger.info("Branch %s renamed to %s", branch_id, cleaned)
    return branch


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


# ---------------------------------------------------------------------------------------------
# Topics


async def create_topic(db: Database, name: str) -> Topic:
    """Create an active topic (a service citizens can ask for) and return it.

    Raises :class:`InvalidValueError` for a malformed name and :class:`DuplicateError` if a
    topic has this name.
    """
    cleaned = _clean_text(name, "topic name", _NAME_MAX)
    topic = Topic(id=new_id(), name=cleaned, active=True, created_at=db.now())
    duplicate = DuplicateError(f"A topic named {cleaned!r} already exists; choose another name.")
    async with db.session() as session:
        if await session.scalar(select(Topic.id).where(Topic.name == cleaned)) is not None:
            raise duplicate
    await insert_unique(db, topic, duplicate)
    logger.info("Topic %s (%s) created", topic.id, cleaned)
    return topic


async def get_topic(db: Database, topic_id: str) -> Topic | None:
    """Return the topic with *topic_id*, or None."""
    async with db.session() as session:
        return await session.get(Topic, topic_id)


async def list_topics(db: Database, *, include_inactive: bool = True) -> list[Topic]:
    """Return the topics ordered by name, with or without the inactive ones."""
    query = select(Topic).order_by(Topic.name)
    if not include_inactive:
        query = query.where(Topic.active.is_(True))
    async with db.session() as session:
        return list(await session.scalars(query))


async def rename_topic(db: Database, topic_id: str, name: str) -> Topic:
    """Give the topic a new name; return it.

    Raises :class:`InvalidValueError` for a malformed name, :class:`DuplicateError` if another
    topic has it and :class:`NotFoundError` for an unknown topic.
    """
    cleaned = _clean_text(name, "topic name", _NAME_MAX)
    duplicate = DuplicateError(f"A topic named {cleaned!r} already exists; choose another name.")
    return await _update_topic(db, topic_id, {"name": cleaned}, duplicate)


#: The languages a topic can have a name in: those of the booth and the citizens' page.
TOPIC_LANGUAGES = ("de", "en", "tr", "uk", "ru", "ar")


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
            cleaned[language] = _clean_text(name, f"topic name in {language!r}", _NAME_MAX)
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


async def set_user_topics(db: Database, user_id: str, topic_ids: Iterable[str]) -> None:
    """Make *topic_ids* the topics the user serves, replacing the previous ones.

    Raises :class:`NotFoundError` for an unknown user or topic; then nothing changes.
    """
    wanted = sorted(set(topic_ids))
    async with db.session() as session:
        # Write first (see stores._insert), then check within the same transaction.
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
    async with db.session() as session:
        return list(await session.scalars(query))


# ---------------------------------------------------------------------------------------------
# Appointments


def join_window(appointment: Appointment) -> tuple[datetime, datetime]:
    """When the appointment can be joined: ``(opens_at, closes_at)``, closes_at excluded.

    From :data:`JOIN_OPENS_BEFORE_START` before the start until
    :data:`JOIN_CLOSES_AFTER_END` after the planned end.
    """
    return (
        appointment.starts_at - JOIN_OPENS_BEFORE_START,
        appointment.ends_at + JOIN_CLOSES_AFTER_END,
    )


def _window(starts_at: datetime, duration_minutes: int) -> tuple[datetime, datetime]:
    return (
        starts_at - JOIN_OPENS_BEFORE_START,
        starts_at + timedelta(minutes=duration_minutes) + JOIN_CLOSES_AFTER_END,
    )


def _overlaps(window: tuple[datetime, datetime], other: Appointment) -> bool:
    opens_at, closes_at = join_window(other)
    return opens_at < window[1] and window[0] < closes_at


def _new_join_token() -> str:
    return secrets.token_urlsafe(_JOIN_TOKEN_BYTES)


def _new_join_code() -> str:
    """A random 8-digit code (leading zeros allowed)."""
    return f"{secrets.randbelow(10**JOIN_CODE_LENGTH):0{JOIN_CODE_LENGTH}d}"


#: Salts of codes hashed with the server's key start with this (older rows: plain SHA-256).
_KEYED = "k1:"


def _code_hash(code: str, salt: str, key: bytes | None) -> str:
    """A join code's hash. With the server's key it is an HMAC: 10**8 codes are few enough to
    try them all against a stolen database, so the database alone must not be enough."""
    if salt.startswith(_KEYED):
        if key is None:
            raise InvalidValueError(
                "This join code was made with the server's key; open the "
                "database through the server to check it."
            )
        return hmac.new(key, f"{salt}:{code}".encode(), "sha256").hexdigest()
    return sha256_hex(f"{salt}:{code}")


def _code_matches(appointment: Appointment, code: str, key: bytes | None) -> bool:
    expected = _code_hash(code, appointment.join_code_salt, key)
    return hmac.compare_digest(expected, appointment.join_code_hash)


def _set_code(appointment: Appointment, code: str, key: bytes | None) -> None:
    salt = (_KEYED + secrets.token_hex(14)) if key is not None else secrets.token_hex(16)
    appointment.join_code_salt = salt
    appointment.join_code_hash = _code_hash(code, salt, key)


def _free_code(others: Sequence[Appointment], appointment_id: str, key: bytes | None) -> str:
    """A fresh code that none of *others* (scheduled, overlapping windows) uses."""
    for _ in range(_CODE_ATTEMPTS):
        code = _new_join_code()
        if not any(_code_matches(other, code, key) for other in others):
            return code
        # The code itself is never logged.
        logger.info("Join code collision for appointment %s; drawing another", appointment_id)
    raise DuplicateError(
        f"No free join code found in {_CODE_ATTEMPTS} attempts; try again or choose another time."
    )


async def _lock_join_codes(session: AsyncSession, db: Database) -> None:
    if db.dialect_name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _JOIN_CODE_LOCK_ID})


async def _scheduled_meeting(
    session: AsyncSession, window: tuple[datetime, datetime], *, exclude: str | None = None
) -> list[Appointment]:
    """The appointments that can be joined (scheduled or done) whose join window overlaps
    *window*: their codes must differ, and a code looks among them."""
    query = select(Appointment).where(
        Appointment.status.in_(_OPEN_STATUSES),
        Appointment.starts_at > window[0] - _LONGEST_WINDOW,
        Appointment.starts_at < window[1] + JOIN_OPENS_BEFORE_START,
    )
    if exclude is not None:
        query = query.where(Appointment.id != exclude)
    return [a for a in await session.scalars(query) if _overlaps(window, a)]


def _parse_channel(channel: Channel | str) -> Channel:
    try:
        return Channel(channel)
    except ValueError:
        choices = ", ".join(c.value for c in Channel)
        raise InvalidValueError(f"Unknown channel {channel!r}: use one of {choices}.") from None


def _check_duration(duration_minutes: int) -> int:
    if (
        isinstance(duration_minutes, bool)
        or not isinstance(duration_minutes, int)
        or not MIN_DURATION_MINUTES <= duration_minutes <= MAX_DURATION_MINUTES
    ):
        raise InvalidValueError(
            f"Invalid duration {duration_minutes!r}: an appointment lasts "
            f"{MIN_DURATION_MINUTES} to {MAX_DURATION_MINUTES} minutes."
        )
    return duration_minutes


def _clean_label(label: str | None) -> str | None:
    cleaned = (label or "").strip()
    if not cleaned:
        return None
    if len(cleaned) > _LABEL_MAX:
        raise InvalidValueError(f"The note is too long: use at most {_LABEL_MAX} characters.")
    if not cleaned.isprintable():
        raise InvalidValueError("The note must not contain control characters.")
    return cleaned


def _check_not_over(db: Database, starts_at: datetime, duration_minutes: int) -> None:
    if starts_at > db.now() + MAX_BOOKING_AHEAD:
        raise InvalidValueError(
            f"The appointment at {starts_at.isoformat()} is too far ahead; appointments can be "
            f"made at most {MAX_BOOKING_AHEAD.days} days ahead."
        )
    if _window(starts_at, duration_minutes)[1] <= db.now():
        raise InvalidValueError(
            f"The appointment at {starts_at.isoformat()} would already be over; "
            "choose a later time."
        )


async def _check_references(
    db: Database, advisor_id: str, topic_id: str | None, branch_id: str | None
) -> None:
    # A read transaction of its own before the write (see stores._insert).
    async with db.session() as session:
        advisor = await session.get(User, advisor_id)
        if advisor is None:
            raise NotFoundError(f"No user with id {advisor_id!r}.")
        if advisor.disabled:
            raise InvalidValueError(
                f"The user {advisor.username!r} is disabled and cannot take appointments."
            )
        if topic_id is not None:
            topic = await session.get(Topic, topic_id)
            if topic is None:
                raise NotFoundError(f"No topic with id {topic_id!r}.")
            if not topic.active:
                raise InvalidValueError(
                    f"The topic {topic.name!r} is not offered at the moment; activate it "
                    "first or choose another one."
                )
        if branch_id is not None and await session.get(Branch, branch_id) is None:
            raise NotFoundError(f"No branch with id {branch_id!r}.")


async def create_appointment(
    db: Database,
    *,
    advisor_id: str,
    starts_at: datetime,
    duration_minutes: int,
    channel: Channel | str,
    topic_id: str | None = None,
    branch_id: str | None = None,
    citizen_label: str | None = None,
) -> tuple[Appointment, str, str]:
    """Book an appointment; return it with its join token (for the link) and join code.

    The token and the 8-digit code are shown this once: only hashes are stored. The code is
    unique among the scheduled appointments whose join windows overlap this one's.

    Raises :class:`InvalidValueError` for a naive or past time, a duration outside 5 to 240
    minutes, an unknown channel, a booth appointment without a branch, an overlong note, a
    disabled advisor or an inactive topic, and :class:`NotFoundError` for an unknown advisor,
    topic or branch.
    """
    start = _aware(starts_at, "start time")
    duration = _check_duration(duration_minutes)
    parsed_channel = _parse_channel(channel)
    if parsed_channel is Channel.BOOTH and branch_id is None:
        raise InvalidValueError(
            "An appointment in a booth needs a branch: choose the branch whose booth the "
            "citizen will use, or the channel 'either'."
        )
    label = _clean_label(citizen_label)
    _check_not_over(db, start, duration)
    await _check_references(db, advisor_id, topic_id, branch_id)

    token = _new_join_token()
    code = _new_join_code()
    now = db.now()
    appointment = Appointment(
        id=new_id(),
        advisor_id=advisor_id,
        topic_id=topic_id,
        starts_at=start,
        duration_minutes=duration,
        channel=parsed_channel,
        branch_id=branch_id,
        citizen_label=label,
        join_token_hash=sha256_hex(token),
        status=AppointmentStatus.SCHEDULED,
        created_at=now,
        updated_at=now,
    )
    _set_code(appointment, code, db.code_key)
    async with db.session() as session:
        await _lock_join_codes(session, db)
        session.add(appointment)
        try:
            # Write first: on SQLite this takes the write lock, so no other transaction can
            # add a clashing code between the check below and the commit.
            await session.flush()
        except IntegrityError as exc:  # deleted since _check_references
            raise NotFoundError(
                "The advisor, topic or branch of the appointment no longer exists."
            ) from exc
        others = await _scheduled_meeting(session, join_window(appointment), exclude=appointment.id)
        if any(_code_matches(other, code, db.code_key) for other in others):
            logger.info("Join code collision for appointment %s; drawing another", appointment.id)
            code = _free_code(others, appointment.id, db.code_key)
            _set_code(appointment, code, db.code_key)
        await session.commit()
    logger.info(
        "Appointment %s created for advisor %s at %s (%d min, %s)",
        appointment.id,
        advisor_id,
        start.isoformat(),
        duration,
        parsed_channel.value,
    )
    return appointment, token, code


async def get_appointment(db: Database, appointment_id: str) -> Appointment | None:
    """Return the appointment with *appointment_id* in any status, or None."""
    async with db.session() as session:
        return await session.get(Appointment, appointment_id)


class LinkState(StrEnum):
    """Whether an appointment's link or code opens it now, and if not, why."""

    OPEN = "open"
    UNKNOWN = "unknown_link"
    TOO_EARLY = "too_early"
    OVER = "over"
    CANCELLED = "cancelled"


#: An appointment whose call took place (done) opens again within its window: a citizen whose
#: call dropped, or who was asked to come back, rejoins with the same link or code.
_OPEN_STATUSES = (AppointmentStatus.SCHEDULED, AppointmentStatus.DONE)


def link_state(appointment: Appointment, now: datetime) -> LinkState:
    """Whether *appointment*'s link opens it at *now*, and if not, why."""
    if appointment.status is AppointmentStatus.CANCELLED:
        return LinkState.CANCELLED
    opens_at, closes_at = join_window(appointment)
    if now < opens_at:
        return LinkState.TOO_EARLY
    if now >= closes_at:
        return LinkState.OVER
    return LinkState.OPEN


def _joinable(appointment: Appointment | None, now: datetime) -> bool:
    return appointment is not None and link_state(appointment, now) is LinkState.OPEN


async def appointment_for_link(db: Database, token: str) -> tuple[LinkState, Appointment | None]:
    """The appointment whose join link has *token*, and whether the link opens it now.

    ``(UNKNOWN, None)`` for an unknown or malformed token; otherwise the appointment with its
    state (open, too early, over, cancelled): whoever holds the link may know which, and may
    be told what to do. Never raises for bad input.
    """
    if not isinstance(token, str) or not _JOIN_TOKEN.fullmatch(token):
        return LinkState.UNKNOWN, None
    token_hash = sha256_hex(token)
    async with db.session() as session:
        appointment = await session.scalar(
            select(Appointment).where(Appointment.join_token_hash == token_hash)
        )
    if appointment is None or not hmac.compare_digest(appointment.join_token_hash, token_hash):
        logger.info("Join by link refused: unknown token")
        return LinkState.UNKNOWN, None
    state = link_state(appointment, db.now())
    if state is not LinkState.OPEN:
        logger.info("Join by link refused for appointment %s: %s", appointment.id, state.value)
    return state, appointment


async def appointment_by_token(db: Database, token: str) -> Appointment | None:
    """Return the appointment whose join link has *token*, if it can be joined now.

    None for an unknown or malformed token, a cancelled appointment, and outside the join
    window (an appointment whose call took place opens again within it). Never raises for bad
    input.
    """
    state, appointment = await appointment_for_link(db, token)
    return appointment if state is LinkState.OPEN else None


async def appointment_by_code(db: Database, code: str) -> Appointment | None:
    """Return the scheduled appointment with join *code* whose window is open now, or None.

    None for malformed codes (exactly 8 ASCII digits are expected) and for codes that match
    no appointment open now. Never raises for bad input. Hashes the code once per open
    appointment (see the module's documentation).
    """
    if not isinstance(code, str) or not _JOIN_CODE.fullmatch(code):
        return None
    now = db.now()
    async with db.session() as session:
        candidates = await _scheduled_meeting(session, (now, now + timedelta(microseconds=1)))
    found: Appointment | None = None
    for candidate in candidates:
        # No early exit: the time taken does not depend on where the match is.
        if _code_matches(candidate, code, db.code_key) and _joinable(candidate, now):
            found = candidate
    if found is None:
        logger.info("Join by code refused: no open appointment has this code")
    return found


async def _scheduled_for_update(
    db: Database, session: AsyncSession, appointment_id: str, verb: str
) -> Appointment:
    """Touch the scheduled appointment (taking the write lock), then load it."""
    result = await session.execute(
        update(Appointment)
        .where(
            Appointment.id == appointment_id,
            Appointment.status == AppointmentStatus.SCHEDULED,
        )
        .values(updated_at=db.now())
    )
    appointment = await session.get(Appointment, appointment_id)
    if appointment is None:
        raise NotFoundError(f"No appointment with id {appointment_id!r}.")
    if rowcount(result) == 0:
        raise InvalidValueError(
            f"The appointment {appointment_id!r} is {appointment.status.value}; "
            f"only a scheduled appointment can be {verb}."
        )
    return appointment


async def move_appointment(
    db: Database,
    appointment_id: str,
    *,
    starts_at: datetime,
    duration_minutes: int | None = None,
) -> tuple[Appointment, str | None]:
    """Move a scheduled appointment to *starts_at* (and a new duration, if given).

    The join link stays valid and so, usually, does the code. Return the appointment and
    None, or a new join code if the old one could clash in the new window; the new code is
    then shown once, like at creation.

    Only code hashes are stored, so the old code cannot be compared with others: it is kept
    when every scheduled appointment whose window meets the new window already met the old
    one (their codes differ by construction), and replaced otherwise.

    Raises :class:`InvalidValueError` for a naive or past time, a duration outside 5 to 240
    minutes or an appointment that is not scheduled, and :class:`NotFoundError` for an
    unknown appointment.
    """
    start = _aware(starts_at, "start time")
    new_code: str | None = None
    async with db.session() as session:
        await _lock_join_codes(session, db)
        appointment = await _scheduled_for_update(db, session, appointment_id, "moved")
        duration = _check_duration(
            appointment.duration_minutes if duration_minutes is None else duration_minutes
        )
        _check_not_over(db, start, duration)
        old_window = join_window(appointment)
        appointment.starts_at = start
        appointment.duration_minutes = duration
        others = await _scheduled_meeting(session, join_window(appointment), exclude=appointment_id)
        if any(not _overlaps(old_window, other) for other in others):
            new_code = _free_code(others, appointment_id, db.code_key)
            _set_code(appointment, new_code, db.code_key)
        await session.commit()
    logger.info(
        "Appointment %s moved to %s (%d min)%s",
        appointment_id,
        start.isoformat(),
        duration,
        "; new join code issued" if new_code is not None else "",
    )
    return appointment, new_code


async def cancel_appointment(db: Database, appointment_id: str) -> Appointment:
    """Cancel a scheduled appointment; its link and code stop working. Return it.

    Cancelling twice is allowed. Raises :class:`NotFoundError` for an unknown appointment and
    :class:`InvalidValueError` for one that is done.
    """
    return await _finish(db, appointment_id, AppointmentStatus.CANCELLED)


async def mark_appointment_done(db: Database, appointment_id: str) -> Appointment:
    """Record that the consultation took place; its link and code still open it within its
    join window (a citizen may come back). Return it.

    Marking twice is allowed. Raises :class:`NotFoundError` for an unknown appointment and
    :class:`InvalidValueError` for a cancelled one.
    """
    return await _finish(db, appointment_id, AppointmentStatus.DONE)


async def _finish(db: Database, appointment_id: str, status: AppointmentStatus) -> Appointment:
    async with db.session() as session:
        # Write first, then read (see stores._insert).
        result = await session.execute(
            update(Appointment)
            .where(
                Appointment.id == appointment_id,
                Appointment.status == AppointmentStatus.SCHEDULED,
            )
            .values(status=status, updated_at=db.now())
        )
        appointment = await session.get(Appointment, appointment_id)
        await session.commit()
    if appointment is None:
        raise NotFoundError(f"No appointment with id {appointment_id!r}.")
    if appointment.status is not status:
        raise InvalidValueError(
            f"The appointment {appointment_id!r} is {appointment.status.value} already."
        )
    if rowcount(result):
        logger.info("Appointment %s %s", appointment_id, status.value)
    return appointment


async def list_appointments(
    db: Database,
    *,
    advisor_id: str | None = None,
    day: date | None = None,
    tz: tzinfo = UTC,
    include_cancelled: bool = False,
) -> list[Appointment]:
    """Return appointments ordered by start: all, an advisor's, and/or those on *day*.

    *day* is a calendar day in the time zone *tz* (default UTC). Cancelled appointments are
    left out unless *include_cancelled* is true.
    """
    query = select(Appointment).order_by(Appointment.starts_at, Appointment.id)
    if advisor_id is not None:
        query = query.where(Appointment.advisor_id == advisor_id)
    if day is not None:
        first = datetime.combine(day, time(), tzinfo=tz)
        after = datetime.combine(day + timedelta(days=1), time(), tzinfo=tz)
        query = query.where(Appointment.starts_at >= first, Appointment.starts_at < after)
    if not include_cancelled:
        query = query.where(Appointment.status != AppointmentStatus.CANCELLED)
    async with db.session() as session:
        return list(await session.scalars(query))


# ---------------------------------------------------------------------------------------------
# Audit log


def _parse_actor_kind(actor_kind: ActorKind | str) -> ActorKind:
    try:
        return ActorKind(actor_kind)
    except ValueError:
        choices = ", ".join(k.value for k in ActorKind)
        raise InvalidValueError(
            f"Unknown actor kind {actor_kind!r}: use one of {choices}."
        ) from None


def _optional_short(value: str | None, what: str, max_length: int) -> str | None:
    if value is None:
        return None
    if len(value) > max_length:
        raise InvalidValueError(f"The audit {what} is too long: at most {max_length} characters.")
    return value


async def record_audit(
    db: Database,
    *,
    actor_kind: ActorKind | str,
    actor_id: str | None,
    action: str,
    subject: str | None = None,
    detail: str | None = None,
) -> AuditEvent:
    """Add an event to the audit log and return it.

    Metadata only: who (*actor_kind*, *actor_id*), what (*action*, e.g.
    ``"appointment.create"``, and its *subject*, e.g. an appointment id) and a short *detail*
    (at most 500 characters, e.g. a small JSON object). Never chat, media or secrets.

    Raises :class:`InvalidValueError` for an unknown actor kind or an empty or overlong value.
    """
    kind = _parse_actor_kind(actor_kind)
    cleaned_action = _clean_text(action, "audit action", _AUDIT_ACTION_MAX)
    event = AuditEvent(
        id=new_id(),
        at=db.now(),
        actor_kind=kind,
        actor_id=_optional_short(actor_id, "actor id", _AUDIT_ID_MAX),
        action=cleaned_action,
        subject=_optional_short(subject, "subject", _AUDIT_ID_MAX),
        detail=_optional_short(detail, "detail", _AUDIT_DETAIL_MAX),
    )
    async with db.session() as session:
        session.add(event)
        await session.commit()
    return event


async def purge_audit(db: Database, *, older_than: timedelta) -> int:
    """Delete the audit events older than *older_than*; return how many there were.

    Raises :class:`InvalidValueError` unless *older_than* is positive.
    """
    if older_than <= timedelta(0):
        raise InvalidValueError(
            f"The audit log must be kept for a positive time, not {older_than}."
        )
    async with db.session() as session:
        result = await session.execute(
            delete(AuditEvent).where(AuditEvent.at < db.now() - older_than)
        )
        await session.commit()
    count = rowcount(result)
    if count:
        logger.info("Purged %d audit event(s) older than %s", count, older_than)
    return count


async def list_audit(
    db: Database, *, limit: int = 100, before: datetime | None = None
) -> list[AuditEvent]:
    """Return up to *limit* (1 to 1000) audit events, newest first, optionally before a time.

    To page, pass the ``at`` of the last event as *before*; events sharing that exact time
    with it are then skipped.
    """
    if isinstance(limit, bool) or not 1 <= limit <= _AUDIT_LIST_MAX:
        raise InvalidValueError(f"Invalid limit {limit!r}: use 1 to {_AUDIT_LIST_MAX}.")
    query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
    if before is not None:
        query = query.where(AuditEvent.at < _aware(before, "time"))
    async with db.session() as session:
        return list(await session.scalars(query))
