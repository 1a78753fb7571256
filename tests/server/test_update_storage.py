"""Booth updates as stored, on SQLite and PostgreSQL: bundles by digest (the same file once),
rollouts with their booths in stages, one rollout at a time, state changes that never revive
an ended rollout, and a bundle kept while a rollout uses it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from server.storage import ConflictError, Database, DuplicateError, NotFoundError
from server.storage.updates import (
    NewBundle,
    RolloutPolicy,
    add_bundle,
    bundle_by_sha256,
    create_rollout,
    delete_bundle,
    get_rollout,
    list_bundles,
    list_rollouts,
    rollout_booths,
    rollouts_in,
    save_rollout_booths,
    set_rollout_state,
)
from tests.server.conftest import ManualClock
from tests.server.postgres import create_database, drop_database

POLICY = RolloutPolicy(max_failure_share=0.2, health_timeout_seconds=1800, max_parallel=50)


def _facts(version: str = "2.0.0", digest: str = "a") -> NewBundle:
    return NewBundle(
        version=version,
        compatible="videobooth-generic-arm64",
        signer="O = Agency, CN = booth releases",
        sha256=digest * 64,
        size=123_456_789,
    )


async def test_bundles_by_digest_and_newest_first(db: Database, clock: ManualClock) -> None:
    first = await add_bundle(db, _facts("2.0.0", "a"), uploaded_by=None)
    clock.advance(timedelta(minutes=1))
    second = await add_bundle(db, _facts("2.1.0", "b"), uploaded_by="u1")
    assert [b.id for b in await list_bundles(db)] == [second.id, first.id]
    found = await bundle_by_sha256(db, "a" * 64)
    assert found is not None and (found.version, found.size) == ("2.0.0", 123_456_789)
    with pytest.raises(DuplicateError, match=r"version 2\.0\.0"):
        await add_bundle(db, _facts("2.0.0", "a"), uploaded_by=None)


async def test_a_rollout_with_its_booths_in_stages(db: Database) -> None:
    bundle = await add_bundle(db, _facts(), uploaded_by=None)
    rollout = await create_rollout(
        db, bundle.id, [["c1"], ["b1", "b2"], ["b3"]], POLICY, created_by="admin"
    )
    stored = await get_rollout(db, rollout.id)
    assert stored is not None and (stored.state, stored.stage) == ("running", 0)
    assert [(t.booth_id, t.stage, t.progress) for t in await rollout_booths(db, rollout.id)] == [
        ("c1", 0, "pending"),
        ("b1", 1, "pending"),
        ("b2", 1, "pending"),
        ("b3", 2, "pending"),
    ]
    assert [r.id for r in await rollouts_in(db, ["running", "paused"])] == [rollout.id]


async def test_one_rollout_at_a_time(db: Database) -> None:
    bundle = await add_bundle(db, _facts(), uploaded_by=None)
    first = await create_rollout(db, bundle.id, [["c1"]], POLICY, created_by=None)
    with pytest.raises(ConflictError, match="another rollout is running or paused"):
        await create_rollout(db, bundle.id, [["c2"]], POLICY, created_by=None)
    assert await set_rollout_state(db, first.id, "cancelled", expect=["running", "paused"])
    second = await create_rollout(db, bundle.id, [["c2"]], POLICY, created_by=None)
    assert {r.id for r in await list_rollouts(db)} == {first.id, second.id}


async def test_a_state_change_never_revives_an_ended_rollout(db: Database) -> None:
    bundle = await add_bundle(db, _facts(), uploaded_by=None)
    rollout = await create_rollout(db, bundle.id, [["c1"]], POLICY, created_by=None)
    assert await set_rollout_state(
        db, rollout.id, "stopped", expect=["running"], reason="1 of 1 failed"
    )
    # A pause (or resume) that arrives afterwards changes nothing.
    assert not await set_rollout_state(db, rollout.id, "paused", expect=["running"])
    stored = await get_rollout(db, rollout.id)
    assert stored is not None and (stored.state, stored.reason) == ("stopped", "1 of 1 failed")


async def test_booths_progress_is_saved(db: Database, clock: ManualClock) -> None:
    bundle = await add_bundle(db, _facts(), uploaded_by=None)
    rollout = await create_rollout(db, bundle.id, [["c1"], ["b1"]], POLICY, created_by=None)
    await save_rollout_booths(
        db, rollout.id, [("c1", "installing", 40, "Copying image to rootfs.1", clock())]
    )
    c1, b1 = await rollout_booths(db, rollout.id)
    assert (c1.progress, c1.percent, c1.detail, c1.since) == (
        "installing",
        40,
        "Copying image to rootfs.1",
        clock(),
    )
    assert b1.progress == "pending"


async def test_a_bundle_stays_while_a_rollout_uses_it(db: Database) -> None:
    used = await add_bundle(db, _facts("2.0.0", "a"), uploaded_by=None)
    unused = await add_bundle(db, _facts("2.1.0", "b"), uploaded_by=None)
    await create_rollout(db, used.id, [["c1"]], POLICY, created_by=None)
    with pytest.raises(ConflictError, match="a rollout uses this bundle"):
        await delete_bundle(db, used.id)
    await delete_bundle(db, unused.id)
    assert [b.id for b in await list_bundles(db)] == [used.id]
    with pytest.raises(NotFoundError):
        await delete_bundle(db, unused.id)
    with pytest.raises(NotFoundError):
        await create_rollout(db, unused.id, [["c1"]], POLICY, created_by=None)


@pytest.fixture
async def postgres_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A migrated PostgreSQL database of its own (the nodes of a cluster share one)."""
    url = await create_database(request.getfixturevalue("postgres_server"), migrated=True)
    yield url
    await drop_database(url)


async def test_rollouts_started_at_once_on_two_nodes_give_one(postgres_url: str) -> None:
    """Two nodes see no rollout active and both start one: the database keeps one of them
    (the other is told, as for a rollout already running). A cluster runs on PostgreSQL; the
    one-process server on SQLite starts rollouts one at a time (Updates.start's lock)."""
    node1, node2 = await Database.open(postgres_url), await Database.open(postgres_url)
    try:
        bundle = await add_bundle(node1, _facts(), uploaded_by=None)
        for attempt in range(5):
            results = await asyncio.gather(
                create_rollout(node1, bundle.id, [["c1"]], POLICY, created_by=None),
                create_rollout(node2, bundle.id, [["c1"]], POLICY, created_by=None),
                return_exceptions=True,
            )
            started = [r for r in results if not isinstance(r, BaseException)]
            refused = [r for r in results if isinstance(r, ConflictError)]
            assert (len(started), len(refused)) == (1, 1), results
            active = await rollouts_in(node1, ["running", "paused"])
            assert [r.id for r in active] == [started[0].id], attempt
            assert await set_rollout_state(node1, active[0].id, "done", expect=["running"])
    finally:
        await node1.close()
        await node2.close()
