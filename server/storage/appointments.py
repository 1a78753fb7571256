"""Appointments: booking, moving, cancelling and finishing them, when they can be joined,
and finding one by its link or code.

Plain async functions that take the :class:`~server.storage.database.Database`; each call is
one transaction and returned objects are detached copies. Times come from the database's
clock.

An appointment can be joined from :data:`JOIN_OPENS_BEFORE_START` before its start until
:data:`JOIN_CLOSES_AFTER_END` after its planned end (its *join window*), with the link or the
code it got at booking (:mod:`.join_codes`). Codes are unique among the scheduled
appointments whose windows overlap; booking and moving keep them so.
"""

from __future__ import annotations

import hmac
import logging
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from .common import rowcount, sha256_hex
from .database import Database
from .errors import InvalidValueError, NotFoundError
from .join_codes import (
    code_matches,
    is_join_code,
    is_join_token,
    issue_code,
    lock_join_codes,
    new_join_token,
)
from .models import Appointment, AppointmentStatus, Branch, Channel, Topic, User, new_id
from .validation import aware, clean_optional_text, parse_choice

__all__ = [
    "JOIN_CLOSES_AFTER_END",
    "JOIN_OPENS_BEFORE_START",
    "MAX_BOOKING_AHEAD",
    "MAX_DURATION_MINUTES",
    "MIN_DURATION_MINUTES",
    "LinkState",
    "appointment_by_code",
    "appointment_by_token",
    "appointment_for_link",
    "cancel_appointment",
    "create_appointment",
    "get_appointment",
    "join_window",
    "link_state",
    "list_appointments",
    "mark_appointment_done",
    "mark_no_shows",
    "move_appointment",
]

logger = logging.getLogger(__name__)

JOIN_OPENS_BEFORE_START = timedelta(minutes=15)
"""How long before its start an appointment can be joined."""
JOIN_CLOSES_AFTER_END = timedelta(minutes=30)
"""How long after its planned end an appointment can still be joined (overrun, reconnects)."""
MIN_DURATION_MINUTES = 5
MAX_DURATION_MINUTES = 240
#: How far back a no-show is still told.
NO_SHOW_LOOKBACK = timedelta(days=1)
#: How far ahead an appointment can be made (and times stay far from the calendar's end).
MAX_BOOKING_AHEAD = timedelta(days=2 * 366)

_LABEL_MAX = 80
# The longest window: every scheduled appointment whose window meets an interval starts
# within this much before it, so a range on the indexed starts_at narrows the scan.
_LONGEST_WINDOW = (
    JOIN_OPENS_BEFORE_START + timedelta(minutes=MAX_DURATION_MINUTES) + JOIN_CLOSES_AFTER_END
)
#: An appointment whose call took place (done) opens again within its window: a citizen whose
#: call dropped, or who was asked to come back, rejoins with the same link or code.
_OPEN_STATUSES = (AppointmentStatus.SCHEDULED, AppointmentStatus.DONE)


# ---------------------------------------------------------------------------------------------
# The join window


def join_window(appointment: Appointment) -> tuple[datetime, datetime]:
    """When the appointment can be joined: ``(opens_at, closes_at)``, closes_at excluded.

    From :data:`JOIN_OPENS_BEFORE_START` before the start until
    :data:`JOIN_CLOSES_AFTER_END` after the planned end.
    """
    return (
        appointment.starts_at - JOIN_OPENS_BEFORE_START,
        appointment.ends_at + JOIN_CLOSES_AFTER_END,
    )


