"""Branches, topics, appointments and the audit log on a real database: SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, select

from server.storage import (
    ActorKind,
    Appointment,
    AppointmentStatus,
    Channel,
    Database,
    DuplicateError,
    InvalidValueError,
    LinkState,
    NotFoundError,
    User,
    appointment_by_code,
    appointment_by_token,
    appointment_for_link,
    cancel_appointment,
    create_appointment,
    create_booth,
    create_branch,
    create_topic,
    create_user,
    disable_user,
    get_appointment,
    get_booth,
    join_codes,
    join_window,
    list_appointments,
    list_audit,
    list_branches,
    list_topics,
    mark_appointment_done,
    move_appointment,
    purge_audit,
    record_audit,
    rename_branch,
    rename_topic,
    set_booth_branch,
    set_topic_active,
    set_user_topics,
    topics_for_user,
)
from server.storage.models import new_id
from tests.server.conftest import NOW, ManualClock, stored_bytes

PASSWORD = "correct horse battery staple"
START = NOW + timedelta(hours=2)  # 10:00
MINUTE = timedelta(minutes=1)


@pytest.fixture
async def advisor(db: Database) -> User:
    return await create_user(db, username="alice", password=PASSWORD, role="advisor")


async def book(
    db: Database, advisor: User, starts_at: datetime = START, minutes: int = 30
) -> tuple[Appointment, str, str]:
    return await create_appointment(
        db,
        advisor_id=advisor.id,
        starts_at=starts_at,
        duration_minutes=minutes,
        channel="own_device",
    )


@pytest.fixture
def fixed_codes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Make the code generator hand out the codes the test appends, in order."""
    codes: list[str] = []

    def next_code() -> str:
        return codes.pop(0)

    monkeypatch.setattr(join_codes, "new_join_code", next_code)
    yield codes
    assert codes == [], "not every planned code was drawn"


# --- branches and topics -----------------------------------------------------------------------


async def test_branches(db: Database) -> None:
    mitte = await create_branch(db, " Mitte ", "Berlin")
    await create_branch(db, "Altona", "Hamburg")
    assert mitte.name == "Mitte"
    assert mitte.created_at == NOW
    assert [b.name for b in await list_branches(db)] == ["Altona", "Mitte"]
    assert [b.name for b in await list_branches(db, region="Berlin")] == ["Mitte"]

    with pytest.raises(DuplicateError) as info:
        await create_branch(db, "Mitte", "Berlin")
    assert str(info.value) == "A branch named 'Mitte' already exists; choose another name."
    with pytest.raises(DuplicateError):
        await rename_branch(db, mitte.id, "Altona")
    renamed = await rename_branch(db, mitte.id, "Berlin-Mitte")
    assert renamed.name == "Berlin-Mitte"
    with pytest.raises(NotFoundError, match="No branch with id"):
        await rename_branch(db, new_id(), "Pankow")
    with pytest.raises(InvalidValueError, match="The region must not be empty"):
        await create_branch(db, "Pankow", " ")
    with pytest.raises(InvalidValueError, match="too long"):
        await create_branch(db, "x" * 101, "Berlin")


async def test_booths_belong_to_a_branch(db: Database) -> None:
    branch = await create_branch(db, "Mitte", "Berlin")
    booth, _ = await create_booth(db, "Booth 1")
    assert booth.branch_id is None
    await set_booth_branch(db, booth.id, branch.id)
    stored = await get_booth(db, booth.id)
    assert stored is not None
    assert stored.branch_id == branch.id
    with pytest.raises(NotFoundError, match="No branch"):
        await set_booth_branch(db, booth.id, new_id())
    with pytest.raises(NotFoundError, match="No booth"):
        await set_booth_branch(db, new_id(), branch.id)
    await set_booth_branch(db, booth.id, None)
    stored = await get_booth(db, booth.id)
    assert stored is not None
    assert stored.branch_id is None


