"""Live signalling: who is connected, which calls wait or run, and relaying between them.

The switchboard is synchronous on purpose: every handler runs to completion on the event loop
without awaiting, so no two messages interleave half-way and the state needs no locks. Sending
is a bounded per-connection queue drained by that connection's writer task, so one slow client
never holds up anybody else.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from protocol import (
    Answer,
    AppointmentJoin,
    CallAccept,
    CallCancel,
    CallRequest,
    CallStarted,
    CallStats,
    CallWaiting,
    Chat,
    ErrorCode,
    Hangup,
    Heartbeat,
    IceCandidate,
    IceServer,
    IceTransportPolicy,
    LobbyJoin,
    Message,
    Offer,
    Peer,
    ProtocolError,
    Queue,
    QueuePosition,
    Role,
    WaitingCall,
    encode,
)
from server.ratelimit import TokenBucket

log = logging.getLogger(__name__)

#: Messages a connection may have queued for sending before it counts as stuck and is closed.
OUTBOX_LIMIT = 256
#: Estimated wait per caller ahead before any call was accepted (seconds).
DEFAULT_WAIT_SECONDS = 180.0
#: Weight of the newest observed wait in the running estimate.
WAIT_SMOOTHING = 0.3
#: Chat kept for a call (for a participant who joins late); older lines fall off.
CHAT_HISTORY = 200
#: Chat lines one participant may send: a burst, then one every two seconds.
CHAT_BURST, CHAT_RATE = 5.0, 0.5

_ALLOWED: dict[Role, frozenset[type[Message]]] = {
    Role.BOOTH: frozenset(
        {
            CallRequest,
            AppointmentJoin,
            CallCancel,
            Offer,
            Answer,
            IceCandidate,
            Hangup,
            Chat,
            CallStats,
            Heartbeat,
        }
    ),
    Role.ADVISOR: frozenset({CallAccept, Offer, Answer, IceCandidate, Hangup, Chat, Heartbeat}),
    Role.CITIZEN: frozenset(
        {LobbyJoin, CallCancel, Offer, Answer, IceCandidate, Hangup, Chat, Heartbeat}
    ),
}


def new_id() -> str:
    return secrets.token_hex(16)


class SessionState(StrEnum):
    WAITING = "waiting"
    ACTIVE = "active"
    ENDED = "ended"


@dataclass(eq=False)
class Connection:
    """One authenticated client (a booth or an advisor's browser)."""

    role: Role
    principal_id: str  # booth id or user id
    name: str
    close: Callable[[int, str], None]
    participant_id: str = field(default_factory=new_id)
    session_id: str | None = None
    outbox: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(OUTBOX_LIMIT))
    last_heartbeat: float = field(default_factory=time.monotonic)
    reported_state: str | None = None
    #: For a citizen: the appointment its guest pass is for, and that appointment's advisor.
    appointment_id: str | None = None
    appointment_advisor: str | None = None
    #: For an advisor: the topics served (empty: every topic, as in a small office).
    topics: frozenset[str] = frozenset()
    chat_bucket: TokenBucket = field(
        default_factory=lambda: TokenBucket(rate=CHAT_RATE, burst=CHAT_BURST)
    )

    def send(self, message: Message) -> None:
        """Queue ``message``; a client that stopped reading is disconnected, not waited for."""
        try:
            self.outbox.put_nowait(encode(message))
        except asyncio.QueueFull:
            log.warning("closing %s %s: it stopped reading", self.role, self.participant_id)
            self.close(1008, "outbox full")

    def peer(self) -> Peer:
        return Peer(participant_id=self.participant_id, role=self.role, name=self.name)

    def __str__(self) -> str:
        return f"{self.role} {self.name!r} ({self.participant_id[:8]})"


@dataclass(eq=False)
class CallSession:
    id: str
    #: Who asked for the call: a booth (walk-in or appointment) or a citizen's browser.
    caller: Connection
    advisor: Connection | None = None
    #: The appointment this call belongs to; only its advisor sees and admits it.
    appointment_id: str | None = None
    advisor_id: str | None = None
    topic_id: str | None = None
    topic_name: str | None = None
    state: SessionState = SessionState.WAITING
    waiting_since: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: The call's chat: in memory only, and gone with the session (data protection).
    chat: deque[Chat] = field(default_factory=lambda: deque(maxlen=CHAT_HISTORY))

    def participants(self) -> list[Connection]:
        return [c for c in (self.caller, self.advisor) if c is not None]


def _visible_to(session: CallSession, advisor: Connection) -> bool:
    """An appointment's lobby is for its own advisor; a walk-in on a topic for the advisors
    who serve that topic (and those who serve any); a walk-in without a topic for all."""
    if session.advisor_id is not None:
        return session.advisor_id == advisor.principal_id
    return session.topic_id is None or not advisor.topics or session.topic_id in advisor.topics


IceServersFor = Callable[[Connection, CallSession], list[IceServer]]


