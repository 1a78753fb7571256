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
    purge_health,
    record_health,
)
from tests.server.conftest import ManualClock, stored_bytes

KEY = "ab" * 32


async def test_tokens_are_single_use_and_not_stored(db: Database, db_url: str) -> None:
    new = await add_booth_for_enrolment(db, "Booth 1", branch_id=None, ttl=timedelta(hours=1))
    booth = await enrol_booth(db, new.token, KEY, {"model": "Pi 5"})
    assert booth.public_key == KEY
    with pytest.raises(EnrolmentError, match="already used"):
        await enrol_booth(db, new.token, "cd" * 32, {})
    stored = await get_booth(db, booth.id)
    assert stored is not None
    assert stored.public_key == KEY
    assert new.token.encode() not in await stored_bytes(db_url)


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