async def test_topics_and_who_serves_them(db: Database, advisor: User) -> None:
    permit = await create_topic(db, "Residence permit")
    passport = await create_topic(db, "Passport")
    assert permit.active
    with pytest.raises(DuplicateError, match="A topic named 'Passport' already exists"):
        await create_topic(db, "Passport")

    await set_user_topics(db, advisor.id, [permit.id, passport.id, permit.id])
    assert [t.name for t in await topics_for_user(db, advisor.id)] == [
        "Passport",
        "Residence permit",
    ]
    await set_user_topics(db, advisor.id, [passport.id])
    assert [t.name for t in await topics_for_user(db, advisor.id)] == ["Passport"]

    with pytest.raises(NotFoundError, match="No topic with id 'nope'"):
        await set_user_topics(db, advisor.id, [permit.id, "nope"])
    assert [t.name for t in await topics_for_user(db, advisor.id)] == ["Passport"]  # unchanged
    with pytest.raises(NotFoundError, match="No user with id"):
        await set_user_topics(db, new_id(), [permit.id])

    renamed = await rename_topic(db, passport.id, "Passports and ID cards")
    assert renamed.name == "Passports and ID cards"
    off = await set_topic_active(db, permit.id, False)
    assert not off.active
    assert [t.name for t in await list_topics(db, include_inactive=False)] == [
        "Passports and ID cards"
    ]
    assert len(await list_topics(db)) == 2
    with pytest.raises(NotFoundError, match="No topic with id"):
        await set_topic_active(db, new_id(), True)

    await set_user_topics(db, advisor.id, [])
    assert await topics_for_user(db, advisor.id) == []


# --- appointments: creating and joining --------------------------------------------------------


async def test_create_and_join_within_the_window(
    db: Database, advisor: User, clock: ManualClock
) -> None:
    appointment, token, code = await book(db, advisor)
    assert appointment.status is AppointmentStatus.SCHEDULED
    assert appointment.channel is Channel.OWN_DEVICE
    assert appointment.starts_at == START
    assert appointment.created_at == appointment.updated_at == NOW
    assert len(token) == 32
    assert len(code) == 8
    assert code.isascii()
    assert code.isdigit()
    assert join_window(appointment) == (
        START - timedelta(minutes=15),
        START + timedelta(minutes=30 + 30),
    )

    # Before the window.
    clock.now = START - timedelta(minutes=15) - MINUTE
    assert await appointment_by_token(db, token) is None
    assert await appointment_by_code(db, code) is None
    # Its first moment, the middle and its last minute.
    for moment in (
        START - timedelta(minutes=15),
        START + timedelta(minutes=10),
        START + timedelta(minutes=59),
    ):
        clock.now = moment
        by_token = await appointment_by_token(db, token)
        by_code = await appointment_by_code(db, code)
        assert by_token is not None
        assert by_code is not None
        assert by_token.id == by_code.id == appointment.id
    # After the window.
    clock.now = START + timedelta(minutes=60)
    assert await appointment_by_token(db, token) is None
    assert await appointment_by_code(db, code) is None


async def _link(db: Database, token: str) -> tuple[LinkState, str | None]:
    state, appointment = await appointment_for_link(db, token)
    return state, appointment.id if appointment else None


async def test_cancelled_appointments_cannot_be_joined_and_done_ones_can_within_the_window(
    db: Database, advisor: User, clock: ManualClock
) -> None:
    first, token1, code1 = await book(db, advisor)
    second, token2, code2 = await book(db, advisor)
    clock.now = START
    cancelled = await cancel_appointment(db, first.id)
    assert cancelled.status is AppointmentStatus.CANCELLED
    assert cancelled.updated_at == START
    assert (await cancel_appointment(db, first.id)).status is AppointmentStatus.CANCELLED
    assert await appointment_by_token(db, token1) is None
    assert await appointment_by_code(db, code1) is None

    assert await _link(db, token1) == (LinkState.CANCELLED, cancelled.id)

    # The call took place; the citizen may come back (a dropped call) until the window closes.
    done = await mark_appointment_done(db, second.id)
    assert done.status is AppointmentStatus.DONE
    assert (await appointment_by_token(db, token2) or first).id == done.id
    assert (await appointment_by_code(db, code2) or first).id == done.id
    clock.now = join_window(done)[1]
    assert await appointment_by_token(db, token2) is None
    assert await appointment_by_code(db, code2) is None
    assert await _link(db, token2) == (LinkState.OVER, done.id)
    clock.now = join_window(done)[0] - timedelta(seconds=1)
    assert await _link(db, token2) == (LinkState.TOO_EARLY, done.id)
    assert await _link(db, "x" * 43) == (LinkState.UNKNOWN, None)
    clock.now = START

    with pytest.raises(InvalidValueError, match="is done already"):
        await cancel_appointment(db, second.id)
    with pytest.raises(InvalidValueError, match="only a scheduled appointment can be moved"):
        await move_appointment(db, first.id, starts_at=START + timedelta(hours=1))
    with pytest.raises(NotFoundError, match="No appointment with id"):
        await cancel_appointment(db, new_id())


