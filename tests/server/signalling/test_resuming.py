"""A lost connection: the call waits for it within the grace period, takes it back under its
old participant id with what was sent meanwhile, and ends when it does not come back. What
ended stays ended; a restarted server rebuilds a call from the first token presented."""

from __future__ import annotations

from protocol import CallRequest, Chat, ErrorCode, Hangup, Resume, Role
from server.signalling import Participant, Presence
from server.signalling.fakes import FakeClock
from tests.server.signalling.conftest import Board, make_board, sent


def _token(participant: Participant) -> str:
    started = sent(participant).of_type("call_started") or sent(participant).of_type("call_waiting")
    return str(started[-1]["resume_token"])


def test_a_lost_booth_resumes_within_the_grace_period(board: Board) -> None:
    booth, advisor, session_id = board.call()
    board.switchboard.unregister(booth)
    assert booth.presence is Presence.AWAY
    away = sent(advisor).last("participant_away")
    assert away["participant_id"] == booth.participant_id
    board.send(advisor, Chat(session_id=session_id, text="Are you still there?"))

    board.clock.advance(59)
    board.switchboard.expire_away()
    again = board.booth()
    board.send(again, Resume(session_id=session_id, token=_token(booth)))
    resumed = sent(again).last("resumed")
    assert (resumed["participant_id"], resumed["active"]) == (booth.participant_id, True)
    assert [p["role"] for p in resumed["peers"]] == ["advisor"]
    assert resumed["ice_servers"] == [{"urls": ["stun:relay.example:3478"]}]
    # What was sent meanwhile comes right after, in order.
    assert sent(again).types()[-2:] == ["resumed", "chat"]
    assert sent(advisor).last("participant_back")["participant_id"] == booth.participant_id
    assert board.switchboard.sessions[session_id].caller is again
    assert board.switchboard.resumes == 1
    assert board.switchboard.figures().participants_away == 0


def test_the_call_ends_when_the_lost_one_does_not_come_back(board: Board) -> None:
    booth, advisor, session_id = board.call()
    board.switchboard.unregister(booth)
    assert board.switchboard.figures().participants_away == 1
    board.clock.advance(60)
    board.switchboard.expire_away()
    assert sent(advisor).last("hangup")["reason"] == "connection_lost"
    assert session_id not in board.switchboard.sessions
    assert board.ended_calls == [session_id]

    again = board.booth()
    error = board.refused(again, Resume(session_id=session_id, token=_token(booth)))
    assert (error.code, error.message) == (ErrorCode.CANNOT_RESUME, "the call has ended")


def test_an_ended_call_is_not_taken_up_again(board: Board) -> None:
    booth, advisor, session_id = board.call()
    board.send(advisor, Hangup(session_id=session_id))
    board.switchboard.unregister(booth)
    again = board.booth()
    error = board.refused(again, Resume(session_id=session_id, token=_token(booth)))
    assert (error.code, error.message) == (ErrorCode.CANNOT_RESUME, "the call has ended")
    assert board.switchboard.resumes == 0


def test_a_token_is_good_only_for_its_own_principal_and_call(board: Board) -> None:
    booth, _, session_id = board.call()
    board.switchboard.unregister(booth)
    other = board.booth("booth-2")
    error = board.refused(other, Resume(session_id=session_id, token=_token(booth)))
    assert (error.code, error.message) == (
        ErrorCode.CANNOT_RESUME,
        "this call cannot be taken up again",
    )
    again = board.booth()
    error = board.refused(again, Resume(session_id="other", token=_token(booth)))
    assert error.code is ErrorCode.CANNOT_RESUME
    forged = board.refused(again, Resume(session_id=session_id, token="r1.forged"))
    assert forged.code is ErrorCode.CANNOT_RESUME


def test_a_booth_that_comes_back_without_resuming_has_restarted(board: Board) -> None:
    booth, advisor, session_id = board.call()
    board.switchboard.unregister(booth)
    again = board.booth()
    board.send(again, CallRequest())  # its first word is not a resume: the old call is over
    assert sent(advisor).last("hangup")["reason"] == "peer_disconnected"
    assert session_id not in board.switchboard.sessions


def test_a_waiting_caller_resumes_its_place(board: Board) -> None:
    booth, _advisor = board.booth(), board.advisor()
    session_id = board.wait(booth)
    board.switchboard.unregister(booth)
    assert session_id in board.switchboard.sessions  # the wait goes on meanwhile
    again = board.booth()
    board.send(again, Resume(session_id=session_id, token=_token(booth)))
    assert sent(again).last("resumed")["active"] is False
    board.clock.advance(1)
    assert sent(again).last("queue_position")["position"] == 1


def test_without_a_key_a_lost_connection_ends_its_call() -> None:
    board = make_board(resume_key=None)
    booth, advisor, _session_id = board.call()
    assert "resume_token" not in sent(booth).last("call_started")
    board.switchboard.unregister(booth)
    assert sent(advisor).last("hangup")["reason"] == "peer_disconnected"


def test_a_restarted_server_rebuilds_the_call_from_the_tokens(board: Board) -> None:
    booth, advisor, session_id = board.call()
    booth_token, advisor_token = _token(booth), _token(advisor)
    restarted = make_board(clock=FakeClock(start=board.clock.time() + 5))
    new_booth = restarted.booth()
    restarted.send(new_booth, Resume(session_id=session_id, token=booth_token))
    resumed = sent(new_booth).last("resumed")
    assert resumed["active"] is True
    assert resumed["away"] == [advisor.participant_id]  # expected back
    new_advisor = restarted.connect(Role.ADVISOR, "alice")
    restarted.send(new_advisor, Resume(session_id=session_id, token=advisor_token))
    assert sent(new_advisor).last("resumed")["away"] == []
    assert sent(new_booth).last("participant_back")["participant_id"] == advisor.participant_id

    # One who never comes back ends the rebuilt call after the grace period.
    lonely = make_board(clock=FakeClock(start=board.clock.time() + 5))
    lonely.send(lonely.booth(), Resume(session_id=session_id, token=booth_token))
    lonely.clock.advance(60)
    lonely.switchboard.expire_away()
    assert session_id not in lonely.switchboard.sessions


def test_endings_recorded_before_a_restart_keep_their_tokens_useless(board: Board) -> None:
    booth, _advisor, session_id = board.call()
    token = _token(booth)
    restarted = make_board(clock=FakeClock(start=board.clock.time() + 5))
    restarted.switchboard.remember_endings([(session_id, "", board.clock.time())])
    again = restarted.booth()
    error = restarted.refused(again, Resume(session_id=session_id, token=token))
    assert error.message == "the call has ended"
