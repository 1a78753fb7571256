"""The façade: connections one at a time per booth, a client that stopped reading, logins
that end, cancelled appointments, revoked booths, and the figures for /metrics."""

from __future__ import annotations

from datetime import timedelta

from protocol import CallAccept, Chat, Heartbeat, LobbyJoin, Role
from server.signalling import Entitlement, LoginLease, Presence
from tests.server.signalling.conftest import Board, sent


def test_a_newer_connection_of_a_booth_replaces_the_older(board: Board) -> None:
    older = board.booth()
    newer = board.booth()
    assert sent(older).closed == [(4001, "replaced by a newer connection")]
    assert list(board.switchboard.connections.values()) == [newer]
    assert board.switchboard.online_booths() == {"booth-1"}


def test_a_client_that_stopped_reading_is_closed(board: Board) -> None:
    advisor = board.advisor()
    sent(advisor).full = True
    board.wait(board.booth())
    assert sent(advisor).closed == [(1008, "outbox full")]


def test_messages_to_an_away_participant_are_held(board: Board) -> None:
    booth, advisor, session_id = board.call()
    board.switchboard.unregister(booth)
    count = len(sent(booth).sent)
    board.send(advisor, Heartbeat())
    board.send(advisor, Chat(session_id=session_id, text="hi"))
    assert len(sent(booth).sent) == count
    assert len(booth.held) == 1


def test_ended_logins_close_their_connections_and_calls(board: Board) -> None:
    booth = board.booth()
    advisor = board.advisor()
    advisor.login = LoginLease(id="login-1", expires_at=board.clock.now() + timedelta(hours=1))
    other = board.advisor()
    other.login = LoginLease(id="login-2")
    session_id = board.wait(booth)
    board.send(advisor, CallAccept(session_id=session_id))
    assert board.switchboard.end_logins("alice", keep="login-2", reason="password changed") == 1
    assert sent(advisor).closed == [(4003, "password changed")]
    assert sent(booth).last("hangup")["reason"] == "peer_disconnected"  # no resume
    assert sent(other).closed == []

    board.switchboard.renew_login("login-2", "login-3", board.clock.now())
    assert other.login == LoginLease(id="login-3", expires_at=board.clock.now())
    board.clock.advance(1)
    board.switchboard.expire_logins()
    assert sent(other).closed == [(4003, "login expired")]
    assert board.switchboard.connections.with_role(Role.ADVISOR) == []


def test_a_cancelled_appointment_ends_its_lobby(board: Board) -> None:
    citizen = board.connect(
        Role.CITIZEN,
        "pass-1",
        entitlement=Entitlement(appointment_id="a1", appointment_advisor="alice"),
    )
    board.send(citizen, LobbyJoin())
    board.switchboard.appointment_cancelled("a1")
    assert sent(citizen).closed == [(4003, "the appointment was cancelled")]
    assert board.switchboard.sessions == {}


def test_a_revoked_booth_is_disconnected_and_its_call_ends(board: Board) -> None:
    booth, advisor, _session_id = board.call()
    board.switchboard.disconnect_booth("booth-1", "revoked")
    assert sent(booth).closed == [(4003, "revoked")]
    assert booth.presence is Presence.CONNECTED  # not away: nothing waits for it
    assert sent(advisor).last("hangup")["reason"] == "peer_disconnected"


def test_figures(board: Board) -> None:
    board.call()
    board.wait(board.booth("booth-2"))
    board.switchboard.signalling_errors += 2
    figures = board.switchboard.figures()
    assert (figures.active_calls, figures.waiting, figures.signalling_errors) == (
        1,
        {"none": 1},
        2,
    )
    assert figures.connections == {Role.BOOTH: 2, Role.ADVISOR: 1, Role.CITIZEN: 0}


def test_shutdown_closes_everyone_and_cancels_the_pending_update(board: Board) -> None:
    advisor = board.advisor()
    board.wait(board.booth("b1"))
    board.wait(board.booth("b2"))  # its update is due later
    board.switchboard.close_all()
    assert sent(advisor).closed == [(1001, "server shutting down")]
    assert [t for t in board.clock.timers if not t.cancelled] == []
