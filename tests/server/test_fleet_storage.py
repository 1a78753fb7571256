"""Fleet storage on SQLite and PostgreSQL: enrolment tokens are hashed and single use, health
reports are kept and purged."""

from __future__ import annotations

from datetime import timedelta

import pytest

from server.storage import (
    Database,
    EnrolmentError,
    add_booth_for_enrolment,
    enrol_booth,
    get_booth,
    health_since,
    new_enrolment_token,
    purge_health,
    record_health,
    revoke_booth,
)
from server.storage.booths import ENROLMENT_REPEAT_WINDOW
from tests.server.conftest import ManualClock, stored_bytes

KEY = "ab" * 32


async def test_tokens_are_single_use_and_not_stored(db: Database, db_url: str) -> None:
    new = await add_booth_for_enrolment(db, "Booth 1", branch_id=None, ttl=timedelta(hours=1))
    booth, _ = await enrol_booth(db, new.token, KEY, {"model": "Pi 5"})
    assert booth.public_key == KEY
    with pytest.raises(EnrolmentError, match="already used"):
        await enrol_booth(db, new.token, "cd" * 32, {})
    stored = await get_booth(db, booth.id)
    assert stored is not None
    assert stored.public_key == KEY
    assert new.token.encode() not in await stored_bytes(db_url)


async def test_a_booth_that_did_not_get_its_answer_asks_again(db: Database) -> None:
    """The answer to an enrolment can be lost (a timeout on a slow link: the server spent the
    token, the booth never heard). The same token with the same key again gets the same booth,
    for an hour; another key, a later enrolment of the booth, or its revocation end that."""
    clock = db._clock
    assert isinstance(clock, ManualClock)
    new = await add_booth_for_enrolment(db, "Booth R", branch_id=None, ttl=timedelta(hours=1))
    booth, repeated = await enrol_booth(db, new.token, KEY, {"model": "Pi 5"})
    assert repeated is False
    clock.advance(timedelta(seconds=30))
    again, repeated = await enrol_booth(db, new.token, KEY, {"model": "something else"})
    assert (again.id, again.name, repeated) == (booth.id, "Booth R", True)
    stored = await get_booth(db, booth.id)
    assert stored is not None and stored.enrolled_at == booth.enrolled_at
    assert stored.hardware == booth.hardware  # nothing changed
    # Another key with the spent token: refused, as before.
    with pytest.raises(EnrolmentError, match="already used"):
        await enrol_booth(db, new.token, "cd" * 32, {})
    # After the window: refused.
    clock.advance(ENROLMENT_REPEAT_WINDOW)
    with pytest.raises(EnrolmentError, match="already used"):
        await enrol_booth(db, new.token, KEY, {})

    # Enrolled again since (a new code, the same device): the old code is spent for good.
    other = await add_booth_for_enrolment(db, "Booth S", branch_id=None, ttl=timedelta(hours=1))
    await enrol_booth(db, other.token, "ef" * 32, {})
    renewed, _ = await new_enrolment_token(db, other.booth.id, ttl=timedelta(hours=1))
    clock.advance(timedelta(seconds=1))
    await enrol_booth(db, renewed, "ef" * 32, {})
    with pytest.raises(EnrolmentError, match="already used"):
        await enrol_booth(db, other.token, "ef" * 32, {})
    # Revoked: refused.
    third = await add_booth_for_enrolment(db, "Booth T", branch_id=None, ttl=timedelta(hours=1))
    await enrol_booth(db, third.token, "12" * 32, {})
    await revoke_booth(db, third.booth.id)
    with pytest.raises(EnrolmentError, match="already used"):
        await enrol_booth(db, third.token, "12" * 32, {})


async def test_health_reports_are_kept_and_purged(db: Database) -> None:
    new = await add_booth_for_enrolment(db, "Booth 2", branch_id=None, ttl=timedelta(hours=1))
    clock = db._clock
    assert isinstance(clock, ManualClock)
    start = db.now()
    await record_health(db, new.booth.id, state="idle", data={"cpu_temp_c": 51.5})
    clock.advance(timedelta(hours=30))
    await record_health(db, new.booth.id, state="in_call", data={"cpu_temp_c": 60.0})
    reports = await health_since(db, new.booth.id, start)
    assert [r.state for r in reports] == ["idle", "in_call"]
    assert await purge_health(db, older_than=timedelta(hours=24)) == 1
    assert [r.state for r in await health_since(db, new.booth.id, start)] == ["in_call"]
