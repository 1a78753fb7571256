"""Walk-in queues per topic: who sees whom, positions and estimated waits, and the topics API."""

from __future__ import annotations

from server.keys import DATABASE
from server.storage import authenticate_user, create_topic, create_user, set_user_topics
from server.switchboard import DEFAULT_WAIT_SECONDS
from tests.server.conftest import PASSWORD, Harness


async def test_queues_per_topic_positions_and_estimates(harness: Harness) -> None:
    db = harness.app[DATABASE]
    residence = await create_topic(db, "Residence permit")
    benefits = await create_topic(db, "Child benefit")
    for name, topic in (("alice", residence), ("bob", benefits)):
        await harness.add_advisor(name)
        user = await authenticate_user(db, name, PASSWORD)
        assert user is not None
        await set_user_topics(db, user.id, [topic.id])
    alice, bob = await harness.advisor("alice"), await harness.advisor("bob")
    await alice.receive_queue()
    await bob.receive_queue()

    booths = [await harness.booth(await harness.add_booth(f"Booth {n}")) for n in (1, 2, 3)]
    for booth, topic in zip(booths, (residence, benefits, residence), strict=True):
        await booth.send(type="call_request", topic_id=topic.id)
        await booth.receive_type("call_waiting")

    await alice.expect_silence()  # taking in every queue update until none comes
    await bob.expect_silence()
    alice_sees, bob_sees = alice.queue.waiting, bob.queue.waiting
    assert [w["caller_name"] for w in alice_sees] == ["Booth 1", "Booth 3"]
    assert {w["topic_name"] for w in alice_sees} == {"Residence permit"}
    assert [w["caller_name"] for w in bob_sees] == ["Booth 2"]

    async def position(booth: object) -> tuple[int, int]:
        place = (0, 0)
        while True:
            try:
                message = await booth.receive(0.3)  # type: ignore[attr-defined]
            except TimeoutError:
                return place
            if message["type"] == "queue_position":
                place = (message["position"], message["estimated_wait_seconds"])

    wait = round(DEFAULT_WAIT_SECONDS)
    assert await position(booths[0]) == (1, wait)
    assert await position(booths[1]) == (1, wait)  # first in its own topic's queue
    assert await position(booths[2]) == (2, 2 * wait)

    await alice.send(type="call_accept", session_id=alice_sees[0]["session_id"])
    await booths[0].receive_type("call_started")
    place, estimate = await position(booths[2])
    assert place == 1  # moved up
    assert estimate < wait  # the first accept came quickly, so the estimate fell


async def test_unknown_topic_is_refused(harness: Harness) -> None:
    booth = await harness.booth(await harness.add_booth("Booth 1"))
    await booth.send(type="call_request", topic_id="no-such-topic")
    assert (await booth.receive_type("error"))["code"] == "unknown_topic"


async def test_topics_api(harness: Harness) -> None:
    db = harness.app[DATABASE]
    await create_user(db, username="admin1", password=PASSWORD, role="admin")
    await harness.add_advisor("alice")
    admin = await harness.login("admin1")
    try:
        response = await admin.post(harness.url("/api/v1/topics"), json={"name": "Pensions"})
        assert response.status == 201
        topic = await response.json()
        alice = await authenticate_user(db, "alice", PASSWORD)
        assert alice is not None
        response = await admin.put(
            harness.url(f"/api/v1/advisors/{alice.id}/topics"), json={"topic_ids": [topic["id"]]}
        )
        assert response.status == 200
        listed = await (await admin.get(harness.url("/api/v1/topics"))).json()
        assert [t["name"] for t in listed["topics"]] == ["Pensions"]
        response = await admin.post(harness.url("/api/v1/topics"), json={"name": "Pensions"})
        assert response.status == 409
    finally:
        await admin.close()
