"""The queue: advisors see the waiting calls they may take, in one update per burst; walk-ins
learn their place and an estimate; citizens' browsers are limited in all and per address."""

from __future__ import annotations

from protocol import CallAccept, CallCancel, CallRequest, ErrorCode, LobbyJoin, Role
from server.signalling import Entitlement, Participant
from server.signalling.waiting_room import DEFAULT_WAIT_SECONDS, QUEUE_UPDATE_SECONDS
from tests.server.signalling.conftest import Board, make_board, sent


def test_an_advisor_sees_the_queue_on_connecting_and_when_it_changes(board: Board) -> None:
    advisor = board.advisor()
    assert sent(advisor).last("queue")["waiting"] == []
    booth = board.booth()
    session_id = board.wait(booth)
    (waiting,) = sent(advisor).queue()
    assert (waiting["session_id"], waiting["caller_id"], waiting["caller_role"]) == (
        session_id,
        "booth-1",
        "booth",
    )
    assert sent(booth).last("queue_position") == {
        "v": 1,
        "type": "queue_position",
        "session_id": session_id,
        "position": 1,
        "estimated_wait_seconds": round(DEFAULT_WAIT_SECONDS),
    }
    late = board.advisor("bob")
    assert [w["session_id"] for w in sent(late).last("queue")["waiting"]] == [session_id]


def test_a_burst_of_changes_is_one_update(board: Board) -> None:
    advisor = board.advisor()
    board.wait(board.booth("b1"))  # at once: nothing went out for a while
    sent(advisor).clear()
    booths = [board.booth(f"b{n}") for n in (2, 3, 4)]
    cancelled = [board.wait(booth) for booth in booths][1]
    assert sent(advisor).of_type("queue_changed") == []
    board.clock.advance(QUEUE_UPDATE_SECONDS)
    (update,) = sent(advisor).of_type("queue_changed")  # only what changed: three new calls
    assert [w["caller_id"] for w in update["upsert"]] == ["b2", "b3", "b4"]
    assert update["remove"] == []
    board.send(booths[1], CallCancel(session_id=cancelled))
    board.clock.advance(QUEUE_UPDATE_SECONDS)
    assert sent(advisor).last("queue_changed") == {
        "v": 1,
        "type": "queue_changed",
        "upsert": [],
        "remove": [cancelled],
    }


def test_places_are_per_topic_and_told_again_only_when_they_change(board: Board) -> None:
    first, second, other = board.booth("b1"), board.booth("b2"), board.booth("b3")
    board.send(first, CallRequest())
    board.clock.advance(1)
    board.send(second, CallRequest())
    board.clock.advance(1)
    board.switchboard.handle(other, CallRequest(), topic=("t-tax", "Taxes"))
    board.clock.advance(1)
    assert sent(second).last("queue_position")["position"] == 2
    assert sent(other).last("queue_position")["position"] == 1  # a queue of its own
    told = len(sent(other).of_type("queue_position"))
    session_id = sent(first).last("call_waiting")["session_id"]
    board.send(first, CallCancel(session_id=session_id))
    board.clock.advance(1)
    assert sent(second).last("queue_position")["position"] == 1
    assert len(sent(other).of_type("queue_position")) == told  # its place did not change


def test_an_advisor_sees_only_the_topics_served_and_its_own_appointments(board: Board) -> None:
    taxes = board.connect(Role.ADVISOR, "tax", entitlement=Entitlement(topics=frozenset({"t1"})))
    anyone = board.advisor("any")
    board.switchboard.handle(board.booth("b1"), CallRequest(), topic=("t2", "Housing"))
    lobby = board.connect(
        Role.CITIZEN,
        "pass-1",
        entitlement=Entitlement(appointment_id="a1", appointment_advisor="any"),
    )
    board.send(lobby, LobbyJoin())
    board.clock.advance(1)
    assert sent(taxes).queue() == []
    assert [w.get("topic_name") for w in sent(anyone).queue()] == ["Housing", None]
    session_id = sent(lobby).last("call_waiting")["session_id"]
    error = board.refused(taxes, CallAccept(session_id=session_id))
    assert (error.code, error.message) == (
        ErrorCode.UNKNOWN_SESSION,
        f"no waiting call {session_id}",
    )


def test_an_accepted_walk_in_teaches_the_estimate(board: Board) -> None:
    booth, advisor = board.booth(), board.advisor()
    session_id = board.wait(booth)
    board.clock.advance(60)
    board.send(advisor, CallAccept(session_id=session_id))
    # 180 s before; a wait of 60 s moves it by 30 % of the difference.
    assert board.switchboard.room.average_wait == DEFAULT_WAIT_SECONDS + 0.3 * (60 - 180)


def test_walk_ins_from_browsers_are_limited_in_all_and_per_address() -> None:
    board = make_board(walk_in_queue_limit=3, walk_ins_per_address=2)
    walk_in = Entitlement(walk_in=True)

    def citizen(n: int, address: str) -> Participant:
        return board.connect(Role.CITIZEN, f"pass-{n}", entitlement=walk_in, address=address)

    first, second, third = citizen(1, "10.0.0.1"), citizen(2, "10.0.0.1"), citizen(3, "10.0.0.1")
    board.send(first, CallRequest())
    board.send(second, CallRequest())
    error = board.refused(third, CallRequest())
    assert error.code is ErrorCode.QUEUE_FULL
    assert error.message.startswith("too many people from your network are waiting already")
    board.send(citizen(4, "10.0.0.2"), CallRequest())
    error = board.refused(citizen(5, "10.0.0.3"), CallRequest())
    assert (error.code, error.message) == (
        ErrorCode.QUEUE_FULL,
        "too many people are waiting right now; please try again in a few minutes",
    )
    # A booth is not a browser: it is never refused for the queue's length.
    board.wait(board.booth())


def test_a_citizen_without_a_walk_in_pass_cannot_ask_for_an_advisor_now(board: Board) -> None:
    citizen = board.connect(Role.CITIZEN, "pass-1", entitlement=Entitlement(appointment_id="a1"))
    error = board.refused(citizen, CallRequest())
    assert (error.code, error.message) == (
        ErrorCode.NOT_ALLOWED,
        "open the page for an advisor now first",
    )