async def mark_no_shows(db: Database) -> list[Appointment]:
    """Scheduled appointments whose join window closed without a call, marked as no-shows
    now; each is returned once, to one caller, whichever node asks (a conditional UPDATE)."""
    now = db.now()
    query = select(Appointment).where(
        Appointment.status == AppointmentStatus.SCHEDULED,
        Appointment.no_show_at.is_(None),
        Appointment.starts_at < now,
        # Not the appointments of long ago (from before no-shows were told, or a server that
        # was down for days): their booking system has moved on.
        Appointment.starts_at >= now - NO_SHOW_LOOKBACK,
    )
    async with db.reads() as session:
        candidates = [a for a in await session.scalars(query) if join_window(a)[1] <= now]
    marked = []
    for appointment in candidates:
        async with db.session() as session:
            result = await session.execute(
                update(Appointment)
                .where(
                    Appointment.id == appointment.id,
                    Appointment.status == AppointmentStatus.SCHEDULED,
                    Appointment.no_show_at.is_(None),
                )
                .values(no_show_at=now)
            )
            await session.commit()
        if rowcount(result) == 1:
            marked.append(appointment)
    return marked


def _window(starts_at: datetime, duration_minutes: int) -> tuple[datetime, datetime]:
    return (
        starts_at - JOIN_OPENS_BEFORE_START,
        starts_at + timedelta(minutes=duration_minutes) + JOIN_CLOSES_AFTER_END,
    )


def _overlaps(window: tuple[datetime, datetime], other: Appointment) -> bool:
    opens_at, closes_at = join_window(other)
    return opens_at < window[1] and window[0] < closes_at


class LinkState(StrEnum):
    """Whether an appointment's link or code opens it now, and if not, why."""

    OPEN = "open"
    UNKNOWN = "unknown_link"
    TOO_EARLY = "too_early"
    OVER = "over"
    CANCELLED = "cancelled"


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


# ---------------------------------------------------------------------------------------------
# Booking


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
    # A read transaction of its own before the write (see Database).
    async with db.reads() as session:
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
    start = aware(starts_at, "start time")
    duration = _check_duration(duration_minutes)
    parsed_channel = parse_choice(Channel, channel, "channel")
    if parsed_channel is Channel.BOOTH and branch_id is None:
        raise InvalidValueError(
            "An appointment in a booth needs a branch: choose the branch whose booth the "
            "citizen will use, or the channel 'either'."
        )
    label = clean_optional_text(citizen_label, "note", _LABEL_MAX)
    _check_not_over(db, start, duration)
    await _check_references(db, advisor_id, topic_id, branch_id)

    token = new_join_token()
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
    code = issue_code(appointment, db.code_key)
    async with db.session() as session:
        await lock_join_codes(session, db)
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
        if any(code_matches(other, code, db.code_key) for other in others):
            logger.info("Join code collision for appointment %s; drawing another", appointment.id)
            code = issue_code(appointment, db.code_key, avoiding=others)
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
    async with db.reads() as session:
        return await session.get(Appointment, appointment_id)


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
    async with db.reads() as session:
        return list(await session.scalars(query))


# ---------------------------------------------------------------------------------------------
# Finding one by its link or code


async def appointment_for_link(db: Database, token: str) -> tuple[LinkState, Appointment | None]:
    """The appointment whose join link has *token*, and whether the link opens it now.

    ``(UNKNOWN, None)`` for an unknown or malformed token; otherwise the appointment with its
    state (open, too early, over, cancelled): whoever holds the link may know which, and may
    be told what to do. Never raises for bad input.
    """
    if not is_join_token(token):
        return LinkState.UNKNOWN, None
    token_hash = sha256_hex(token)
    async with db.reads() as session:
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
    appointment (see :mod:`.join_codes`).
    """
    if not is_join_code(code):
        return None
    now = db.now()
    async with db.reads() as session:
        candidates = await _scheduled_meeting(session, (now, now + timedelta(microseconds=1)))
    found: Appointment | None = None
    for candidate in candidates:
        # No early exit: the time taken does not depend on where the match is.
        if code_matches(candidate, code, db.code_key) and _joinable(candidate, now):
            found = candidate
    if found is None:
        logger.info("Join by code refused: no open appointment has this code")
    return found


# ---------------------------------------------------------------------------------------------
# Moving, cancelling, finishing


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
    start = aware(starts_at, "start time")
    new_code: str | None = None
    async with db.session() as session:
        await lock_join_codes(session, db)
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
            new_code = issue_code(appointment, db.code_key, avoiding=others)
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
        # Write first, then read (see Database).
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
