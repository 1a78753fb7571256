"""A service account's idempotency keys in the database: claimed once, answered again, freed,
taken over when the request that claimed it died without an answer, forgotten after a day.
The abuses: the same key sent twice at once (one goes through), a key reused for another
request (refused), a key left half-done by a dead server (not a 409 for good)."""

from __future__ import annotations

from datetime import timedelta

from server.storage import (
    IDEMPOTENCY_RETENTION,
    Database,
    begin_idempotent,
    create_service_account,
    drop_idempotent,
    finish_idempotent,
    purge_idempotency,
)
from server.storage.integrations import ABANDONED_AFTER
from tests.server.conftest import ManualClock


async def test_a_key_is_claimed_once_and_its_answer_given_again(db: Database) -> None:
    account = (await create_service_account(db, "Booking")).id
    assert (await begin_idempotent(db, account, "k1", "hash-a")).outcome == "new"
    # A copy sent at once: told to wait, not let through.
    assert (await begin_idempotent(db, account, "k1", "hash-a")).outcome == "busy"
    await finish_idempotent(db, account, "k1", status=201, response="sealed answer")
    again = await begin_idempotent(db, account, "k1", "hash-a")
    assert (again.outcome, again.status, again.response) == ("replay", 201, "sealed answer")
    # Another request under the same key: refused, whatever became of the first.
    assert (await begin_idempotent(db, account, "k1", "hash-b")).outcome == "conflict"
    # Keys are the account's own: another account's same key is another key.
    other = (await create_service_account(db, "Other system")).id
    assert (await begin_idempotent(db, other, "k1", "hash-b")).outcome == "new"


async def test_a_failed_write_frees_its_key(db: Database) -> None:
    account = (await create_service_account(db, "Booking")).id
    assert (await begin_idempotent(db, account, "k1", "hash-a")).outcome == "new"
    await drop_idempotent(db, account, "k1")
    assert (await begin_idempotent(db, account, "k1", "hash-a")).outcome == "new"


async def test_a_key_whose_server_died_is_taken_over_after_a_while(
    db: Database, clock: ManualClock
) -> None:
    account = (await create_service_account(db, "Booking")).id
    assert (await begin_idempotent(db, account, "k1", "hash-a")).outcome == "new"
    # Its server died before the answer: busy for a while (the request may still run) ...
    clock.advance(ABANDONED_AFTER - timedelta(seconds=1))
    assert (await begin_idempotent(db, account, "k1", "hash-a")).outcome == "busy"
    # ... then the same request, sent again, takes the key over, once.
    clock.advance(timedelta(seconds=2))
    assert (await begin_idempotent(db, account, "k1", "hash-b")).outcome == "conflict"
    assert (await begin_idempotent(db, account, "k1", "hash-a")).outcome == "new"
    assert (await begin_idempotent(db, account, "k1", "hash-a")).outcome == "busy"
    await finish_idempotent(db, account, "k1", status=201, response="answer")
    assert (await begin_idempotent(db, account, "k1", "hash-a")).outcome == "replay"


async def test_keys_and_their_answers_are_forgotten_after_a_day(
    db: Database, clock: ManualClock
) -> None:
    account = (await create_service_account(db, "Booking")).id
    await begin_idempotent(db, account, "old", "hash-a")
    await finish_idempotent(db, account, "old", status=201, response="answer")
    clock.advance(IDEMPOTENCY_RETENTION - timedelta(hours=1))
    await begin_idempotent(db, account, "young", "hash-a")
    assert await purge_idempotency(db, older_than=IDEMPOTENCY_RETENTION) == 0
    clock.advance(timedelta(hours=2))
    assert await purge_idempotency(db, older_than=IDEMPOTENCY_RETENTION) == 1
    # The old key is free again; the young one still answers.
    assert (await begin_idempotent(db, account, "old", "hash-b")).outcome == "new"
    assert (await begin_idempotent(db, account, "young", "hash-b")).outcome == "conflict"