GARBAGE = [
    "",
    "abc",
    "x" * 10_240,
    "1" * 10_240,
    "12345678 ",
    " 12345678",
    "12345678\n",
    "1234567",
    "123456789",
    "１２３４５６７８",  # full-width digits  # noqa: RUF001
    "١٢٣٤٥٦٧٨",  # Arabic-Indic digits
    "\ud800" * 8,
    "\x00" * 32,
    "é" * 32,
    "A" * 31,
    "A" * 33,
    "A" * 32,  # well-formed, unknown
]


async def test_garbage_tokens_and_codes_find_nothing(
    db: Database, advisor: User, clock: ManualClock
) -> None:
    _, token, code = await book(db, advisor)
    clock.now = START
    for candidate in [*GARBAGE, token.upper() if token.upper() != token else token + "x"]:
        assert await appointment_by_token(db, candidate) is None, candidate
        assert await appointment_by_code(db, candidate) is None, candidate
    wrong = f"{(int(code) + 1) % 10**8:08d}"
    assert await appointment_by_code(db, wrong) is None
    assert await appointment_by_code(db, token) is None
    assert await appointment_by_token(db, code) is None
    assert await appointment_by_token(db, token) is not None
    assert await appointment_by_code(db, code) is not None


async def test_token_and_code_are_not_stored(db: Database, advisor: User, db_url: str) -> None:
    appointment, token, code = await book(db, advisor)
    await db.close()
    stored = await stored_bytes(db_url)
    assert token.encode() not in stored
    assert code.encode() not in stored
    # The check reads real data: the token's hash and the code's salt are there.
    assert hashlib.sha256(token.encode()).hexdigest().encode() in stored
    assert appointment.join_code_salt.encode() in stored


async def test_overlapping_appointments_never_share_a_code(
    db: Database, advisor: User, clock: ManualClock, fixed_codes: list[str]
) -> None:
    fixed_codes += ["11111111", "11111111", "22222222"]
    first, _, code1 = await book(db, advisor, START)
    # Overlapping windows: 10:00-10:30 and 11:00-11:30 (windows 9:45-11:00 and 10:45-12:00).
    second, _, code2 = await book(db, advisor, START + timedelta(hours=1))
    assert code1 == "11111111"
    assert code2 == "22222222"

    clock.now = START + timedelta(minutes=50)  # both windows open
    found1 = await appointment_by_code(db, code1)
    found2 = await appointment_by_code(db, code2)
    assert found1 is not None
    assert found2 is not None
    assert (found1.id, found2.id) == (first.id, second.id)


async def test_separate_windows_may_share_a_code(
    db: Database, advisor: User, clock: ManualClock, fixed_codes: list[str]
) -> None:
    fixed_codes += ["11111111", "11111111"]
    first, _, code1 = await book(db, advisor, START)
    later, _, code2 = await book(db, advisor, START + timedelta(hours=3))
    assert code1 == code2 == "11111111"
    clock.now = START
    found = await appointment_by_code(db, code1)
    assert found is not None
    assert found.id == first.id
    clock.now = START + timedelta(hours=3)
    found = await appointment_by_code(db, code1)
    assert found is not None
    assert found.id == later.id


async def test_a_cancelled_appointment_frees_its_code(
    db: Database, advisor: User, fixed_codes: list[str]
) -> None:
    fixed_codes += ["11111111", "11111111"]
    first, _, _ = await book(db, advisor)
    await cancel_appointment(db, first.id)
    _, _, code = await book(db, advisor)
    assert code == "11111111"


async def test_no_free_code_is_a_clear_error(
    db: Database, advisor: User, fixed_codes: list[str]
) -> None:
    fixed_codes += ["11111111"] * 22
    await book(db, advisor)
    with pytest.raises(DuplicateError, match="No free join code found in 20 attempts"):
        await book(db, advisor)
    assert len(await list_appointments(db)) == 1


async def test_concurrent_bookings_get_distinct_codes(db: Database, advisor: User) -> None:
    results = await asyncio.gather(*(book(db, advisor) for _ in range(20)))
    assert len({code for _, _, code in results}) == 20
    assert len({token for _, token, _ in results}) == 20


# --- appointments: validation ------------------------------------------------------------------


async def test_booth_appointments_need_a_branch(db: Database, advisor: User) -> None:
    with pytest.raises(InvalidValueError) as info:
        await create_appointment(
            db, advisor_id=advisor.id, starts_at=START, duration_minutes=30, channel="booth"
        )
    assert str(info.value) == (
        "An appointment in a booth needs a branch: choose the branch whose booth the citizen "
        "will use, or the channel 'either'."
    )
    branch = await create_branch(db, "Mitte", "Berlin")
    appointment, _, _ = await create_appointment(
        db,
        advisor_id=advisor.id,
        starts_at=START,
        duration_minutes=30,
        channel=Channel.BOOTH,
        branch_id=branch.id,
    )
    assert appointment.branch_id == branch.id
    with pytest.raises(NotFoundError, match="No branch with id"):
        await create_appointment(
            db,
            advisor_id=advisor.id,
            starts_at=START,
            duration_minutes=30,
            channel="booth",
            branch_id=new_id(),
        )


