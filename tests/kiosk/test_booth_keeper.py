"""The connection keeper (kiosk/booth/keeper.py) with a stand-in link and no peer connections:
its recovery state goes steady -> interrupted -> given up while the link stays down, each
transition logged once as ``old -> new``, and ending the call tells the server and the booth."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from kiosk.booth.keeper import (
    REPAIR_RETRY_SECONDS,
    ConnectionKeeper,
    Recovery,
    Repair,
    RepairStep,
)
from kiosk.booth.relayprobe import Answer, RelayAddress, RelayWatch
from kiosk.identity import ServerAccess
from kiosk.link import LinkState
from protocol import Hangup, HangupReason, IceServer, Message, Peer, Role


class FakeLink:
    def __init__(self) -> None:
        self.state = LinkState.ONLINE
        self.urgent = False
        self.sent: list[Message] = []
        self.retries = 0

    def retry_now(self) -> None:
        self.retries += 1

    def send(self, message: Message) -> bool:
        self.sent.append(message)
        return self.state is LinkState.ONLINE


def _keeper(link: FakeLink, posted: list[Repair | Hangup]) -> ConnectionKeeper:
    fake: Any = link
    return ConnectionKeeper(
        link=fake,
        access=ServerAccess(server_url="http://127.0.0.1:9", credential="b.s"),
        session_id=lambda: "s1",
        legs=list,
        post=posted.append,
        reconnect_limit_seconds=60.0,
    )


async def test_a_call_broken_past_the_limit_is_given_up_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="kiosk.booth.keeper")
    link, posted = FakeLink(), []
    keeper = _keeper(link, posted)
    assert keeper.state is Recovery.IDLE
    keeper.keep("resume-token")
    assert keeper.state is Recovery.STEADY and link.urgent
    keeper._check(100.0)
    assert keeper.state is Recovery.STEADY and not keeper.reconnecting

    link.state = LinkState.OFFLINE
    keeper._check(101.0)
    assert keeper.state is Recovery.INTERRUPTED and keeper.reconnecting
    keeper._check(150.0)
    assert keeper.state is Recovery.INTERRUPTED and posted == []
    keeper._check(161.0)
    assert keeper.state is Recovery.GIVEN_UP
    assert posted == [Hangup(session_id="local", reason=HangupReason.CONNECTION_LOST)]
    keeper._check(161.5)
    assert len(posted) == 1  # once, not every half second

    link.state = LinkState.ONLINE
    keeper.link_up()
    assert link.sent[-1].type == "resume"
    await keeper.stop()
    assert keeper.state is Recovery.IDLE and not link.urgent and keeper.resume_token is None
    transitions = [r.getMessage() for r in caplog.records if "recovery" in r.getMessage()]
    assert transitions == [
        "session s1: recovery idle -> steady",
        "session s1: recovery steady -> interrupted",
        "session s1: recovery interrupted -> given_up",
        "session s1: recovery given_up -> idle",
    ]


# ------------------------------------------------------------ relays asked during an outage

RELAY_A = RelayAddress("127.0.0.1", 3478, "udp")
RELAY_B = RelayAddress("127.0.0.1", 3479, "udp")
SERVERS = [
    IceServer(urls=["turn:127.0.0.1:3478?transport=udp"], username="u", credential="c"),
    IceServer(urls=["turn:127.0.0.1:3479?transport=udp"], username="u", credential="c"),
]


class FakePc:
    connectionState = "connected"  # noqa: N815 - aiortc's name


class FakeLeg:
    """What the keeper reads of a :class:`~kiosk.peerlink.PeerLink`."""

    def __init__(self, *, created_at: float, relay_turn: int = 0, restart: bool = False) -> None:
        self.pc = FakePc()
        self.peer = Peer(participant_id="advisor-1", role=Role.ADVISOR, name="Alex")
        self.session_id = "s1"
        self.started = SimpleNamespace(ice_servers=SERVERS)
        self.relay_turn = relay_turn
        self.restart = restart
        self.created_at = created_at
        self.connected_at: float | None = None if restart else created_at
        self.media_at = created_at
        #: When media last came (None: none since it was made).
        self.received = SimpleNamespace(last_at=None if restart else created_at)

    def media_seen_at(self) -> float:
        return self.media_at


class Relays:
    """The relays' answers as a test sets them, asked through a real :class:`RelayWatch`
    on the test's clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.answers: dict[RelayAddress, Answer] = {}
        self.asked: list[RelayAddress] = []
        self.watch = RelayWatch(probe=self._probe, clock=lambda: self.now)

    async def _probe(self, relay: RelayAddress, wait: float) -> Answer:
        self.asked.append(relay)
        return self.answers.get(relay, Answer.SILENT)


