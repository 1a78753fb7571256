"""People invited by link: the advisor's link, asking to join, being admitted into the mesh,
being removed (and then not coming back with their token)."""

from __future__ import annotations

import pytest

from protocol import (
    MAX_PARTICIPANTS,
    Admit,
    ErrorCode,
    Hangup,
    LobbyJoin,
    ProtocolError,
    Remove,
    Resume,
    Role,
)
from server.signalling import INVITATION_SECONDS, MAX_INVITATIONS, Entitlement, Participant
from tests.server.signalling.conftest import Board, sent


def _guest(board: Board, session_id: str, n: int = 1) -> Participant:
    return board.connect(
        Role.CITIZEN,
        f"pass-{n}",
        name=f"Interpreter {n}",
        entitlement=Entitlement(invited_to=session_id),
    )


def test_invite_admit_and_remove(board: Board) -> None:
    booth, advisor, session_id = board.call()
    token = board.switchboard.invite("alice", session_id, "Interpreter")
    invitation = board.switchboard.invitation(token)
    assert invitation is not None
    assert (invitation.session_id, invitation.label) == (session_id, "Interpreter")

    guest = _guest(board, session_id)
    board.send(guest, LobbyJoin())
    assert sent(guest).last("call_waiting")["session_id"] == session_id
    waiting = sent(advisor).last("participant_waiting")
    assert waiting["peer"]["participant_id"] == guest.participant_id
    assert sent(booth).of_type("participant_waiting") == []  # only the advisor lets people in

    board.send(advisor, Admit(session_id=session_id, participant_id=guest.participant_id))
    started = sent(guest).last("call_started")
    assert started["offerer"] is False
    assert [p["role"] for p in started["peers"]] == ["booth", "advisor"]
    for participant in (booth, advisor):
        joined = sent(participant).last("participant_joined")
        assert joined["peer"]["participant_id"] == guest.participant_id

    board.send(advisor, Remove(session_id=session_id, participant_id=guest.participant_id))
    assert sent(guest).last("hangup")["reason"] == "removed"
    left = sent(booth).last("participant_left")
    assert (left["participant_id"], left["reason"]) == (guest.participant_id, "removed")
    assert board.switchboard.sessions[session_id].participants() == [booth, advisor]
    assert (session_id, guest.participant_id) in board.endings

    # Its token does not bring it back.
    again = _guest(board, session_id, 2)
    again.principal_id = guest.principal_id
    error = board.refused(again, Resume(session_id=session_id, token=started["resume_token"]))
    assert (error.code, error.message) == (
        ErrorCode.CANNOT_RESUME,
        "you left this call; it cannot be taken up again",
    )


def test_only_the_calls_advisor_invites_and_admits(board: Board) -> None:
    _booth, advisor, session_id = board.call()
    with pytest.raises(ProtocolError) as caught:
        board.switchboard.invite("mallory", session_id, "x")
    assert caught.value.code is ErrorCode.NOT_IN_SESSION
    guest = _guest(board, session_id)
    board.send(guest, LobbyJoin())
    error = board.refused(advisor, Admit(session_id=session_id, participant_id="nobody"))
    assert (error.code, error.message) == (
        ErrorCode.NOT_IN_SESSION,
        "nobody with that id waits to join",
    )
    other = board.advisor("bob")
    error = board.refused(other, Admit(session_id=session_id, participant_id=guest.participant_id))
    assert error.code is ErrorCode.NOT_IN_SESSION


def test_invitations_are_limited_and_expire(board: Board) -> None:
    _, _, session_id = board.call()
    tokens = [board.switchboard.invite("alice", session_id, f"{n}") for n in range(MAX_INVITATIONS)]
    with pytest.raises(ProtocolError) as caught:
        board.switchboard.invite("alice", session_id, "one more")
    assert caught.value.message == "this call has enough open invitations"
    board.clock.advance(INVITATION_SECONDS)
    assert board.switchboard.invitation(tokens[0]) is None
    board.switchboard.invite("alice", session_id, "after the others expired")


def test_an_invitation_dies_with_its_call(board: Board) -> None:
    booth, _, session_id = board.call()
    token = board.switchboard.invite("alice", session_id, "Interpreter")
    guest = _guest(board, session_id)
    board.send(guest, LobbyJoin())
    board.send(booth, Hangup(session_id=session_id))
    assert board.switchboard.invitation(token) is None
    assert sent(guest).last("hangup")["reason"] == "hangup"
    assert guest.session_id is None


def test_a_guest_who_stops_waiting_tells_the_advisor(board: Board) -> None:
    _, advisor, session_id = board.call()
    guest = _guest(board, session_id)
    board.send(guest, LobbyJoin())
    board.send(guest, Hangup(session_id=session_id, reason="cancelled"))
    left = sent(advisor).last("participant_left")
    assert (left["participant_id"], left["reason"]) == (guest.participant_id, "cancelled")
    assert board.switchboard.sessions[session_id].pending == []


def test_a_full_call_admits_nobody_more(board: Board) -> None:
    _, advisor, session_id = board.call()
    guests = [_guest(board, session_id, n) for n in range(1, MAX_PARTICIPANTS)]
    for guest in guests:
        board.send(guest, LobbyJoin())
    for guest in guests[:-1]:
        board.send(advisor, Admit(session_id=session_id, participant_id=guest.participant_id))
    error = board.refused(
        advisor, Admit(session_id=session_id, participant_id=guests[-1].participant_id)
    )
    assert (error.code, error.message) == (
        ErrorCode.CALL_FULL,
        f"a call has at most {MAX_PARTICIPANTS} participants",
    )
