"""Between the participants of a running call: negotiation to one or all, the sender stamped
by the server, chat to everyone within a rate."""

from __future__ import annotations

from protocol import Admit, CallStats, Chat, ErrorCode, LobbyJoin, MediaDirection, Offer, Role
from server.signalling import Entitlement
from tests.server.signalling.conftest import Board, sent


def test_an_offer_goes_to_the_one_it_names_with_the_sender_stamped(board: Board) -> None:
    booth, advisor, session_id = board.call()
    guest = board.connect(Role.CITIZEN, "pass-1", entitlement=Entitlement(invited_to=session_id))
    board.send(guest, LobbyJoin())
    board.send(advisor, Admit(session_id=session_id, participant_id=guest.participant_id))
    board.send(guest, Offer(session_id=session_id, sdp="v=0", to=booth.participant_id))
    offer = sent(booth).last("offer")
    assert (offer["sender"], offer["sdp"]) == (guest.participant_id, "v=0")
    assert sent(advisor).of_type("offer") == []
    board.send(booth, Offer(session_id=session_id, sdp="v=0 all", sender="forged"))
    assert sent(advisor).last("offer")["sender"] == booth.participant_id
    assert sent(guest).last("offer")["sdp"] == "v=0 all"
    error = board.refused(booth, Offer(session_id=session_id, sdp="v=0", to="nobody"))
    assert (error.code, error.message) == (
        ErrorCode.NOT_IN_SESSION,
        "no participant nobody in this call",
    )


def test_stats_go_to_the_others(board: Board) -> None:
    booth, advisor, session_id = board.call()
    figures = MediaDirection(bitrate_kbps=800.0, fps=25.0)
    board.send(booth, CallStats(session_id=session_id, sent=figures, received=figures))
    assert sent(advisor).last("call_stats")["sender"] == booth.participant_id
    assert sent(booth).of_type("call_stats") == []


def test_chat_reaches_everyone_with_name_and_time_within_a_rate(board: Board) -> None:
    booth, advisor, session_id = board.call()
    board.send(advisor, Chat(session_id=session_id, text="Hello"))
    for participant in (booth, advisor):
        line = sent(participant).last("chat")
        assert (line["text"], line["sender_name"], line["sender"]) == (
            "Hello",
            "alice",
            advisor.participant_id,
        )
        assert line["sent_at"].startswith(board.clock.now().isoformat()[:19])
    for n in range(4):
        board.send(advisor, Chat(session_id=session_id, text=f"{n}"))
    error = board.refused(advisor, Chat(session_id=session_id, text="too many"))
    assert (error.code, error.message) == (
        ErrorCode.RATE_LIMITED,
        "too many chat messages; wait a moment",
    )
    assert len(board.switchboard.sessions[session_id].chat) == 5
