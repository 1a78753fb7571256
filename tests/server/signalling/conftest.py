"""A switchboard driven without HTTP: participants on recording transports, a clock moved by
hand, and a helper for each step of a call."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from protocol import (
    CallAccept,
    CallRequest,
    IceServer,
    IceTransportPolicy,
    Message,
    ProtocolError,
    Role,
)
from server.signalling import CallSession, Entitlement, Participant
from server.signalling.fakes import FakeClock, RecordingTransport
from server.switchboard import Switchboard

KEY = b"k" * 32


@dataclass
class Board:
    """The switchboard under test, its clock, and what was ended (as the app is told)."""

    switchboard: Switchboard
    clock: FakeClock
    ended_calls: list[str] = field(default_factory=list)
    endings: list[tuple[str, str]] = field(default_factory=list)

    def connect(
        self,
        role: Role,
        principal_id: str,
        *,
        name: str | None = None,
        entitlement: Entitlement | None = None,
        address: str | None = None,
    ) -> Participant:
        participant = Participant(
            role=role,
            principal_id=principal_id,
            name=name or principal_id,
            transport=RecordingTransport(),
            entitlement=entitlement or Entitlement(),
            address=address,
        )
        self.switchboard.register(participant)
        return participant

    def booth(self, booth_id: str = "booth-1") -> Participant:
        return self.connect(Role.BOOTH, booth_id)

    def advisor(self, user_id: str = "alice") -> Participant:
        return self.connect(Role.ADVISOR, user_id)

    def send(self, participant: Participant, message: Message) -> None:
        self.switchboard.handle(participant, message)

    def refused(self, participant: Participant, message: Message) -> ProtocolError:
        """The error ``message`` is refused with (it fails the test when it is not)."""
        with pytest.raises(ProtocolError) as caught:
            self.switchboard.handle(participant, message)
        return caught.value

    def wait(self, caller: Participant) -> str:
        """``caller`` asks for an advisor now; the waiting session's id."""
        self.send(caller, CallRequest())
        return str(sent(caller).last("call_waiting")["session_id"])

    def call(self) -> tuple[Participant, Participant, str]:
        """A booth in a call with an advisor: both, and the session id."""
        booth, advisor = self.booth(), self.advisor()
        session_id = self.wait(booth)
        self.send(advisor, CallAccept(session_id=session_id))
        return booth, advisor, session_id


def sent(participant: Participant) -> RecordingTransport:
    """What reached ``participant``'s transport."""
    transport = participant.transport
    assert isinstance(transport, RecordingTransport)
    return transport


@pytest.fixture
def board() -> Board:
    return make_board()


def make_board(
    *,
    clock: FakeClock | None = None,
    resume_key: bytes | None = KEY,
    resume_grace_seconds: float = 60.0,
    walk_in_queue_limit: int = 300,
    walk_ins_per_address: int = 3,
) -> Board:
    """A switchboard on ``clock`` (a new one by default), resumable unless told otherwise."""
    clock = clock or FakeClock()
    ended_calls: list[str] = []
    endings: list[tuple[str, str]] = []

    def ice_for(participant: Participant, session: CallSession) -> list[IceServer]:
        return [IceServer(urls=["stun:relay.example:3478"])]

    def call_ended(session: CallSession) -> None:
        ended_calls.append(session.id)

    def ending(session_id: str, participant_id: str) -> None:
        endings.append((session_id, participant_id))

    switchboard = Switchboard(
        ice_servers_for=ice_for,
        booth_ice_policy=IceTransportPolicy.ALL,
        browser_ice_policy=IceTransportPolicy.RELAY,
        on_call_ended=call_ended,
        on_ending=ending,
        resume_key=resume_key,
        resume_grace_seconds=resume_grace_seconds,
        walk_in_queue_limit=walk_in_queue_limit,
        walk_ins_per_address=walk_ins_per_address,
        clock=clock,
    )
    return Board(switchboard, clock, ended_calls, endings)
