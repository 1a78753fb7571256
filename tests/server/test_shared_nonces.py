"""Booth login challenges on several nodes: a nonce one node issued is good on another (signed
with the key they share), once only across all of them (spent in the shared database), only for
its booth and only for a minute. The abuses: replaying a recorded header on another node,
forging or editing a nonce, using a nonce issued to another booth, using an old one."""

from __future__ import annotations

import secrets
from datetime import timedelta

from server.boothauth import NONCE_SECONDS, SharedNonces
from server.signed import sign
from server.storage import Database, purge_spent_nonces
from tests.server.conftest import ManualClock

KEY = secrets.token_bytes(32)
BOOTH = "a" * 32


def _nodes(db: Database, clock: ManualClock) -> tuple[SharedNonces, SharedNonces]:
    def now() -> float:
        return clock.now.timestamp()

    return SharedNonces(KEY, db, clock=now), SharedNonces(KEY, db, clock=now)


async def test_a_nonce_from_one_node_is_good_once_on_any(db: Database, clock: ManualClock) -> None:
    node1, node2 = _nodes(db, clock)
    nonce = node1.issue(BOOTH)
    assert await node2.spend(nonce, BOOTH)
    # Replayed, on either node: refused.
    assert not await node1.spend(nonce, BOOTH)
    assert not await node2.spend(nonce, BOOTH)


async def test_a_nonce_is_for_its_booth_only(db: Database, clock: ManualClock) -> None:
    node1, node2 = _nodes(db, clock)
    assert not await node2.spend(node1.issue(BOOTH), "b" * 32)


async def test_an_old_nonce_is_refused(db: Database, clock: ManualClock) -> None:
    node1, node2 = _nodes(db, clock)
    nonce = node1.issue(BOOTH)
    clock.advance(timedelta(seconds=NONCE_SECONDS + 1))
    assert not await node2.spend(nonce, BOOTH)


async def test_forged_and_edited_nonces_are_refused(db: Database, clock: ManualClock) -> None:
    node1, node2 = _nodes(db, clock)
    expires = round(clock.now.timestamp() + 30)
    forged = sign(secrets.token_bytes(32), "n1", {"b": BOOTH, "e": expires, "r": "x"})
    assert not await node2.spend(forged, BOOTH)
    purpose, body, mac = node1.issue(BOOTH).split(".")
    edited = f"{purpose}.{body[:-2]}{'AA' if body[-2:] != 'AA' else 'BB'}.{mac}"
    assert not await node2.spend(edited, BOOTH)
    assert not await node2.spend("", BOOTH)
    assert not await node2.spend("x" * 5000, BOOTH)


async def test_spent_nonces_are_purged_when_expired(db: Database, clock: ManualClock) -> None:
    node1, _ = _nodes(db, clock)
    assert await node1.spend(node1.issue(BOOTH), BOOTH)
    assert await purge_spent_nonces(db) == 0
    clock.advance(timedelta(seconds=NONCE_SECONDS + 1))
    assert await purge_spent_nonces(db) == 1
