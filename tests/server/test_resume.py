"""A lost connection does not end a call: the call waits, the participant resumes with its
token under its old participant id (what was sent meanwhile arrives), and a restart of the
server rebuilds the call from the tokens. Tokens are good only for their own principal."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from server.keys import SWITCHBOARD
from tests.server.conftest import Harness, MakeHarness, Peer


async def _call(harness: Harness) -> tuple[Peer, Peer, dict[str, Any], dict[str, Any], str]:
    """A booth in a call with alice: both peers and their call_started messages."""
    credential = await harness.add_booth("Booth A")
    await harness.add_advisor("alice")
    advisor = await harness.advisor("alice")
    booth = await harness.booth(credential)
    await booth.send(type="call_request")
    waiting = await booth.receive_type("call_waiting")
    assert waiting["resume_token"].startswith("r1.")
    await advisor.send(type="call_accept", session_id=waiting["session_id"])
    return (
        booth,
        advisor,
        await booth.receive_type("call_started"),
        await advisor.receive_type("call_started"),
        credential,
    )


async def test_a_lost_booth_resumes_its_call_under_its_old_id(harness: Harness) -> None:
    booth, advisor, started, advisor_started, credential = await _call(harness)
    session_id = started["session_id"]
    booth_id = advisor_started["peer"]["participant_id"]
    await booth.ws.close()
    away = await advisor.receive_type("participant_away")
    assert away == {
        "v": 1,
        "type": "participant_away",
        "session_id": session_id,
        "participant_id": booth_id,
    }
    # Meanwhile the advisor writes; the booth gets it when it is back.
    await advisor.send(type="chat", session_id=session_id, text="Are you still there?")

    again = await harness.booth(credential)
    welcome = await again.receive_type("welcome")
    assert welcome["participant_id"] != booth_id
    assert welcome["resume_grace_seconds"] == 60
    await again.send(type="resume", session_id=session_id, token=started["resume_token"])
    resumed = await again.receive_type("resumed")
    assert resumed["participant_id"] == booth_id
    assert resumed["active"] is True
    assert [p["role"] for p in resumed["peers"]] == ["advisor"]
    assert (await again.receive_type("chat"))["text"] == "Are you still there?"
    assert (await advisor.receive_type("participant_back"))["participant_id"] == booth_id

    # Signalling goes on between the same participant ids: a new peer connection, say.
    await again.send(
        type="offer",
        session_id=session_id,
        sdp="v=0 again",
        to=started["peer"]["participant_id"],
        restart=True,
    )
    offer = await advisor.receive_type("offer")
    assert (offer["sender"], offer["restart"]) == (booth_id, True)
    assert harness.app[SWITCHBOARD].resumes == 1


async def test_the_call_ends_when_the_lost_one_does_not_come_back(
    make_harness: MakeHarness,
) -> None:
    harness = await make_harness(resume_grace_seconds=30)
    booth, advisor, started, _, _ = await _call(harness)
    await booth.ws.close()
    await advisor.receive_type("participant_away")
    switchboard = harness.app[SWITCHBOARD]
    switchboard.expire_away(time.monotonic() + 10)  # not yet
    await advisor.expect_silence(0.2)
    switchboard.expire_away(time.monotonic() + 31)
    assert (await advisor.receive_type("hangup"))["reason"] == "connection_lost"
    # The token cannot bring an ended call back.
    again = await harness.booth(await harness.add_booth("Booth B"))
    await again.send(type="resume", session_id=started["session_id"], token=started["resume_token"])
    assert (await again.receive_type("error"))["code"] == "cannot_resume"


async def test_without_a_grace_period_a_lost_connection_ends_the_call(
    make_harness: MakeHarness,
) -> None:
    harness = await make_harness(resume_grace_seconds=0)
    booth, advisor, started, _, _ = await _call(harness)
    assert "resume_token" not in started or started["resume_token"]
    await booth.ws.close()
    assert (await advisor.receive_type("hangup"))["reason"] == "peer_disconnected"


async def test_a_token_is_good_only_for_its_own_principal(harness: Harness) -> None:
    booth, advisor, started, advisor_started, _ = await _call(harness)
    session_id = started["session_id"]
    other = await harness.booth(await harness.add_booth("Booth B"))
    for token in (
        started["resume_token"],  # Booth A's
        advisor_started["resume_token"],  # alice's
        started["resume_token"][:-4] + "AAAA",  # tampered
        "r1.e30.AAAA",
    ):
        await other.send(type="resume", session_id=session_id, token=token)
        error = await other.receive_type("error")
        assert error["code"] == "cannot_resume", token
    # The call was not disturbed.
    await booth.send(type="chat", session_id=session_id, text="still here")
    assert (await advisor.receive_type("chat"))["text"] == "still here"


async def test_a_newer_connection_takes_over_from_one_that_has_not_noticed(
    harness: Harness,
) -> None:
    booth, alice, started, alice_started, _ = await _call(harness)
    session_id = started["session_id"]
    # alice's first page is still connected (its network went away without a word) when her
    # second connection resumes: the second takes the call over, the first is closed.
    http = await harness.login("alice")
    ws = await http.ws_connect(harness.url("/api/v1/ws"))
    second = Peer(http, ws)
    harness.peers.append(second)
    await second.send(type="resume", session_id=session_id, token=alice_started["resume_token"])
    assert (await second.receive_type("resumed"))["active"] is True
    closed = await alice.ws.receive(timeout=5)
    while closed.type is aiohttp.WSMsgType.TEXT:  # queue updates before the close
        closed = await alice.ws.receive(timeout=5)
    assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == 4002
    await booth.send(type="chat", session_id=session_id, text="hello")
    assert (await second.receive_type("chat"))["text"] == "hello"


async def test_a_restart_of_the_server_does_not_end_the_call(
    make_harness: MakeHarness, tmp_path: Path
) -> None:
    first = await make_harness()
    _, advisor, started, advisor_started, credential = await _call(first)
    session_id = started["session_id"]
    cookies = advisor.http.cookie_jar
    for peer in first.peers:
        await peer.close()
    first.peers.clear()
    await _stop(first.client)

    second = await make_harness()  # same data directory: same database and server.key
    booth2 = await second.booth(credential)
    await booth2.send(type="resume", session_id=session_id, token=started["resume_token"])
    resumed = await booth2.receive_type("resumed")
    assert resumed["participant_id"] == advisor_started["peer"]["participant_id"]
    assert resumed["away"] == [started["peer"]["participant_id"]]  # alice is not back yet

    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    http.cookie_jar.update_cookies({c.key: c.value for c in cookies})
    ws = await http.ws_connect(second.url("/api/v1/ws"))
    advisor2 = Peer(http, ws)
    second.peers.append(advisor2)
    await advisor2.send(type="resume", session_id=session_id, token=advisor_started["resume_token"])
    resumed = await advisor2.receive_type("resumed")
    assert resumed["participant_id"] == started["peer"]["participant_id"]
    assert resumed["away"] == []
    assert (await booth2.receive_type("participant_back"))["participant_id"] == (
        resumed["participant_id"]
    )
    await booth2.send(type="offer", session_id=session_id, sdp="v=0", restart=True)
    assert (await advisor2.receive_type("offer"))["restart"] is True
    # alice's workspace is not offered the rebuilt call as a waiting one.
    assert second.app[SWITCHBOARD].sessions[session_id].state == "active"


async def test_a_citizen_pass_and_wait_survive_a_restart(make_harness: MakeHarness) -> None:
    first = await make_harness()
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.post(first.url("/api/v1/walk-in"), json={}) as response:
        assert response.status == 200, await response.text()
    ws = await http.ws_connect(first.url("/api/v1/ws"))
    citizen = Peer(http, ws)
    await citizen.send(type="call_request")
    waiting = await citizen.receive_type("call_waiting")
    await ws.close()
    await _stop(first.client)

    second = await make_harness()
    await second.add_advisor("alice")
    ws = await http.ws_connect(second.url("/api/v1/ws"))  # the same pass, a new server
    citizen = Peer(http, ws)
    second.peers.append(citizen)
    await citizen.send(
        type="resume", session_id=waiting["session_id"], token=waiting["resume_token"]
    )
    assert (await citizen.receive_type("resumed"))["active"] is False
    advisor = await second.advisor("alice")
    queue = await advisor.receive_queue()
    assert [w["session_id"] for w in queue["waiting"]] == [waiting["session_id"]]


async def _stop(client: TestClient[Any, Any]) -> None:
    await client.close()


async def test_a_booth_that_restarts_ends_the_call_it_was_away_from(harness: Harness) -> None:
    booth, advisor, _, _, credential = await _call(harness)
    await booth.ws.close()
    await advisor.receive_type("participant_away")
    again = await harness.booth(credential)  # a new process: it knows of no call
    await again.send(type="heartbeat", state="idle")
    assert (await advisor.receive_type("hangup"))["reason"] == "peer_disconnected"