class Outage:
    """A keeper with one leg, ticked on a fake clock; what it posts is collected."""

    def __init__(self, leg: FakeLeg) -> None:
        self.link = FakeLink()
        self.relays = Relays()
        self.legs: list[Any] = [leg]
        self.posted: list[Repair | Hangup] = []
        fake: Any = self.link
        self.keeper = ConnectionKeeper(
            link=fake,
            access=ServerAccess(server_url="http://127.0.0.1:9", credential="b.s"),
            session_id=lambda: "s1",
            legs=lambda: self.legs,
            post=self.posted.append,
            reconnect_limit_seconds=60.0,
            relays=self.relays.watch,
            clock=lambda: self.relays.now,
        )

    async def run(self, start: float, end: float, *, flowing: bool = False) -> None:
        """Tick every 0.1 s from ``start`` to ``end``, letting each probe answer; ``flowing``:
        media arrives on every leg meanwhile."""
        now = start
        while now <= end + 1e-9:
            for leg in self.legs if flowing else []:
                leg.media_at = now
            self.relays.now = now
            self.keeper._check(now)
            for _ in range(3):
                await asyncio.sleep(0)  # the probes started by this tick answer
            now = round(now + 0.1, 3)

    def steps(self) -> list[tuple[RepairStep, int | None]]:
        return [(p.step, p.relay_turn) for p in self.posted if isinstance(p, Repair)]


async def test_a_frozen_relay_is_asked_until_it_answers_then_the_replacement_takes_over() -> None:
    leg = FakeLeg(created_at=90.0)
    leg.media_at = 100.0  # the relay froze at 100
    outage = Outage(leg)
    await outage.run(100.0, 100.3)
    assert outage.relays.asked == []  # not yet: a short gap is nothing
    await outage.run(100.4, 130.0)
    assert outage.steps() == []  # nothing answers: nothing to build a connection on
    assert len(outage.relays.asked) >= 140  # about five times a second, both relays
    assert outage.relays.asked.count(RELAY_B) > 0  # the other relay is asked too
    outage.relays.answers[RELAY_A] = Answer.ANSWERED  # back (B stays silent)
    await outage.run(130.1, 130.3)
    assert outage.steps() == [(RepairStep.PREPARE, 0)]  # ready at once, through the same relay
    await outage.run(130.4, 130.6)
    assert len(outage.steps()) == 1  # the old path gets its chance to heal first
    await outage.run(130.7, 130.8)
    # The relay answered at 130.2 (the first probe after its return); RETURN_GRACE_SECONDS later:
    assert outage.steps() == [(RepairStep.PREPARE, 0), (RepairStep.SWITCH, 0)]
    switch = outage.posted[-1]
    assert isinstance(switch, Repair) and switch.silent_since == 100.0
    await outage.run(130.9, 134.0)
    assert len(outage.steps()) == 2  # once; the replacement gets its time
    await outage.keeper.stop()


async def test_a_path_that_heals_keeps_its_connection_and_drops_the_prepared_one() -> None:
    leg = FakeLeg(created_at=90.0)
    leg.media_at = 100.0
    outage = Outage(leg)
    await outage.run(100.0, 109.9)
    outage.relays.answers[RELAY_A] = Answer.ANSWERED
    await outage.run(110.0, 110.2)
    assert outage.steps() == [(RepairStep.PREPARE, 0)]
    # The old path carries media again within a round trip.
    await outage.run(110.3, 112.0, flowing=True)
    assert outage.steps() == [(RepairStep.PREPARE, 0), (RepairStep.HEALED, None)]
    assert outage.keeper.state is Recovery.INTERRUPTED or outage.keeper.trouble_since is None
    await outage.keeper.stop()


async def test_a_relay_that_answers_while_media_stops_was_restarted_and_is_replaced() -> None:
    outage = Outage(leg := FakeLeg(created_at=90.0))
    outage.relays.answers = {RELAY_A: Answer.ANSWERED, RELAY_B: Answer.ANSWERED}
    leg.media_at = 100.0  # the relay restarted: it answers, but the allocation is gone
    await outage.run(100.0, 102.0)
    switched = [p for p in outage.posted if isinstance(p, Repair)]
    assert [(p.step, p.relay_turn) for p in switched] == [
        (RepairStep.PREPARE, 0),
        (RepairStep.SWITCH, 0),
    ]
    # Probing began after PROBE_AFTER_SECONDS; the switch came a grace later, not seconds.
    assert outage.relays.asked[0] == RELAY_A
    await outage.keeper.stop()


async def test_a_lost_relay_of_the_pool_is_left_for_one_that_answers() -> None:
    outage = Outage(leg := FakeLeg(created_at=90.0))
    outage.relays.answers = {RELAY_A: Answer.REFUSED, RELAY_B: Answer.ANSWERED}
    leg.media_at = 100.0  # relay A killed
    await outage.run(100.0, 101.0)
    assert outage.steps() == [(RepairStep.PREPARE, 1), (RepairStep.SWITCH, 1)]
    await outage.keeper.stop()


