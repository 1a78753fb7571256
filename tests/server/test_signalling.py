"""Signalling through the real server: the call flow, and hostile input that changes nothing."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
from pathlib import Path

import aiohttp
import pytest

from tests.server.conftest import TURN_SECRET, Harness, MakeHarness, Peer


async def _active_call(
    harness: Harness, booth_name: str, advisor_name: str
) -> tuple[Peer, Peer, str]:
    credential = await harness.add_booth(booth_name)
    await harness.add_advisor(advisor_name)
    advisor = await harness.advisor(advisor_name)
    assert (await advisor.receive_queue())["waiting"] == []
    booth = await harness.booth(credential)
    await booth.send(type="call_request")
    session_id = (await booth.receive_type("call_waiting"))["session_id"]
    queue = await advisor.receive_queue()
    assert [w["session_id"] for w in queue["waiting"]] == [session_id]
    assert queue["waiting"][0]["caller_name"] == booth_name
    await advisor.send(type="call_accept", session_id=session_id)
    return booth, advisor, session_id


async def test_call_flow_relays_only_between_participants(harness: Harness) -> None:
    booth, advisor, session_id = await _active_call(harness, "Booth A", "alice")

    started_booth = await booth.receive_type("call_started")
    started_advisor = await advisor.receive_type("call_started")
    assert started_booth["offerer"] is True
    assert started_advisor["offerer"] is False
    assert started_booth["peer"]["role"] == "advisor"
    assert started_advisor["peer"]["name"] == "Booth A"
    assert started_booth["ice_servers"] == []  # no relay configured: nothing to hand out
    assert started_booth["ice_transport_policy"] == "all"

    await booth.send(type="offer", session_id=session_id, sdp="v=0 offer", id="o1")
    offer = await advisor.receive_type("offer")
    assert offer["sdp"] == "v=0 offer"
    assert offer["sender"] == (await _participant(booth, started_advisor))
    assert "id" not in offer

    await advisor.send(type="answer", session_id=session_id, sdp="v=0 answer")
    assert (await booth.receive_type("answer"))["sdp"] == "v=0 answer"
    await advisor.send(
        type="ice_candidate",
        session_id=session_id,
        candidate="candidate:1 1 udp 1 1.2.3.4 5 typ host",
        sdp_mid="0",
        sdp_mline_index=0,
    )
    assert (await booth.receive_type("ice_candidate"))["sdp_mid"] == "0"

    await advisor.send(type="hangup", session_id=session_id, reason="done")
    hangup = await booth.receive_type("hangup")
    assert hangup == {"v": 1, "type": "hangup", "session_id": session_id, "reason": "done"}
    # The session is gone: further messages for it are refused.
    await booth.send(type="offer", session_id=session_id, sdp="v=0")
    assert (await booth.receive_type("error"))["code"] == "not_in_session"


async def _participant(booth: Peer, started_advisor: dict[str, object]) -> object:
    peer = started_advisor["peer"]
    assert isinstance(peer, dict)
    return peer["participant_id"]


async def test_hostile_input_gets_error_replies_and_leaves_other_calls_untouched(
    harness: Harness,
) -> None:
    booth, advisor, session_id = await _active_call(harness, "Booth A", "alice")
    await booth.receive_type("call_started")
    await advisor.receive_type("call_started")

    intruder = await harness.booth(await harness.add_booth("Booth B"))
    cases = [
        ("this is not json{", "bad_json"),
        ("[1, 2, 3]", "not_an_object"),
        ('{"v": 1, "type": "format_disk"}', "unknown_type"),
        ('{"v": 7, "type": "offer"}', "unsupported_version"),
        (
            '{"v": 1, "type": "offer", "session_id": "x", "sdp": "v=0", "extra": 1}',
            "invalid_message",
        ),
        ('{"v": 1, "type": "call_accept", "session_id": "x"}', "not_allowed"),
        (
            f'{{"v": 1, "type": "offer", "session_id": "{session_id}", "sdp": "v=0 evil"}}',
            "not_in_session",
        ),
        (f'{{"v": 1, "type": "hangup", "session_id": "{session_id}"}}', "not_in_session"),
        (
            f'{{"v": 1, "type": "chat", "session_id": "{session_id}", "text": "hi"}}',
            "not_in_session",
        ),
        (
            '{"v": 1, "type": "chat", "session_id": "x", "text": "' + "a" * 1_000_000 + '"}',
            "message_too_large",
        ),
    ]
    for raw, code in cases:
        await intruder.ws.send_str(raw)
        reply = await intruder.receive_type("error")
        assert reply["code"] == code, (raw[:80], reply)
        assert reply["message"]
    await intruder.ws.send_bytes(b"\x00\x01binary")
    assert (await intruder.receive_type("error"))["code"] == "binary_not_allowed"

    # Another advisor cannot take or end someone else's call either.
    await harness.add_advisor("mallory")
    other_advisor = await harness.advisor("mallory")
    await other_advisor.send(type="call_accept", session_id=session_id, id="a1")
    reply = await other_advisor.receive_type("error")
    assert (reply["code"], reply["ref"]) == ("session_not_waiting", "a1")
    await other_advisor.send(type="hangup", session_id=session_id)
    assert (await other_advisor.receive_type("error"))["code"] == "not_in_session"

    # The call in progress saw none of it and still works both ways.
    await advisor.expect_silence()
    await booth.expect_silence()
    await booth.send(type="offer", session_id=session_id, sdp="v=0 real")
    assert (await advisor.receive_type("offer"))["sdp"] == "v=0 real"
    await advisor.send(type="answer", session_id=session_id, sdp="v=0 real answer")
    assert (await booth.receive_type("answer"))["sdp"] == "v=0 real answer"
    assert not intruder.ws.closed


async def test_oversized_transport_frame_closes_only_that_connection(harness: Harness) -> None:
    booth, advisor, session_id = await _active_call(harness, "Booth A", "alice")
    await booth.receive_type("call_started")
    intruder = await harness.booth(await harness.add_booth("Booth B"))
    # The server may cut the connection while the frame is still being written.
    with contextlib.suppress(ConnectionError):
        await intruder.ws.send_str("x" * (5 * 1024 * 1024))
        frame = await intruder.ws.receive(timeout=5)
        assert frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), frame
    await booth.send(type="offer", session_id=session_id, sdp="v=0 still here")
    assert (await advisor.receive_type("offer"))["sdp"] == "v=0 still here"


async def test_flood_of_invalid_messages_closes_the_connection(harness: Harness) -> None:
    intruder = await harness.booth(await harness.add_booth("Booth B"))
    for _ in range(60):
        await intruder.ws.send_str("garbage")
    codes = []
    while True:
        frame = await intruder.ws.receive(timeout=5)
        if frame.type is not aiohttp.WSMsgType.TEXT:
            break
        if frame.json()["type"] == "error":
            codes.append(frame.json()["code"])
    assert intruder.ws.close_code == 1008
    assert 0 < len(codes) <= 60


async def test_waiting_booth_that_cancels_leaves_the_queue(harness: Harness) -> None:
    credential = await harness.add_booth("Booth A")
    await harness.add_advisor("alice")
    advisor = await harness.advisor("alice")
    await advisor.receive_queue()
    booth = await harness.booth(credential)
    await booth.send(type="call_request")
    session_id = (await booth.receive_type("call_waiting"))["session_id"]
    assert len((await advisor.receive_queue())["waiting"]) == 1
    await booth.send(type="call_request")
    assert (await booth.receive_type("error"))["code"] == "already_in_call"
    await booth.send(type="call_cancel", session_id=session_id)
    assert (await advisor.receive_queue())["waiting"] == []


async def test_participants_get_turn_credentials_for_their_session(
    make_harness: MakeHarness,
) -> None:
    harness = await make_harness(turn=True)
    booth, advisor, session_id = await _active_call(harness, "Booth A", "alice")
    started = await booth.receive_type("call_started")
    assert started["ice_transport_policy"] == "relay"  # booths default to relay-only
    (server,) = started["ice_servers"]
    assert server["urls"] == ["turn:127.0.0.1:3478"]
    expiry, label = server["username"].split(":", 1)
    assert label.startswith(session_id)
    expected = base64.b64encode(
        hmac.new(TURN_SECRET.encode(), server["username"].encode(), hashlib.sha1).digest()
    ).decode()
    assert server["credential"] == expected
    other = (await advisor.receive_type("call_started"))["ice_servers"][0]
    assert other["username"] != server["username"]  # each participant its own credential
    assert int(expiry) > 0


async def test_websocket_requires_authentication(harness: Harness) -> None:
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": "Bearer nope.nope"}, {"Authorization": "Basic x"}):
            async with http.get(harness.url("/api/v1/ws"), headers=headers) as response:
                assert response.status == 401
                assert response.content_type == "application/problem+json"


async def test_cross_origin_websocket_is_refused(harness: Harness) -> None:
    await harness.add_advisor("alice")
    http = await harness.login("alice")
    try:
        async with http.get(
            harness.url("/api/v1/ws"), headers={"Origin": "https://evil.example"}
        ) as response:
            assert response.status == 403
    finally:
        await http.close()


async def test_chat_both_ways_limited_and_never_stored_or_logged(
    harness: Harness, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    booth, advisor, session_id = await _active_call(harness, "Booth A", "alice")
    await booth.receive_type("call_started")
    await advisor.receive_type("call_started")
    secret_text = "My case number is 4711-secret"

    await advisor.send(type="chat", session_id=session_id, text=secret_text)
    line = await booth.receive_type("chat")
    assert line["text"] == secret_text
    assert line["sender_name"] == "alice"
    assert line["sent_at"]
    assert (await advisor.receive_type("chat"))["text"] == secret_text  # the server's echo

    await booth.send(type="chat", session_id=session_id, text="Guten Tag")
    assert (await advisor.receive_type("chat"))["sender_name"] == "Booth A"

    await advisor.send(type="chat", session_id=session_id, text="x" * 2001)
    assert (await advisor.receive_type("error"))["code"] == "invalid_message"

    codes = []
    for n in range(8):  # a burst of 5 passes, then the rate limit holds
        await booth.send(type="chat", session_id=session_id, text=f"line {n}")
    for _ in range(8):
        message = await booth.receive()
        while message["type"] not in ("chat", "error"):
            message = await booth.receive()
        codes.append(message.get("code", "ok"))
    assert codes.count("rate_limited") >= 2

    await advisor.send(type="hangup", session_id=session_id)
    await booth.receive_type("hangup")

    # Nothing of the chat in the logs or in the database file.
    assert secret_text not in caplog.text
    for path in (tmp_path / "data").iterdir():
        assert secret_text.encode() not in path.read_bytes(), path