@pytest.mark.parametrize("minutes", [4, 241, 0, -5, True])
async def test_duration_bounds(db: Database, advisor: User, minutes: int) -> None:
    with pytest.raises(InvalidValueError, match="lasts 5 to 240 minutes"):
        await book(db, advisor, minutes=minutes)


@pytest.mark.parametrize("minutes", [5, 240])
async def test_duration_limits_are_allowed(db: Database, advisor: User, minutes: int) -> None:
    appointment, _, _ = await book(db, advisor, minutes=minutes)
    assert appointment.duration_minutes == minutes


async def test_other_invalid_appointments(db: Database, advisor: User) -> None:
    with pytest.raises(InvalidValueError, match="Unknown channel 'phone'"):
        await create_appointment(
            db, advisor_id=advisor.id, starts_at=START, duration_minutes=30, channel="phone"
        )
    with pytest.raises(InvalidValueError, match="no time zone"):
        await book(db, advisor, starts_at=START.replace(tzinfo=None))
    with pytest.raises(InvalidValueError, match="would already be over"):
        await book(db, advisor, starts_at=NOW - timedelta(hours=2))
    with pytest.raises(NotFoundError, match="No user with id"):
        await create_appointment(
            db, advisor_id=new_id(), starts_at=START, duration_minutes=30, channel="either"
        )
    with pytest.raises(InvalidValueError, match="at most 80 characters"):
        await create_appointment(
            db,
            advisor_id=advisor.id,
            starts_at=START,
            duration_minutes=30,
            channel="either",
            citizen_label="x" * 81,
        )
    topic = await create_topic(db, "Passport")
    await set_topic_active(db, topic.id, False)
    with pytest.raises(InvalidValueError, match="'Passport' is not offered"):
        await create_appointment(
            db,
            advisor_id=advisor.id,
            starts_at=START,
            duration_minutes=30,
            channel="either",
            topic_id=topic.id,
        )
    await disable_user(db, advisor.id)
    with pytest.raises(InvalidValueError, match="'alice' is disabled"):
        await book(db, advisor)
    assert await list_appointments(db, include_cancelled=True) == []


async def test_label_is_optional_and_trimmed(db: Database, advisor: User) -> None:
    appointment, _, _ = await create_appointment(
        db,
        advisor_id=advisor.id,
        starts_at=START,
        duration_minutes=30,
        channel="either",
        citizen_label="  Ref. 2026-17  ",
    )
    assert appointment.citizen_label == "Ref. 2026-17"
    assert "Ref." not in repr(appointment)
    plain, _, _ = await book(db, advisor)
    assert plain.citizen_label is None


# --- appointments: moving and listing ----------------------------------------------------------


async def test_move_keeps_token_and_code(db: Database, advisor: User, clock: ManualClock) -> None:
    appointment, token, code = await book(db, advisor)
    later = START + timedelta(days=1)
    clock.advance(MINUTE)
    moved, new_code = await move_appointment(db, appointment.id, starts_at=later)
    assert new_code is None
    assert moved.starts_at == later
    assert moved.duration_minutes == 30
    assert moved.updated_at == NOW + MINUTE

    clock.now = START
    assert await appointment_by_token(db, token) is None
    clock.now = later
    by_token = await appointment_by_token(db, token)
    by_code = await appointment_by_code(db, code)
    assert by_token is not None
    assert by_code is not None
    assert by_token.id == by_code.id == appointment.id

    longer, _ = await move_appointment(db, appointment.id, starts_at=later, duration_minutes=90)
    assert longer.duration_minutes == 90
    with pytest.raises(InvalidValueError, match="lasts 5 to 240 minutes"):
        await move_appointment(db, appointment.id, starts_at=later, duration_minutes=500)
    with pytest.raises(NotFoundError, match="No appointment with id"):
        await move_appointment(db, new_id(), starts_at=later)