class Switchboard:
    """Routes signalling between the participants of a session, and only between them."""

    def __init__(
        self,
        *,
        ice_servers_for: IceServersFor,
        booth_ice_policy: IceTransportPolicy,
        browser_ice_policy: IceTransportPolicy,
        on_call_ended: Callable[[CallSession], None] | None = None,
    ) -> None:
        self._ice_servers_for = ice_servers_for
        #: Told about every call that was connected and has ended (records, not media).
        self._on_call_ended = on_call_ended
        self._booth_ice_policy = booth_ice_policy
        self._browser_ice_policy = browser_ice_policy
        self.connections: dict[str, Connection] = {}
        self.sessions: dict[str, CallSession] = {}
        #: Running estimate of how long one walk-in waits for an advisor (seconds).
        self.average_wait = DEFAULT_WAIT_SECONDS

    # ------------------------------------------------------------ connections

    def register(self, conn: Connection) -> None:
        """Add a connection; a booth that connects again replaces its older connection."""
        if conn.role is Role.BOOTH:
            for other in list(self.connections.values()):
                if other.role is Role.BOOTH and other.principal_id == conn.principal_id:
                    log.info("booth %s connected again; closing its older connection", conn.name)
                    self.unregister(other)
                    other.close(4001, "replaced by a newer connection")
        self.connections[conn.participant_id] = conn
        log.info("%s connected", conn)
        if conn.role is Role.ADVISOR:
            conn.send(self._queue_message(conn))

    def unregister(self, conn: Connection) -> None:
        """Remove a connection and end its session (the peer is told why)."""
        if self.connections.pop(conn.participant_id, None) is None:
            return
        if conn.session_id is not None:
            self._end_session(conn.session_id, "peer_disconnected", by=conn)
        log.info("%s disconnected", conn)

    # ------------------------------------------------------------ messages

    def handle(
        self,
        conn: Connection,
        message: Message,
        *,
        topic: tuple[str, str] | None = None,
        appointment: tuple[str, str] | None = None,
    ) -> None:
        """Act on one message from ``conn``; raise :class:`ProtocolError` to refuse it.

        ``topic`` is the (id, name) of a call request's topic and ``appointment`` the (id,
        advisor id) a booth's code opened, both looked up by the caller (they need the
        database, and this method never awaits).
        """
        if type(message) not in _ALLOWED[conn.role]:
            raise ProtocolError(
                ErrorCode.NOT_ALLOWED, f"a {conn.role} may not send {message.type} messages"
            )
        match message:
            case Heartbeat():
                conn.last_heartbeat = time.monotonic()
                conn.reported_state = message.state
            case CallRequest():
                self._call_request(conn, topic)
            case LobbyJoin():
                if conn.appointment_id is None or conn.appointment_advisor is None:
                    raise ProtocolError(ErrorCode.NOT_ALLOWED, "open your appointment's link first")
                self._lobby_join(conn, conn.appointment_id, conn.appointment_advisor)
            case AppointmentJoin():
                if appointment is None:  # pragma: no cover - the WebSocket layer resolves it
                    raise ProtocolError(ErrorCode.WRONG_CODE, "this code opens no appointment now")
                self._lobby_join(conn, *appointment)
            case CallCancel():
                session = self._own_session(conn, message.session_id)
                if session.state is not SessionState.WAITING:
                    raise ProtocolError(ErrorCode.SESSION_NOT_WAITING, "the call already started")
                self._end_session(session.id, "cancelled", by=conn)
            case CallAccept():
                self._call_accept(conn, message.session_id)
            case Chat():
                session = self._active_session(conn, message.session_id)
                if not conn.chat_bucket.take():
                    raise ProtocolError(
                        ErrorCode.RATE_LIMITED, "too many chat messages; wait a moment"
                    )
                line = message.model_copy(
                    update={
                        "sender": conn.participant_id,
                        "sender_name": conn.name,
                        "sent_at": datetime.now(UTC),
                        "id": None,
                    }
                )
                session.chat.append(line)
                # Never the text in the log: chat is personal data and stays in memory.
                log.debug("session %s: chat line from %s", session.id, conn)
                for other in session.participants():
                    other.send(line)
            case Offer() | Answer() | IceCandidate() | CallStats():
                session = self._active_session(conn, message.session_id)
                relayed = message.model_copy(update={"sender": conn.participant_id, "id": None})
                for other in session.participants():
                    if other is not conn:
                        other.send(relayed)
            case Hangup():
                session = self._own_session(conn, message.session_id)
                self._end_session(session.id, message.reason, by=conn)
            case _:  # pragma: no cover - _ALLOWED guards this
                raise ProtocolError(ErrorCode.NOT_ALLOWED, f"{message.type} is not handled")

    def _own_session(self, conn: Connection, session_id: str) -> CallSession:
        session = self.sessions.get(session_id)
        # Unknown and someone else's session read alike: no probing for live session ids.
        if session is None or conn not in session.participants():
            raise ProtocolError(
                ErrorCode.NOT_IN_SESSION, f"you are not a participant of session {session_id}"
            )
        return session

    def _active_session(self, conn: Connection, session_id: str) -> CallSession:
        session = self._own_session(conn, session_id)
        if session.state is not SessionState.ACTIVE:
            raise ProtocolError(ErrorCode.SESSION_NOT_WAITING, "the call has not started yet")
        return session

    def _call_request(self, booth: Connection, topic: tuple[str, str] | None) -> None:
        if booth.session_id is not None:
            raise ProtocolError(ErrorCode.ALREADY_IN_CALL, "this booth already has a call")
        session = CallSession(id=new_id(), caller=booth)
        if topic is not None:
            session.topic_id, session.topic_name = topic
        self.sessions[session.id] = session
        booth.session_id = session.id
        log.info("session %s: %s waits for an advisor", session.id, booth)
        booth.send(CallWaiting(session_id=session.id))
        self._broadcast_queue()

    def _lobby_join(self, citizen: Connection, appointment_id: str, advisor_id: str) -> None:
        """A citizen's browser or a booth waits in an appointment's lobby."""
        if citizen.session_id is not None:
            raise ProtocolError(ErrorCode.ALREADY_IN_CALL, "you are already waiting or in a call")
        session = CallSession(
            id=new_id(),
            caller=citizen,
            appointment_id=appointment_id,
            advisor_id=advisor_id,
        )
        self.sessions[session.id] = session
        citizen.session_id = session.id
        log.info(
            "session %s: %s in the lobby of appointment %s",
            session.id,
            citizen,
            session.appointment_id,
        )
        citizen.send(CallWaiting(session_id=session.id))
        self._broadcast_queue()

    def _call_accept(self, advisor: Connection, session_id: str) -> None:
        if advisor.session_id is not None:
            raise ProtocolError(ErrorCode.ALREADY_IN_CALL, "end your current call first")
        session = self.sessions.get(session_id)
        if session is None or not _visible_to(session, advisor):
            raise ProtocolError(ErrorCode.UNKNOWN_SESSION, f"no waiting call {session_id}")
        if session.state is not SessionState.WAITING:
            raise ProtocolError(
                ErrorCode.SESSION_NOT_WAITING, "another advisor has already taken this call"
            )
        session.advisor = advisor
        session.state = SessionState.ACTIVE
        if session.advisor_id is None:  # walk-ins teach the wait estimate
            waited = (datetime.now(UTC) - session.waiting_since).total_seconds()
            self.average_wait += WAIT_SMOOTHING * (waited - self.average_wait)
        advisor.session_id = session.id
        log.info("session %s: %s accepted %s", session.id, advisor, session.caller)
        for conn, offerer, peer in (
            (session.caller, True, advisor),
            (advisor, False, session.caller),
        ):
            policy = self._booth_ice_policy if conn.role is Role.BOOTH else self._browser_ice_policy
            conn.send(
                CallStarted(
                    session_id=session.id,
                    offerer=offerer,
                    ice_servers=self._ice_servers_for(conn, session),
                    ice_transport_policy=policy,
                    peer=peer.peer(),
                )
            )
        self._broadcast_queue()

    def _end_session(self, session_id: str, reason: str, *, by: Connection) -> None:
        session = self.sessions.pop(session_id, None)
        if session is None:
            return
        was_waiting = session.state is SessionState.WAITING
        session.state = SessionState.ENDED
        session.chat.clear()
        for conn in session.participants():
            conn.session_id = None
            if conn is not by:
                conn.send(Hangup(session_id=session.id, reason=reason))
        log.info("session %s ended by %s: %s", session.id, by, reason)
        if was_waiting:
            self._broadcast_queue()
        elif self._on_call_ended is not None:
            self._on_call_ended(session)

    # ------------------------------------------------------------ queue

    def _queue_message(self, advisor: Connection) -> Queue:
        waiting = [
            WaitingCall(
                session_id=s.id,
                caller_id=s.caller.principal_id,
                caller_name=s.caller.name,
                caller_role=s.caller.role,
                appointment_id=s.appointment_id,
                topic_id=s.topic_id,
                topic_name=s.topic_name,
                waiting_since=s.waiting_since,
            )
            for s in self.sessions.values()
            if s.state is SessionState.WAITING and _visible_to(s, advisor)
        ]
        waiting.sort(key=lambda w: w.waiting_since)
        return Queue(waiting=waiting)

    def _broadcast_queue(self) -> None:
        for conn in self.connections.values():
            if conn.role is Role.ADVISOR:
                conn.send(self._queue_message(conn))
        self._tell_positions()

    def _tell_positions(self) -> None:
        """Every waiting walk-in learns its place in its topic's queue and an estimate."""
        walk_ins = sorted(
            (
                s
                for s in self.sessions.values()
                if s.state is SessionState.WAITING and s.advisor_id is None
            ),
            key=lambda s: s.waiting_since,
        )
        places: dict[str | None, int] = {}
        for session in walk_ins:
            place = places[session.topic_id] = places.get(session.topic_id, 0) + 1
            session.caller.send(
                QueuePosition(
                    session_id=session.id,
                    position=place,
                    estimated_wait_seconds=round(place * self.average_wait),
                )
            )

    def close_all(self) -> None:
        """Close every connection (server shutdown)."""
        for conn in list(self.connections.values()):
            conn.close(1001, "server shutting down")
