"""A third participant invited by link (an interpreter), and walk-ins from a citizen's browser
in queues per topic and region."""

from __future__ import annotations

from typing import Any

import aiohttp

from protocol import MAX_PARTICIPANTS
from server.keys import DATABASE, SWITCHBOARD
from server.storage import create_branch, create_topic, get_booth_by_name, set_booth_branch
from tests.server.conftest import Harness, MakeHarness, Peer


async def _active_call(harness: Harness) -> tuple[Peer, Peer, str]:
    await harness.add_advisor("alice")
    advisor = await harness.advisor("alice")
    booth = await harness.booth(await harness.add_booth("Booth A"))
    await booth.send(type="call_request")
    session_id = (await booth.receive_type("call_waiting"))["session_id"]
    await advisor.send(type="call_accept", session_id=session_id)
    await booth.receive_type("call_started")
    await advisor.receive_type("call_started")
    return booth, advisor, session_id


async def _invite(harness: Harness, session_id: str, label: str = "Interpreter") -> str:
    http = await harness.login("alice")
    async with http.post(
        harness.url(f"/api/v1/calls/{session_id}/invitations"), json={"label": label}
    ) as response:
        assert response.status == 201, await response.text()
        body: dict[str, Any] = await response.json()
    await http.close()
    assert body["link"].startswith("http") and "/join/" in body["link"]
    return str(body["link"].rsplit("/", 1)[1])


async def _guest(harness: Harness, token: str) -> Peer:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.post(harness.url("/api/v1/join"), json={"token": token}) as response:
        assert response.status == 200, await response.text()
        assert (await response.json())["kind"] == "invitation"
    ws = await http.ws_connect(harness.url("/api/v1/ws"))
    harness.peers.append(Peer(http, ws))
    return harness.peers[-1]


async def _admitted(harness: Harness, advisor: Peer, session_id: str, label: str) -> Peer:
    guest = await _guest(harness, await _invite(harness, session_id, label))
    welcome = await guest.receive_type("welcome")
    await guest.send(type="lobby_join")
    assert (await guest.receive_type("call_waiting"))["session_id"] == session_id
    waiting = await advisor.receive_type("participant_waiting")
    assert waiting["peer"] == {
        "participant_id": welcome["participant_id"],
        "role": "citizen",
        "name": label,
    }
    await advisor.send(
        type="admit", session_id=session_id, participant_id=welcome["participant_id"]
    )
    return guest


async def test_an_invited_interpreter_joins_the_mesh_and_leaves_it(harness: Harness) -> None:
    booth, advisor, session_id = await _active_call(harness)
    guest = await _admitted(harness, advisor, session_id, "Interpreter (Turkish)")

    started = await guest.receive_type("call_started")
    assert started["offerer"] is False
    assert [p["role"] for p in started["peers"]] == ["booth", "advisor"]
    joined_booth = await booth.receive_type("participant_joined")
    joined_advisor = await advisor.receive_type("participant_joined")
    guest_id = joined_booth["peer"]["participant_id"]
    assert joined_advisor["peer"]["participant_id"] == guest_id
    booth_id, advisor_id = (p["participant_id"] for p in started["peers"])

    # Each one already there offers to the newcomer; each offer reaches only its addressee.
    await booth.send(type="offer", session_id=session_id, sdp="v=0 booth", to=guest_id)
    await advisor.send(type="offer", session_id=session_id, sdp="v=0 advisor", to=guest_id)
    first, second = await guest.receive_type("offer"), await guest.receive_type("offer")
    assert {(first["sender"], first["sdp"]), (second["sender"], second["sdp"])} == {
        (booth_id, "v=0 booth"),
        (advisor_id, "v=0 advisor"),
    }
    await guest.send(type="answer", session_id=session_id, sdp="v=0 to booth", to=booth_id)
    assert (await booth.receive_type("answer"))["sdp"] == "v=0 to booth"
    await advisor.expect_silence()
    await guest.send(type="offer", session_id=session_id, sdp="v=0", to="nobody")
    assert (await guest.receive_type("error"))["code"] == "not_in_session"

    # Chat reaches all three.
    await guest.send(type="chat", session_id=session_id, text="Merhaba")
    for peer in (booth, advisor, guest):
        assert (await peer.receive_type("chat"))["sender_name"] == "Interpreter (Turkish)"

    # The interpreter leaves: the others are told, and their call goes on.
    await guest.send(type="hangup", session_id=session_id)
    for peer in (booth, advisor):
        left = await peer.receive_type("participant_left")
        assert (left["participant_id"], left["reason"]) == (guest_id, "hangup")
    await booth.send(type="offer", session_id=session_id, sdp="v=0 again", to=advisor_id)
    assert (await advisor.receive_type("offer"))["sdp"] == "v=0 again"


async def test_only_the_calls_advisor_admits_and_the_call_has_room_for_four(
    harness: Harness,
) -> None:
    _, advisor, session_id = await _active_call(harness)
    guests = [
        await _admitted(harness, advisor, session_id, f"Guest {n}")
        for n in range(MAX_PARTICIPANTS - 2)
    ]
    for guest in guests:
        await guest.receive_type("call_started")
    last = await _guest(harness, await _invite(harness, session_id, "One too many"))
    welcome = await last.receive_type("welcome")
    await last.send(type="lobby_join")
    await advisor.receive_type("participant_waiting")
    # A guest already in the call cannot admit anybody: only the advisor can.
    await guests[0].send(type="admit", session_id=session_id, participant_id="x")
    assert (await guests[0].receive_type("error"))["code"] == "not_allowed"
    await advisor.send(
        type="admit", session_id=session_id, participant_id=welcome["participant_id"]
    )
    assert (await advisor.receive_type("error"))["code"] == "call_full"
    # The advisor turns the waiting one away instead.
    await advisor.send(
        type="remove", session_id=session_id, participant_id=welcome["participant_id"]
    )
    assert (await last.receive_type("hangup"))["reason"] == "removed"


