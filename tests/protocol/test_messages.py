"""Strict parsing of the wire protocol."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import (
    MAX_MESSAGE_BYTES,
    CallStarted,
    ErrorCode,
    Hangup,
    HangupReason,
    IceCandidate,
    IceServer,
    IceTransportPolicy,
    Offer,
    Peer,
    ProtocolError,
    Queue,
    Role,
    UpdateOffer,
    UpdateProgress,
    UpdateWithdrawn,
    WaitingCall,
    decode_client,
    decode_server,
    encode,
)


def test_round_trip_keeps_every_field() -> None:
    message = CallStarted(
        session_id="s1",
        offerer=True,
        ice_servers=[IceServer(urls=["turn:127.0.0.1:3478"], username="1:s1", credential="c")],
        ice_transport_policy=IceTransportPolicy.RELAY,
        peer=Peer(participant_id="p", role=Role.ADVISOR, name="Alex"),
    )
    assert decode_server(encode(message)) == message
    queue = Queue(
        waiting=[
            WaitingCall(
                session_id="s",
                caller_id="b",
                caller_name="B",
                caller_role=Role.BOOTH,
                waiting_since=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            )
        ]
    )
    assert decode_server(encode(queue)) == queue


def test_encoding_names_version_and_type() -> None:
    data = json.loads(encode(Offer(session_id="abc", sdp="v=0")))
    assert data == {"v": 1, "type": "offer", "session_id": "abc", "sdp": "v=0"}


@pytest.mark.parametrize(
    ("raw", "code", "text"),
    [
        ("{", ErrorCode.BAD_JSON, "not valid JSON"),
        (b"\xff\xfe", ErrorCode.BAD_JSON, "not valid JSON"),
        ("[]", ErrorCode.NOT_AN_OBJECT, "must be a JSON object"),
        ('"offer"', ErrorCode.NOT_AN_OBJECT, "must be a JSON object"),
        ('{"type": "offer"}', ErrorCode.UNSUPPORTED_VERSION, "version None"),
        ('{"v": "1", "type": "offer"}', ErrorCode.UNSUPPORTED_VERSION, "version '1'"),
        ('{"v": 1}', ErrorCode.UNKNOWN_TYPE, "unknown message type None"),
        ('{"v": 1, "type": "welcome", "participant_id": "x"}', ErrorCode.UNKNOWN_TYPE, "'welcome'"),
        (
            '{"v": 1, "type": "offer", "session_id": "a"}',
            ErrorCode.INVALID_MESSAGE,
            "sdp: Field required",
        ),
        (
            '{"v": 1, "type": "offer", "session_id": "a b", "sdp": "x"}',
            ErrorCode.INVALID_MESSAGE,
            "session_id",
        ),
        (
            '{"v": 1, "type": "offer", "session_id": 5, "sdp": "x"}',
            ErrorCode.INVALID_MESSAGE,
            "session_id",
        ),
        (
            '{"v": 1, "type": "hangup", "session_id": "a", "reasn": "x"}',
            ErrorCode.INVALID_MESSAGE,
            "reasn: Extra inputs are not permitted",
        ),
        (
            '{"v": 1, "type": "chat", "session_id": "a", "text": ""}',
            ErrorCode.INVALID_MESSAGE,
            "text",
        ),
        (
            '{"v": 1, "type": "ice_candidate", "session_id": "a", "candidate": null, '
            '"sdp_mline_index": -1}',
            ErrorCode.INVALID_MESSAGE,
            "sdp_mline_index",
        ),
    ],
)
def test_bad_messages_are_refused_with_a_code_and_a_reason(
    raw: str | bytes, code: ErrorCode, text: str
) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_client(raw)
    assert info.value.code is code
    assert text in info.value.message


def test_oversized_message_is_refused_before_parsing() -> None:
    raw = '{"v": 1, "type": "chat", "session_id": "a", "text": "' + "x" * MAX_MESSAGE_BYTES + '"}'
    with pytest.raises(ProtocolError) as info:
        decode_client(raw)
    assert info.value.code is ErrorCode.MESSAGE_TOO_LARGE
    assert "exceeds the limit of 65536 bytes" in info.value.message


@given(
    st.one_of(
        st.text(max_size=300),
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=10), inner, max_size=4)
            ),
            max_leaves=20,
        ).map(json.dumps),
    )
)
def test_any_input_parses_or_raises_protocol_error(raw: str | bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_client(raw)


def test_end_of_candidates_survives_the_relay() -> None:
    # encode() leaves None out; the end-of-candidates marker must still parse on the far side.
    relayed = encode(IceCandidate(session_id="s1", candidate=None, sender="p1"))
    decoded = decode_server(relayed)
    assert isinstance(decoded, IceCandidate)
    assert decoded.candidate is None


def test_hangup_reasons_keep_their_wire_strings() -> None:
    # Booths, the server and the web pages compare these strings: they never change.
    assert {str(r) for r in HangupReason} == {
        "hangup",
        "advisor_hangup",
        "citizen_hangup",
        "cancelled",
        "removed",
        "peer_disconnected",
        "connection_lost",
        "connection_failed",
        "server_unreachable",
        "call_error",
        "booth_shutdown",
        "gone",
        "ended",
        "replaced",
    }
    message = Hangup(session_id="s1", reason=HangupReason.CONNECTION_LOST)
    assert json.loads(encode(message))["reason"] == "connection_lost"
    assert decode_client(encode(message)) == Hangup(session_id="s1", reason="connection_lost")
    assert json.loads(encode(Hangup(session_id="s1")))["reason"] == "hangup"


def test_update_messages_round_trip() -> None:
    offer = UpdateOffer(
        rollout_id="r1",
        version="2.0.0",
        path="/api/v1/updates/bundles/b1/file",
        size=300_000_000,
        sha256="ab" * 32,
    )
    assert decode_server(encode(offer)) == offer
    assert decode_server(encode(UpdateWithdrawn(rollout_id="r1"))) == UpdateWithdrawn(
        rollout_id="r1"
    )
    progress = UpdateProgress(rollout_id="r1", phase="installing", percent=40, detail="Copying")
    assert decode_client(encode(progress)) == progress


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ('{"v": 1, "type": "update_progress", "rollout_id": "r1", "phase": "done"}', "phase"),
        (
            '{"v": 1, "type": "update_progress", "rollout_id": "r1", "phase": "installing", '
            '"percent": 101}',
            "percent",
        ),
        (
            '{"v": 1, "type": "update_progress", "rollout_id": "../x", "phase": "failed"}',
            "rollout_id",
        ),
        # The server's messages are not the booth's to send.
        ('{"v": 1, "type": "update_offer", "rollout_id": "r1"}', "unknown message type"),
    ],
)
def test_bad_update_progress_is_refused(raw: str, text: str) -> None:
    with pytest.raises(ProtocolError, match=text):
        decode_client(raw)


@pytest.mark.parametrize(
    "field",
    [
        {"path": "https://elsewhere.example/bundle"},  # only a path on this server
        {"sha256": "AB" * 32},
        {"size": 0},
        {"version": "2.0.0; rm -rf /"},
    ],
)
def test_an_offer_the_booth_would_not_act_on_is_refused(field: dict[str, object]) -> None:
    data = {
        "v": 1,
        "type": "update_offer",
        "rollout_id": "r1",
        "version": "2.0.0",
        "path": "/api/v1/updates/bundles/b1/file",
        "size": 1,
        "sha256": "ab" * 32,
        **field,
    }
    with pytest.raises(ProtocolError):
        decode_server(json.dumps(data))