async def test_move_into_a_busy_window_issues_a_new_code(
    db: Database, advisor: User, clock: ManualClock, fixed_codes: list[str]
) -> None:
    fixed_codes += ["11111111", "11111111", "33333333"]
    tomorrow = START + timedelta(days=1)
    moving, token, old_code = await book(db, advisor, START)
    staying, _, code = await book(db, advisor, tomorrow)
    assert old_code == code == "11111111"  # windows far apart

    moved, new_code = await move_appointment(db, moving.id, starts_at=tomorrow)
    assert new_code == "33333333"
    clock.now = tomorrow
    by_new = await appointment_by_code(db, new_code)
    by_old = await appointment_by_code(db, old_code)
    by_token = await appointment_by_token(db, token)
    assert by_new is not None
    assert by_old is not None
    assert by_token is not None
    assert (by_new.id, by_old.id, by_token.id) == (moved.id, staying.id, moved.id)


async def test_list_appointments(db: Database, advisor: User) -> None:
    bob = await create_user(db, username="bob", password=PASSWORD, role="advisor")
    late, _, _ = await book(db, advisor, START + timedelta(hours=5))
    early, _, _ = await book(db, bob, START)
    tomorrow, _, _ = await book(db, advisor, START + timedelta(days=1))
    gone, _, _ = await book(db, advisor, START + timedelta(hours=1))
    await cancel_appointment(db, gone.id)

    assert [a.id for a in await list_appointments(db)] == [early.id, late.id, tomorrow.id]
    assert [a.id for a in await list_appointments(db, advisor_id=advisor.id)] == [
        late.id,
        tomorrow.id,
    ]
    today = await list_appointments(db, advisor_id=advisor.id, day=date(2026, 3, 2))
    assert [a.id for a in today] == [late.id]
    everything = await list_appointments(db, day=date(2026, 3, 2), include_cancelled=True)
    assert [a.id for a in everything] == [early.id, gone.id, late.id]
    # 3 March in Tokyo runs from 15:00 UTC on 2 March to 15:00 UTC on 3 March.
    tokyo = await list_appointments(db, day=date(2026, 3, 3), tz=ZoneInfo("Asia/Tokyo"))
    assert [a.id for a in tokyo] == [late.id, tomorrow.id]
    stored = await get_appointment(db, gone.id)
    assert stored is not None
    assert stored.status is AppointmentStatus.CANCELLED


async def test_deleting_the_advisor_deletes_the_appointments(db: Database, advisor: User) -> None:
    await book(db, advisor)
    async with db.session() as session:
        await session.execute(delete(User).where(User.id == advisor.id))
        await session.commit()
        assert await session.scalar(select(Appointment)) is None


# --- audit log ---------------------------------------------------------------------------------


async def test_audit_record_list_and_purge(db: Database, clock: ManualClock) -> None:
    old = await record_audit(
        db, actor_kind="system", actor_id=None, action="server.start", detail='{"v": "0.1"}'
    )
    assert old.at == NOW
    clock.advance(timedelta(days=40))
    recent = await record_audit(
        db,
        actor_kind=ActorKind.USER,
        actor_id=new_id(),
        action="appointment.create",
        subject=new_id(),
    )
    clock.advance(MINUTE)
    newest = await record_audit(db, actor_kind="booth", actor_id=new_id(), action="booth.login")

    assert [e.id for e in await list_audit(db)] == [newest.id, recent.id, old.id]
    assert [e.id for e in await list_audit(db, limit=1)] == [newest.id]
    assert [e.id for e in await list_audit(db, before=newest.at)] == [recent.id, old.id]
    listed = (await list_audit(db, limit=1, before=recent.at))[0]
    assert listed.actor_kind is ActorKind.SYSTEM
    assert listed.detail == '{"v": "0.1"}'

    assert await purge_audit(db, older_than=timedelta(days=30)) == 1
    assert [e.id for e in await list_audit(db)] == [newest.id, recent.id]
    assert await purge_audit(db, older_than=timedelta(days=30)) == 0
    with pytest.raises(InvalidValueError, match="positive time"):
        await purge_audit(db, older_than=timedelta(0))


async def test_invalid_audit_events(db: Database) -> None:
    with pytest.raises(InvalidValueError, match="Unknown actor kind 'robot'"):
        await record_audit(db, actor_kind="robot", actor_id=None, action="x")
    with pytest.raises(InvalidValueError, match="at most 500 characters"):
        await record_audit(db, actor_kind="system", actor_id=None, action="x", detail="x" * 501)
    with pytest.raises(InvalidValueError, match="must not be empty"):
        await record_audit(db, actor_kind="system", actor_id=None, action=" ")
    with pytest.raises(InvalidValueError, match="use 1 to 1000"):
        await list_audit(db, limit=0)
    assert await list_audit(db) == []
