"""A call from its wait to its end: accepted by one advisor only, cancelled, hung up; the
application hears of connected calls that ended and of every ending."""

from __future__ import annotations

from protocol import CallAccept, CallCancel, CallRequest, ErrorCode, Hangup, Offer
from server.signalling import SessionState
from tests.server.signalling.conftest import Board, sent


def test_two_advisors_race_for_a_call_and_one_gets_it(board: Board) -> None:
    booth, alice, bob = board.booth(), board.advisor("alice"), board.advisor("bob")
    session_id = board.wait(booth)
    board.send(alice, CallAccept(session_id=session_id))
    error = board.refused(bob, CallAccept(session_id=session_id))
    assert (error.code, error.message) == (
        ErrorCode.SESSION_NOT_WAITING,
        "another advisor has already taken this call",
    )
    assert bob.session_id is None
    started = sent(booth).last("call_started")
    assert (started["offerer"], started["peer"]["name"], started["ice_transport_policy"]) == (
        True,
        "alice",
        "all",
    )
    assert started["resume_token"].startswith("r1.")
    advisor_started = sent(alice).last("call_started")
    assert (advisor_started["offerer"], advisor_started["ice_transport_policy"]) == (False, "relay")
    assert sent(bob).of_type("call_started") == []
    assert board.switchboard.sessions[session_id].state is SessionState.ACTIVE


def test_an_advisor_takes_one_call_at_a_time(board: Board) -> None:
    _, advisor, _ = board.call()
    other = board.wait(board.booth("booth-2"))
    error = board.refused(advisor, CallAccept(session_id=other))
    assert (error.code, error.message) == (ErrorCode.ALREADY_IN_CALL, "end your current call first")


def test_a_caller_waits_once_at_a_time_and_cancels_only_a_wait(board: Board) -> None:
    booth = board.booth()
    session_id = board.wait(booth)
    assert board.refused(booth, CallRequest()).code is ErrorCode.ALREADY_IN_CALL
    board.send(booth, CallCancel(session_id=session_id))
    assert session_id not in board.switchboard.sessions
    assert board.ended_calls == []  # it never was a call
    assert board.endings == [(session_id, "")]

    booth, _advisor, session_id = board.call()
    error = board.refused(booth, CallCancel(session_id=session_id))
    assert (error.code, error.message) == (
        ErrorCode.SESSION_NOT_WAITING,
        "the call already started",
    )


def test_a_hangup_ends_the_call_for_the_others(board: Board) -> None:
    booth, advisor, session_id = board.call()
    board.send(advisor, Hangup(session_id=session_id, reason="done"))
    assert sent(booth).last("hangup") == {
        "v": 1,
        "type": "hangup",
        "session_id": session_id,
        "reason": "done",
    }
    assert sent(advisor).of_type("hangup") == []
    assert (booth.session_id, advisor.session_id) == (None, None)
    assert board.ended_calls == [session_id]
    assert board.switchboard.sessions == {}


def test_nobody_reaches_a_call_that_is_not_theirs(board: Board) -> None:
    _, _, session_id = board.call()
    stranger = board.booth("booth-2")
    error = board.refused(stranger, Hangup(session_id=session_id))
    # An unknown session and someone else's read alike: no probing for live session ids.
    assert (error.code, error.message) == (
        ErrorCode.NOT_IN_SESSION,
        f"you are not a participant of session {session_id}",
    )
    unknown = board.refused(stranger, Hangup(session_id="nope"))
    assert (unknown.code, unknown.message) == (
        ErrorCode.NOT_IN_SESSION,
        "you are not a participant of session nope",
    )
    waiting = board.wait(stranger)
    error = board.refused(stranger, Offer(session_id=waiting, sdp="v=0"))
    assert (error.code, error.message) == (
        ErrorCode.SESSION_NOT_WAITING,
        "the call has not started yet",
    )


def test_each_role_sends_only_its_own_messages(board: Board) -> None:
    booth, advisor = board.booth(), board.advisor()
    error = board.refused(booth, CallAccept(session_id="x"))
    assert (error.code, error.message) == (
        ErrorCode.NOT_ALLOWED,
        "a booth may not send call_accept messages",
    )
    assert board.refused(advisor, CallRequest()).code is ErrorCode.NOT_ALLOWED


def test_a_closed_connection_no_longer_acts(board: Board) -> None:
    booth = board.booth()
    board.switchboard.unregister(booth)
    board.send(booth, CallRequest())  # ignored, not refused
    assert board.switchboard.sessions == {}
    assert sent(booth).of_type("call_waiting") == []