async def test_invitations_belong_to_the_running_call_of_their_advisor(harness: Harness) -> None:
    booth, advisor, session_id = await _active_call(harness)
    await harness.add_advisor("bob")
    bob = await harness.login("bob")
    async with bob.post(
        harness.url(f"/api/v1/calls/{session_id}/invitations"), json={"label": "Interpreter"}
    ) as response:
        assert response.status == 404
        assert "no running call" in (await response.json())["detail"]
    await bob.close()

    token = await _invite(harness, session_id)
    guest = await _guest(harness, token)
    await guest.receive_type("welcome")
    # The call ends before the invited person asks to join: the link is dead.
    await booth.send(type="hangup", session_id=session_id)
    await advisor.receive_type("hangup")
    await guest.send(type="lobby_join")
    assert (await guest.receive_type("error"))["code"] == "unknown_session"
    http = aiohttp.ClientSession()
    async with http.post(harness.url("/api/v1/join"), json={"token": token}) as response:
        assert response.status == 404
    await http.close()


async def test_a_waiting_guest_that_disconnects_is_gone_from_the_advisors_view(
    harness: Harness,
) -> None:
    _, advisor, session_id = await _active_call(harness)
    guest = await _guest(harness, await _invite(harness, session_id))
    welcome = await guest.receive_type("welcome")
    await guest.send(type="lobby_join")
    await advisor.receive_type("participant_waiting")
    await guest.close()
    left = await advisor.receive_type("participant_left")
    assert left["participant_id"] == welcome["participant_id"]


async def _walk_in(harness: Harness) -> tuple[Peer, dict[str, Any]]:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.post(harness.url("/api/v1/walk-in"), json={}) as response:
        assert response.status == 200, await response.text()
        offer: dict[str, Any] = await response.json()
    ws = await http.ws_connect(harness.url("/api/v1/ws"))
    harness.peers.append(Peer(http, ws))
    return harness.peers[-1], offer


async def test_walk_ins_queue_per_topic_and_region(harness: Harness) -> None:
    db = harness.app[DATABASE]
    topic = await create_topic(db, "Residence permit")
    await create_branch(db, "Branch North", "North")
    await create_branch(db, "Branch South", "South")
    await harness.add_advisor("alice")
    advisor = await harness.advisor("alice")
    booth = await harness.booth(await harness.add_booth("Booth without a branch"))

    citizen, offer = await _walk_in(harness)
    assert offer["topics"] == [{"id": topic.id, "name": "Residence permit", "names": {}}]
    assert offer["regions"] == ["North", "South"]
    await citizen.send(type="call_request", topic_id=topic.id, region="Atlantis")
    assert (await citizen.receive_type("error"))["code"] == "unknown_region"
    await citizen.send(type="call_request", topic_id=topic.id, region="South")
    await citizen.receive_type("call_waiting")
    assert (await citizen.receive_type("queue_position"))["position"] == 1
    await booth.send(type="call_request", topic_id=topic.id, region="South")  # ignored: no branch
    await booth.receive_type("call_waiting")

    queue = await advisor.receive_queue()
    while len(queue["waiting"]) < 2:
        queue = await advisor.receive_queue()
    assert [(w["caller_role"], w.get("region")) for w in queue["waiting"]] == [
        ("citizen", "South"),
        ("booth", None),
    ]
    # The advisor takes the citizen: the citizen's browser makes the offer.
    await advisor.send(type="call_accept", session_id=queue["waiting"][0]["session_id"])
    started = await citizen.receive_type("call_started")
    assert started["offerer"] is True and started["peer"]["role"] == "advisor"


async def test_a_booth_queues_in_its_branchs_region(harness: Harness) -> None:
    db = harness.app[DATABASE]
    north = await create_branch(db, "Branch North", "North")
    credential = await harness.add_booth("Booth N")
    booth_row = await get_booth_by_name(db, "Booth N")
    assert booth_row is not None
    await set_booth_branch(db, booth_row.id, north.id)
    await harness.add_advisor("alice")
    advisor = await harness.advisor("alice")
    booth = await harness.booth(credential)
    await booth.send(type="call_request", region="South")  # a booth cannot choose
    await booth.receive_type("call_waiting")
    queue = await advisor.receive_queue()
    while not queue["waiting"]:
        queue = await advisor.receive_queue()
    assert queue["waiting"][0]["region"] == "North"


async def test_only_walk_in_passes_ask_for_an_advisor_now(make_harness: MakeHarness) -> None:
    harness = await make_harness()
    await _active_call(harness)
    session_id = next(iter(harness.app[SWITCHBOARD].sessions))
    guest = await _guest(harness, await _invite(harness, session_id))
    await guest.receive_type("welcome")
    await guest.send(type="call_request")
    assert (await guest.receive_type("error"))["code"] == "not_allowed"

    closed = await make_harness(walk_in_web=False)
    http = aiohttp.ClientSession()
    async with http.post(closed.url("/api/v1/walk-in"), json={}) as response:
        assert response.status == 404
        assert "appointment or at a booth" in (await response.json())["detail"]
    await http.close()