async def test_a_silent_relay_of_the_pool_is_left_after_two_unanswered_probes() -> None:
    outage = Outage(leg := FakeLeg(created_at=90.0))
    outage.relays.answers = {RELAY_B: Answer.ANSWERED}  # A frozen: no answer at all
    leg.media_at = 100.0
    await outage.run(100.0, 100.6)
    assert outage.steps() == []  # A missed once: not known to be gone yet
    await outage.run(100.7, 101.2)
    assert outage.steps() == [(RepairStep.PREPARE, 1), (RepairStep.SWITCH, 1)]
    await outage.keeper.stop()


async def test_a_replacement_made_before_its_relay_went_away_is_replaced_when_it_is_back() -> None:
    # The connection made anew at 200 never connected: its relay went away at 200.2.
    outage = Outage(FakeLeg(created_at=200.0, restart=True))
    outage.relays.answers = {RELAY_A: Answer.SILENT}
    await outage.run(200.0, 203.0)
    assert outage.steps() == []
    outage.relays.answers[RELAY_A] = Answer.ANSWERED
    await outage.run(203.1, 203.2)
    # Not after REPAIR_RETRY_SECONDS: at once, since what it was made with is gone.
    assert outage.steps() == [(RepairStep.PREPARE, 0), (RepairStep.SWITCH, 0)]
    await outage.keeper.stop()


async def test_a_replacement_gets_its_time_when_nothing_went_wrong_meanwhile() -> None:
    outage = Outage(FakeLeg(created_at=200.0, restart=True))
    outage.relays.answers = {RELAY_A: Answer.ANSWERED}
    await outage.run(200.0, 200.0 + REPAIR_RETRY_SECONDS - 0.1)
    assert outage.steps() == []  # no spare for a connection still being set up
    await outage.run(200.0 + REPAIR_RETRY_SECONDS, 200.0 + REPAIR_RETRY_SECONDS + 0.1)
    assert outage.steps() == [(RepairStep.PREPARE, 0), (RepairStep.SWITCH, 0)]
    await outage.keeper.stop()


async def test_the_link_is_told_to_try_now_when_a_relay_answers_and_switching_waits_for_it() -> (
    None
):
    outage = Outage(leg := FakeLeg(created_at=90.0))
    leg.media_at = 100.0
    outage.link.state = LinkState.OFFLINE  # the booth's whole network was cut
    await outage.run(100.0, 110.0)
    assert outage.link.retries == 0
    outage.relays.answers[RELAY_A] = Answer.ANSWERED
    await outage.run(110.1, 111.0)
    assert outage.link.retries > 0
    assert outage.steps() == [(RepairStep.PREPARE, 0)]  # ready, but no offer can go out
    outage.link.state = LinkState.ONLINE
    await outage.run(111.1, 111.1)
    assert outage.steps() == [(RepairStep.PREPARE, 0), (RepairStep.SWITCH, 0)]
    await outage.keeper.stop()


async def test_a_failed_connection_is_replaced_as_soon_as_its_relay_answers() -> None:
    outage = Outage(leg := FakeLeg(created_at=90.0))
    leg.media_at = 100.0
    leg.pc.connectionState = "failed"  # aioice gave up during a long outage
    await outage.run(100.0, 130.0)
    assert outage.steps() == []  # the relay is gone: a new connection would fail too
    outage.relays.answers[RELAY_A] = Answer.ANSWERED
    await outage.run(130.1, 130.3)  # the next probe answers; the tick after it switches
    assert outage.steps() == [(RepairStep.PREPARE, 0), (RepairStep.SWITCH, 0)]
    await outage.keeper.stop()


async def test_one_slow_answer_of_a_relay_just_continued_does_not_undo_a_replacement() -> None:
    # A relay continued after a freeze works through its queue and misses a probe: the
    # connection just made through it is not made anew for that.
    outage = Outage(FakeLeg(created_at=300.0, restart=True))
    outage.relays.answers = {RELAY_A: Answer.ANSWERED}
    await outage.run(300.0, 300.4)
    outage.relays.answers[RELAY_A] = Answer.SILENT
    await outage.run(300.5, 300.5)
    outage.relays.answers[RELAY_A] = Answer.ANSWERED
    await outage.run(300.6, 301.5)
    assert outage.steps() == []
    await outage.keeper.stop()


async def test_a_connection_made_anew_that_connected_gets_its_time_until_media_comes() -> None:
    leg = FakeLeg(created_at=400.0, restart=True)
    leg.connected_at = 400.2  # connected; the other side's first frames take a while
    outage = Outage(leg)
    outage.relays.answers = {RELAY_A: Answer.ANSWERED}
    await outage.run(400.0, 402.0)
    assert outage.steps() == []
    leg.received.last_at = leg.media_at = 402.1
    await outage.run(402.1, 403.0, flowing=True)
    assert outage.steps() == []  # nothing healed: it was never broken
    await outage.keeper.stop()
