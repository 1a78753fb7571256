"""Live signalling: who is connected, which calls wait or run, and relaying between them.

The switchboard is synchronous on purpose: every handler runs to completion on the event loop
without awaiting, so no two messages interleave half-way and the state needs no locks. Sending
is a bounded per-connection queue drained by that connection's writer task, so one slow client
never holds up anybody else.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from protocol import (
    MAX_PARTICIPANTS,
    Admit,
    Answer,
    AppointmentJoin,
    BoothHealth,
    CallAccept,
    CallCancel,
    CallRequest,
    CallStarted,
    CallStats,
    CallWaiting,
    Chat,
    CommandResult,
    ErrorCode,
    Hangup,
    Heartbeat,
    IceCandidate,
    IceServer,
    IceTransportPolicy,
    LobbyJoin,
    Message,
    Offer,
    ParticipantAway,
    ParticipantBack,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantWaiting,
    Peer,
    ProtocolError,
    Queue,
    QueuePosition,
    Remove,
    Resume,
    Resumed,
    Role,
    WaitingCall,
    encode,
)
from server import resume
from server.ratelimit import TokenBucket
from server.resume import Member, ResumeClaim

log = logging.getLogger(__name__)

#: Queue updates to advisors (and places to those waiting) go out at most this often: a burst
#: of changes is one update with all of them, not one full list per change.
QUEUE_UPDATE_SECONDS = 0.25
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
#: Open invitations one call may have at once, and how long a link is valid at most.
MAX_INVITATIONS = 5
INVITATION_SECONDS = 4 * 3600.0
#: How long a call waits for a participant whose connection was lost (seconds), by default.
RESUME_GRACE_SECONDS = 60.0
#: Messages kept for a participant while it is away, delivered when it resumes.
HELD_LIMIT = 256
#: Endings remembered at most (calls that ended, participants who left one), so that no resume
#: token brings one back; each is forgotten anyway once no token can name it any more.
ENDINGS_REMEMBERED = 200_000
#: The participant id that stands for the whole call in the endings.
WHOLE_CALL = ""

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
            CommandResult,
            Resume,
        }
    ),
    Role.ADVISOR: frozenset(
        {CallAccept, Admit, Remove, Offer, Answer, IceCandidate, Hangup, Chat, Heartbeat, Resume}
    ),
    Role.CITIZEN: frozenset(
        {
            CallRequest,
            LobbyJoin,
            CallCancel,
            Offer,
            Answer,
            IceCandidate,
            Hangup,
            Chat,
            CallStats,
            Heartbeat,
            Resume,
        }
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
    #: For a booth: its latest health report (kept in memory; the fleet stores some).
    health: BoothHealth | None = None
    #: For a citizen: the appointment its guest pass is for, and that appointment's advisor.
    appointment_id: str | None = None
    appointment_advisor: str | None = None
    #: For an advisor: the topics served (empty: every topic, as in a small office).
    topics: frozenset[str] = frozenset()
    #: For a booth: its branch's region (walk-in queues are per topic and region).
    region: str | None = None
    #: For a citizen: the call whose invitation link it opened (an interpreter, say) ...
    invited_to: str | None = None
    #: ... or True when its pass is for asking for an advisor now (the walk-in web page).
    walk_in: bool = False
    chat_bucket: TokenBucket = field(
        default_factory=lambda: TokenBucket(rate=CHAT_RATE, burst=CHAT_BURST)
    )
    #: Since when (monotonic) its connection is lost while its call waits for it to resume.
    away_since: float | None = None
    #: What was sent to it while away; a resumed connection gets it first.
    held: deque[str] = field(default_factory=lambda: deque(maxlen=HELD_LIMIT))
    #: Whether it has sent anything yet (a booth that resumes does so first of all).
    spoke: bool = False
    #: For a person: the login session it was opened with, and when that login expires.
    login: str | None = None
    login_expires_at: datetime | None = None
    #: The client's address (walk-ins from one address are limited).
    address: str | None = None
    #: For a waiting caller: the place and estimate it was told last (told again on change).
    told_place: tuple[int, int] | None = None

    def send(self, message: Message) -> None:
        """Queue ``message``; a client that stopped reading is disconnected, not waited for."""
        self.send_text(encode(message))

    def send_text(self, text: str) -> None:
        if self.away_since is not None:
            self.held.append(text)
            return
        try:
            self.outbox.put_nowait(text)
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
    region: str | None = None
    state: SessionState = SessionState.WAITING
    waiting_since: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: The call's chat: in memory only, and gone with the session (data protection).
    chat: deque[Chat] = field(default_factory=lambda: deque(maxlen=CHAT_HISTORY))
    #: People invited by link who were admitted (they join the mesh) or wait to be.
    guests: list[Connection] = field(default_factory=list)
    pending: list[Connection] = field(default_factory=list)

    def participants(self) -> list[Connection]:
        """Everyone in the call, in the order they joined."""
        return [c for c in (self.caller, self.advisor, *self.guests) if c is not None]

    def member(self, participant_id: str) -> Connection | None:
        return next((c for c in self.participants() if c.participant_id == participant_id), None)

    def replace(self, old: Connection, new: Connection) -> None:
        """``new`` takes the place of ``old`` (a resumed connection)."""
        if self.caller is old:
            self.caller = new
        elif self.advisor is old:
            self.advisor = new
        else:
            self.guests[self.guests.index(old)] = new

    def claim(self, conn: Connection) -> ResumeClaim:
        """What ``conn``'s resume token says about this call."""
        return ResumeClaim(
            session_id=self.id,
            me=_member(conn),
            caller=_member(self.caller),
            advisor=_member(self.advisor) if self.advisor is not None else None,
            active=self.state is SessionState.ACTIVE,
            waiting_since=self.waiting_since,
            appointment_id=self.appointment_id,
            advisor_id=self.advisor_id,
            topic_id=self.topic_id,
            topic_name=self.topic_name,
            region=self.region,
        )


def _member(conn: Connection) -> Member:
    return Member(
        participant_id=conn.participant_id,
        role=conn.role,
        principal_id=conn.principal_id,
        name=conn.name,
    )


def _stand_in(member: Member, session_id: str, since: float) -> Connection:
    """A participant the call expects back (known from a resume token), not yet connected."""
    conn = Connection(
        role=member.role,
        principal_id=member.principal_id,
        name=member.name,
        close=_no_close,
        participant_id=member.participant_id,
        session_id=session_id,
    )
    conn.away_since = since
    return conn


def _no_close(code: int, reason: str) -> None:
    pass


@dataclass(frozen=True)
class Invitation:
    """A link to join one running call; only a hash of its token is kept."""

    session_id: str
    label: str
    expires_at: float  # monotonic


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _visible_to(session: CallSession, advisor: Connection) -> bool:
    """An appointment's lobby is for its own advisor; a walk-in on a topic for the advisors
    who serve that topic (and those who serve any); a walk-in without a topic for all."""
    if session.advisor_id is not None:
        return session.advisor_id == advisor.principal_id
    return session.topic_id is None or not advisor.topics or session.topic_id in advisor.topics


IceServersFor = Callable[[Connection, CallSession], list[IceServer]]


class FleetObserver(Protocol):
    """Told about booths coming, going and reporting (:mod:`server.fleet_health`); it must
    not block: whatever needs the database it runs beside the switchboard."""

    def booth_connected(self, conn: Connection) -> None: ...

    def booth_disconnected(self, conn: Connection) -> None: ...

    def booth_reported(self, conn: Connection) -> None: ...

    def command_result(self, conn: Connection, result: CommandResult) -> None: ...


class Switchboard:
    """Routes signalling between the participants of a session, and only between them."""

    def __init__(
        self,
        *,
        ice_servers_for: IceServersFor,
        booth_ice_policy: IceTransportPolicy,
        browser_ice_policy: IceTransportPolicy,
        on_call_ended: Callable[[CallSession], None] | None = None,
        on_ending: Callable[[str, str], None] | None = None,
        fleet: FleetObserver | None = None,
        resume_key: bytes | None = None,
        resume_grace_seconds: float = RESUME_GRACE_SECONDS,
        walk_in_queue_limit: int = 300,
        walk_ins_per_address: int = 3,
    ) -> None:
        #: Citizens' browsers waiting for an advisor now, at most: in all and per address.
        self.walk_in_queue_limit = walk_in_queue_limit
        self.walk_ins_per_address = walk_ins_per_address
        self._queue_due: asyncio.TimerHandle | None = None
        self._queue_sent_at = -QUEUE_UPDATE_SECONDS
        #: Signs resume tokens; without it (or with no grace) a lost connection ends its call.
        self.resume_key = resume_key
        self.resume_grace_seconds = resume_grace_seconds
        #: Calls taken up again after a lost connection, since the start (for /metrics).
        self.resumes = 0
        #: (session id, participant id or WHOLE_CALL) -> when (epoch seconds): calls that
        #: ended and participants who left a call that goes on. No token takes these up again.
        self._endings: dict[tuple[str, str], float] = {}
        #: Told about every new ending, to keep it across a restart (it must not block).
        self._on_ending = on_ending
        self._ice_servers_for = ice_servers_for
        #: Told about every call that was connected and has ended (records, not media).
        self._on_call_ended = on_call_ended
        self._fleet = fleet
        #: Messages refused with an error reply since the start (for /metrics).
        self.signalling_errors = 0
        self._booth_ice_policy = booth_ice_policy
        self._browser_ice_policy = browser_ice_policy
        self.connections: dict[str, Connection] = {}
        self.sessions: dict[str, CallSession] = {}
        self._invitations: dict[str, Invitation] = {}
        #: Running estimate of how long one walk-in waits for an advisor (seconds).
        self.average_wait = DEFAULT_WAIT_SECONDS

    # ------------------------------------------------------------ connections

    def register(self, conn: Connection) -> None:
        """Add a connection. A booth, or a citizen's guest pass, has one connection at a
        time: a newer one replaces the older (whose call waits for a resume)."""
        if conn.role in (Role.BOOTH, Role.CITIZEN):
            for other in list(self.connections.values()):
                if other.role is conn.role and other.principal_id == conn.principal_id:
                    log.info("%s connected again; closing its older connection", conn)
                    self.unregister(other)
                    other.close(4001, "replaced by a newer connection")
        self.connections[conn.participant_id] = conn
        log.info("%s connected", conn)
        if conn.role is Role.ADVISOR:
            conn.send(self._queue_message(conn))
        elif conn.role is Role.BOOTH and self._fleet is not None:
            self._fleet.booth_connected(conn)

    def online_booths(self) -> set[str]:
        """The ids of the booths connected now."""
        return {c.principal_id for c in self.connections.values() if c.role is Role.BOOTH}

    def end_logins(
        self, user_id: str, *, login: str | None = None, keep: str | None = None, reason: str
    ) -> int:
        """Close the live connections of the user's logins (only of ``login`` when given; all
        but ``keep``'s when that is given) at once: the account was disabled, its password
        changed, or the login ended. Their calls end now rather than waiting for them to come
        back. Returns how many were closed."""
        closed = [
            conn
            for conn in self.connections.values()
            if conn.role is Role.ADVISOR
            and conn.principal_id == user_id
            and (login is None or conn.login == login)
            and (keep is None or conn.login != keep)
        ]
        for conn in closed:
            self.close_login(conn, reason)
        return len(closed)

    def renew_login(self, old: str, new: str, expires_at: datetime) -> None:
        """The connections of login ``old`` carry on under ``new`` (the page that changed its
        password got a new login)."""
        for conn in self.connections.values():
            if conn.login == old:
                conn.login, conn.login_expires_at = new, expires_at

    def close_login(self, conn: Connection, reason: str) -> None:
        """``conn``'s login is no longer valid: it goes, and its call ends (no resume)."""
        log.info("closing %s: %s", conn, reason)
        self.unregister(conn, resumable=False)
        conn.close(4003, reason)

    def expire_logins(self, now: datetime | None = None) -> None:
        """Close the connections whose login has expired (called every second)."""
        now = now or datetime.now(UTC)
        for conn in list(self.connections.values()):
            if conn.login_expires_at is not None and conn.login_expires_at <= now:
                self.close_login(conn, "login expired")

    def appointment_cancelled(self, appointment_id: str) -> None:
        """The appointment was cancelled: the citizens whose passes are for it go (their
        pages close, a wait ends) and a booth waiting in its lobby is told."""
        for conn in list(self.connections.values()):
            if conn.role is Role.CITIZEN and conn.appointment_id == appointment_id:
                self.close_login(conn, "the appointment was cancelled")
        for session in list(self.sessions.values()):
            if session.appointment_id == appointment_id and session.state is SessionState.WAITING:
                self._end_session(session.id, "cancelled", by=session.caller)
                session.caller.send(Hangup(session_id=session.id, reason="cancelled"))

    def disconnect_booth(self, booth_id: str, reason: str) -> None:
        """Close a booth's connection (revoked, say); its session ends at once."""
        for conn in list(self.connections.values()):
            if conn.role is Role.BOOTH and conn.principal_id == booth_id:
                self.unregister(conn, resumable=False)
                conn.close(4003, reason)

    @property
    def resumable(self) -> bool:
        return self.resume_key is not None and self.resume_grace_seconds > 0

    def unregister(self, conn: Connection, *, resumable: bool = True) -> None:
        """Remove a connection. A participant of a call is away for a while (the call waits
        for it to resume); otherwise, and once the wait is over, its session ends (the others
        are told why) or, for an invited participant, it only leaves the call."""
        if self.connections.get(conn.participant_id) is not conn:
            return  # gone already, or its place was taken by a resumed connection
        del self.connections[conn.participant_id]
        session = self.sessions.get(conn.session_id) if conn.session_id else None
        if session is not None and conn in session.pending:
            self._leave(session, conn, "peer_disconnected")
        elif (
            session is not None and resumable and self.resumable and conn in session.participants()
        ):
            self._away(session, conn)
        elif session is not None and conn in session.guests:
            self._leave(session, conn, "peer_disconnected")
        elif conn.session_id is not None:
            self._end_session(conn.session_id, "peer_disconnected", by=conn)
        log.info("%s disconnected", conn)
        if conn.role is Role.BOOTH and self._fleet is not None:
            self._fleet.booth_disconnected(conn)

    # ------------------------------------------------------------ messages

    def handle(
        self,
        conn: Connection,
        message: Message,
        *,
        topic: tuple[str, str] | None = None,
        appointment: tuple[str, str] | None = None,
        region: str | None = None,
    ) -> None:
        """Act on one message from ``conn``; raise :class:`ProtocolError` to refuse it.

        ``topic`` is the (id, name) of a call request's topic, ``appointment`` the (id,
        advisor id) a booth's code opened and ``region`` a citizen's checked region, all looked
        up by the caller (they need the database, and this method never awaits).
        """
        if self.connections.get(conn.participant_id) is not conn:
            # Replaced or closed, with messages still in flight: it no longer acts (it would
            # leave a call behind with nobody on the line).
            log.debug("ignored %s from %s: the connection is closing", message.type, conn)
            return
        if type(message) not in _ALLOWED[conn.role]:
            raise ProtocolError(
                ErrorCode.NOT_ALLOWED, f"a {conn.role} may not send {message.type} messages"
            )
        if not conn.spoke:
            conn.spoke = True
            if conn.role is Role.BOOTH and not isinstance(message, Resume):
                self._gave_up(conn)
        match message:
            case Heartbeat():
                if message.health is not None and conn.role is not Role.BOOTH:
                    raise ProtocolError(ErrorCode.NOT_ALLOWED, "only a booth reports its health")
                conn.last_heartbeat = time.monotonic()
                conn.reported_state = message.state
                if message.health is not None:
                    conn.health = message.health
                    if self._fleet is not None:
                        self._fleet.booth_reported(conn)
            case Resume():
                self._resume(conn, message)
            case CommandResult():
                if self._fleet is not None:
                    self._fleet.command_result(conn, message)
            case CallRequest():
                if conn.role is Role.CITIZEN and not conn.walk_in:
                    raise ProtocolError(
                        ErrorCode.NOT_ALLOWED, "open the page for an advisor now first"
                    )
                self._call_request(conn, topic, conn.region if conn.role is Role.BOOTH else region)
            case LobbyJoin() if conn.invited_to is not None:
                self._ask_to_join(conn, conn.invited_to)
            case LobbyJoin():
                if conn.appointment_id is None or conn.appointment_advisor is None:
                    raise ProtocolError(ErrorCode.NOT_ALLOWED, "open your appointment's link first")
                self._lobby_join(conn, conn.appointment_id, conn.appointment_advisor)
            case AppointmentJoin():
                if appointment is None:  # pragma: no cover - the WebSocket layer resolves it
                    raise ProtocolError(ErrorCode.WRONG_CODE, "this code opens no appointment now")
                self._lobby_join(conn, *appointment)
            case CallCancel() if self._is_pending(conn, message.session_id):
                self._leave(self.sessions[message.session_id], conn, "cancelled")
            case CallCancel():
                session = self._own_session(conn, message.session_id)
                if session.state is not SessionState.WAITING:
                    raise ProtocolError(ErrorCode.SESSION_NOT_WAITING, "the call already started")
                self._end_session(session.id, "cancelled", by=conn)
            case CallAccept():
                self._call_accept(conn, message.session_id)
            case Admit():
                self._admit(conn, message.session_id, message.participant_id)
            case Remove():
                session = self._hosted_session(conn, message.session_id)
                guest = next(
                    (
                        g
                        for g in (*session.pending, *session.guests)
                        if g.participant_id == message.participant_id
                    ),
                    None,
                )
                if guest is None:
                    raise ProtocolError(
                        ErrorCode.NOT_IN_SESSION, "nobody invited with that id is here"
                    )
                guest.send(Hangup(session_id=session.id, reason="removed"))
                self._leave(session, guest, "removed")
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
            case Offer() | Answer() | IceCandidate():
                session = self._active_session(conn, message.session_id)
                relayed = message.model_copy(update={"sender": conn.participant_id, "id": None})
                if message.to is None:
                    targets = [other for other in session.participants() if other is not conn]
                else:
                    target = session.member(message.to)
                    if target is None or target is conn:
                        raise ProtocolError(
                            ErrorCode.NOT_IN_SESSION, f"no participant {message.to} in this call"
                        )
                    targets = [target]
                for other in targets:
                    other.send(relayed)
            case CallStats():
                session = self._active_session(conn, message.session_id)
                stats = message.model_copy(update={"sender": conn.participant_id, "id": None})
                for other in session.participants():
                    if other is not conn:
                        other.send(stats)
            case Hangup() if self._is_pending(conn, message.session_id):
                self._leave(self.sessions[message.session_id], conn, message.reason)
            case Hangup():
                session = self._own_session(conn, message.session_id)
                if conn in session.guests:  # an invited participant leaves; the call goes on
                    self._leave(session, conn, message.reason)
                else:
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

    def _is_pending(self, conn: Connection, session_id: str) -> bool:
        session = self.sessions.get(session_id)
        return session is not None and conn in session.pending

    def _hosted_session(self, advisor: Connection, session_id: str) -> CallSession:
        session = self.sessions.get(session_id)
        if session is None or session.advisor is not advisor:
            raise ProtocolError(
                ErrorCode.NOT_IN_SESSION, f"you are not the advisor of session {session_id}"
            )
        return session

    def _active_session(self, conn: Connection, session_id: str) -> CallSession:
        session = self._own_session(conn, session_id)
        if session.state is not SessionState.ACTIVE:
            raise ProtocolError(ErrorCode.SESSION_NOT_WAITING, "the call has not started yet")
        return session

    def _take_over_pass(self, conn: Connection) -> None:
        """``conn``'s guest pass waits or talks once at a time. On a page whose connection is
        lost (reloaded, say) that wait or call is over now: the citizen starts again here. On
        a live page it goes on, and ``conn`` is refused."""
        for session in list(self.sessions.values()):
            for other in (*session.participants(), *session.pending):
                if other.role is not Role.CITIZEN or other.principal_id != conn.principal_id:
                    continue
                if other.away_since is None:
                    raise ProtocolError(
                        ErrorCode.ALREADY_IN_CALL,
                        "you are already waiting or in a call on another page",
                    )
                log.info("session %s: %s started again on a new page", session.id, other)
                if other is session.caller:
                    self._end_session(session.id, "peer_disconnected", by=other)
                else:
                    self._leave(session, other, "peer_disconnected")
                break

    def _check_may_wait(self, conn: Connection) -> None:
        """A guest pass waits or talks once at a time; citizens asking for an advisor now
        from their browsers are limited in all and per address."""
        if conn.session_id is not None:
            raise ProtocolError(ErrorCode.ALREADY_IN_CALL, "you are already waiting or in a call")
        if conn.role is not Role.CITIZEN:
            return
        self._take_over_pass(conn)
        if not conn.walk_in:
            return
        waiting = [
            s.caller
            for s in self.sessions.values()
            if s.state is SessionState.WAITING and s.caller.walk_in
        ]
        if len(waiting) >= self.walk_in_queue_limit:
            log.warning("walk-in queue full (%d waiting); refused %s", len(waiting), conn)
            raise ProtocolError(
                ErrorCode.QUEUE_FULL,
                "too many people are waiting right now; please try again in a few minutes",
            )
        if sum(c.address == conn.address for c in waiting) >= self.walk_ins_per_address:
            raise ProtocolError(
                ErrorCode.QUEUE_FULL,
                "too many people from your network are waiting already; "
                "please try again when one of them has been served",
            )

    def _call_request(
        self, booth: Connection, topic: tuple[str, str] | None, region: str | None
    ) -> None:
        self._check_may_wait(booth)
        session = CallSession(id=new_id(), caller=booth, region=region)
        if topic is not None:
            session.topic_id, session.topic_name = topic
        self.sessions[session.id] = session
        booth.session_id = session.id
        log.info("session %s: %s waits for an advisor", session.id, booth)
        booth.send(CallWaiting(session_id=session.id, resume_token=self._token(session, booth)))
        self._broadcast_queue()

    def _lobby_join(self, citizen: Connection, appointment_id: str, advisor_id: str) -> None:
        """A citizen's browser or a booth waits in an appointment's lobby."""
        self._check_may_wait(citizen)
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
        citizen.send(CallWaiting(session_id=session.id, resume_token=self._token(session, citizen)))
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
                    peers=[peer.peer()],
                    resume_token=self._token(session, conn),
                )
            )
        self._broadcast_queue()

    # ------------------------------------------------------------ invited participants

    def invite(self, advisor_id: str, session_id: str, label: str) -> str:
        """A new invitation link's token for the running call ``session_id`` of ``advisor_id``."""
        session = self.sessions.get(session_id)
        if (
            session is None
            or session.advisor is None
            or session.advisor.principal_id != advisor_id
            or session.state is not SessionState.ACTIVE
        ):
            raise ProtocolError(ErrorCode.NOT_IN_SESSION, "you have no running call with that id")
        now = time.monotonic()
        for key in [k for k, inv in self._invitations.items() if inv.expires_at <= now]:
            del self._invitations[key]
        if sum(inv.session_id == session_id for inv in self._invitations.values()) >= (
            MAX_INVITATIONS
        ):
            raise ProtocolError(ErrorCode.CALL_FULL, "this call has enough open invitations")
        token = secrets.token_urlsafe(24)
        self._invitations[_token_hash(token)] = Invitation(
            session_id=session_id, label=label, expires_at=now + INVITATION_SECONDS
        )
        log.info("session %s: invitation created", session_id)
        return token

    def invitation(self, token: str) -> Invitation | None:
        """The invitation ``token`` opens, if its call is still running."""
        invitation = self._invitations.get(_token_hash(token))
        if invitation is None or invitation.expires_at <= time.monotonic():
            return None
        session = self.sessions.get(invitation.session_id)
        if session is None or session.state is not SessionState.ACTIVE:
            return None
        return invitation

    def _ask_to_join(self, guest: Connection, session_id: str) -> None:
        self._check_may_wait(guest)
        session = self.sessions.get(session_id)
        if session is None or session.advisor is None or session.state is not SessionState.ACTIVE:
            raise ProtocolError(ErrorCode.UNKNOWN_SESSION, "this call has ended")
        if len(session.participants()) + len(session.pending) >= MAX_PARTICIPANTS + 2:
            raise ProtocolError(ErrorCode.CALL_FULL, "too many people are waiting to join")
        session.pending.append(guest)
        guest.session_id = session.id
        log.info("session %s: %s asks to join", session.id, guest)
        guest.send(CallWaiting(session_id=session.id))
        session.advisor.send(ParticipantWaiting(session_id=session.id, peer=guest.peer()))

    def _admit(self, advisor: Connection, session_id: str, participant_id: str) -> None:
        session = self._hosted_session(advisor, session_id)
        guest = next((g for g in session.pending if g.participant_id == participant_id), None)
        if guest is None:
            raise ProtocolError(ErrorCode.NOT_IN_SESSION, "nobody with that id waits to join")
        present = session.participants()
        if len(present) >= MAX_PARTICIPANTS:
            raise ProtocolError(
                ErrorCode.CALL_FULL, f"a call has at most {MAX_PARTICIPANTS} participants"
            )
        session.pending.remove(guest)
        session.guests.append(guest)
        log.info("session %s: %s admitted %s", session.id, advisor, guest)
        guest.send(
            CallStarted(
                session_id=session.id,
                offerer=False,
                ice_servers=self._ice_servers_for(guest, session),
                ice_transport_policy=self._browser_ice_policy,
                peer=advisor.peer(),
                peers=[p.peer() for p in present],
                resume_token=self._token(session, guest),
            )
        )
        for conn in present:
            conn.send(ParticipantJoined(session_id=session.id, peer=guest.peer()))

    def _leave(self, session: CallSession, guest: Connection, reason: str) -> None:
        """An invited participant goes; the call goes on for the others."""
        was_in_call = guest in session.guests
        if was_in_call:
            session.guests.remove(guest)
        elif guest in session.pending:
            session.pending.remove(guest)
        else:  # pragma: no cover - callers check membership
            return
        guest.session_id = None
        if was_in_call:  # its token must not bring it back (it was removed, say)
            self._finish(session.id, guest.participant_id)
        log.info("session %s: %s left: %s", session.id, guest, reason)
        told = session.participants() if was_in_call else [session.advisor]
        for conn in told:
            if conn is not None:
                conn.send(
                    ParticipantLeft(
                        session_id=session.id, participant_id=guest.participant_id, reason=reason
                    )
                )

    # ------------------------------------------------------------ lost connections

    def _token(self, session: CallSession, conn: Connection) -> str | None:
        if self.resume_key is None:
            return None
        return resume.issue(self.resume_key, session.claim(conn))

    def _finish(self, session_id: str, participant_id: str = WHOLE_CALL) -> None:
        """Remember that the call ended (or that the participant is finished in it)."""
        key = (session_id, participant_id)
        if key in self._endings:
            return
        self._endings[key] = time.time()
        while len(self._endings) > ENDINGS_REMEMBERED:
            del self._endings[next(iter(self._endings))]
        if self._on_ending is not None:
            self._on_ending(session_id, participant_id)

    def remember_endings(self, endings: Iterable[tuple[str, str, float]]) -> None:
        """Endings recorded before a restart (session id, participant id, epoch seconds),
        oldest first: their tokens stay useless."""
        for session_id, participant_id, at in endings:
            self._endings.setdefault((session_id, participant_id), at)

    def forget_old_endings(self, now: float | None = None) -> None:
        """Forget the endings no resume token can name any more (the oldest come first)."""
        oldest = (time.time() if now is None else now) - resume.TOKEN_SECONDS
        while self._endings:
            key = next(iter(self._endings))
            if self._endings[key] >= oldest:
                break
            del self._endings[key]

    def _away(self, session: CallSession, conn: Connection) -> None:
        """``conn``'s connection is lost: the call waits for it (media does not pass through
        the server and may well go on meanwhile)."""
        conn.away_since = time.monotonic()
        log.info("session %s: %s is away; waiting for it to come back", session.id, conn)
        if session.state is SessionState.ACTIVE:
            for other in session.participants():
                if other is not conn:
                    other.send(
                        ParticipantAway(session_id=session.id, participant_id=conn.participant_id)
                    )

    def _gave_up(self, booth: Connection) -> None:
        """A booth that comes back without resuming has restarted: the call it was away from
        is over, and the others learn so now rather than after the grace period."""
        for session in list(self.sessions.values()):
            for conn in session.participants():
                if (
                    conn.away_since is not None
                    and conn.role is Role.BOOTH
                    and conn.principal_id == booth.principal_id
                ):
                    log.info("session %s: %s restarted; the call is over", session.id, conn)
                    self._end_session(session.id, "peer_disconnected", by=conn)
                    break

    def expire_away(self, now: float | None = None) -> None:
        """End what waited too long for a participant to come back (called every second)."""
        now = time.monotonic() if now is None else now
        limit = self.resume_grace_seconds
        for session in list(self.sessions.values()):
            for conn in session.participants():
                if conn.away_since is None or now - conn.away_since < limit:
                    continue
                log.info("session %s: %s did not come back", session.id, conn)
                if conn in session.guests:
                    self._leave(session, conn, "connection_lost")
                else:
                    self._end_session(session.id, "connection_lost", by=conn)
                    break

    def _resume(self, conn: Connection, message: Resume) -> None:
        """``conn`` takes up its call (or its wait) again under its old participant id."""
        claim = resume.verify(self.resume_key, message.token) if self.resume_key else None
        if (
            claim is None
            or claim.session_id != message.session_id
            or claim.me.role is not conn.role
            or claim.me.principal_id != conn.principal_id
        ):
            raise ProtocolError(ErrorCode.CANNOT_RESUME, "this call cannot be taken up again")
        if conn.session_id is not None:
            raise ProtocolError(ErrorCode.ALREADY_IN_CALL, "you are already waiting or in a call")
        if (claim.session_id, WHOLE_CALL) in self._endings:
            raise ProtocolError(ErrorCode.CANNOT_RESUME, "the call has ended")
        if (claim.session_id, claim.me.participant_id) in self._endings:
            raise ProtocolError(
                ErrorCode.CANNOT_RESUME, "you left this call; it cannot be taken up again"
            )
        session = self.sessions.get(claim.session_id)
        if session is None:
            session = self._rebuild(claim)
        old = session.member(claim.me.participant_id)
        if (
            old is None
            and claim.me not in (claim.caller, claim.advisor)
            and session.state is SessionState.ACTIVE
            and len(session.participants()) < MAX_PARTICIPANTS
        ):
            # An invited participant the rebuilt call did not know of yet.
            old = _stand_in(claim.me, session.id, time.monotonic())
            session.guests.append(old)
        if old is None or old.principal_id != conn.principal_id or old.role is not conn.role:
            raise ProtocolError(ErrorCode.CANNOT_RESUME, "the call has ended")
        if self.connections.get(old.participant_id) is old:
            # Its older connection has not noticed yet that it is gone: this one takes over.
            del self.connections[old.participant_id]
            old.session_id = None
            old.close(4002, "taken up by a newer connection")
        was_away = old.away_since is not None
        del self.connections[conn.participant_id]
        conn.participant_id = old.participant_id
        conn.session_id = session.id
        self.connections[conn.participant_id] = conn
        session.replace(old, conn)
        self.resumes += 1
        log.info("session %s: %s resumed", session.id, conn)
        others = [c for c in session.participants() if c is not conn]
        conn.send(
            Resumed(
                session_id=session.id,
                participant_id=conn.participant_id,
                active=session.state is SessionState.ACTIVE,
                peers=[c.peer() for c in others],
                away=[c.participant_id for c in others if c.away_since is not None],
                ice_servers=self._ice_servers_for(conn, session)
                if session.state is SessionState.ACTIVE
                else [],
            )
        )
        for text in old.held:  # what happened meanwhile, in order
            conn.send_text(text)
        old.held.clear()
        if session.state is SessionState.WAITING:
            self._broadcast_queue()
        elif was_away:
            for other in others:
                other.send(
                    ParticipantBack(session_id=session.id, participant_id=conn.participant_id)
                )

    def _rebuild(self, claim: ResumeClaim) -> CallSession:
        """A call the server lost (it restarted), rebuilt from a participant's token; the
        others are expected back within the grace period."""
        now = time.monotonic()
        session = CallSession(
            id=claim.session_id,
            caller=_stand_in(claim.caller, claim.session_id, now),
            advisor=_stand_in(claim.advisor, claim.session_id, now) if claim.advisor else None,
            appointment_id=claim.appointment_id,
            advisor_id=claim.advisor_id,
            topic_id=claim.topic_id,
            topic_name=claim.topic_name,
            region=claim.region,
            state=SessionState.ACTIVE if claim.active else SessionState.WAITING,
            waiting_since=claim.waiting_since,
        )
        self.sessions[session.id] = session
        log.info("session %s: rebuilt from a resume token (the server restarted)", session.id)
        return session

    # ------------------------------------------------------------ ending

    def _end_session(self, session_id: str, reason: str, *, by: Connection) -> None:
        session = self.sessions.pop(session_id, None)
        if session is None:
            return
        was_waiting = session.state is SessionState.WAITING
        session.state = SessionState.ENDED
        session.chat.clear()
        self._finish(session.id)
        for key in [k for k, inv in self._invitations.items() if inv.session_id == session_id]:
            del self._invitations[key]
        for conn in (*session.participants(), *session.pending):
            conn.session_id = None
            if conn is not by:
                conn.send(Hangup(session_id=session.id, reason=reason))
        log.info("session %s ended by %s: %s", session.id, by, reason)
        if was_waiting:
            self._broadcast_queue()
        elif self._on_call_ended is not None:
            self._on_call_ended(session)

    # ------------------------------------------------------------ queue

    def _waiting_calls(self) -> list[tuple[CallSession, WaitingCall]]:
        """The waiting calls, oldest first, each described once."""
        waiting = sorted(
            (s for s in self.sessions.values() if s.state is SessionState.WAITING),
            key=lambda s: s.waiting_since,
        )
        return [
            (
                s,
                WaitingCall(
                    session_id=s.id,
                    caller_id=s.caller.principal_id,
                    caller_name=s.caller.name,
                    caller_role=s.caller.role,
                    appointment_id=s.appointment_id,
                    topic_id=s.topic_id,
                    topic_name=s.topic_name,
                    region=s.region,
                    waiting_since=s.waiting_since,
                ),
            )
            for s in waiting
        ]

    def _queue_message(self, advisor: Connection) -> Queue:
        return Queue(waiting=[w for s, w in self._waiting_calls() if _visible_to(s, advisor)])

    def _broadcast_queue(self) -> None:
        """The queue changed: advisors (and those waiting) hear of it now, or, when an update
        went out less than QUEUE_UPDATE_SECONDS ago, in one update when that time is up."""
        if self._queue_due is not None:
            return  # the update on its way will carry this change too
        wait = self._queue_sent_at + QUEUE_UPDATE_SECONDS - time.monotonic()
        if wait <= 0:
            self._send_queue()
        else:
            self._queue_due = asyncio.get_running_loop().call_later(wait, self._send_queue)

    def _send_queue(self) -> None:
        self._queue_due = None
        self._queue_sent_at = time.monotonic()
        # Every advisor sees a selection of the same waiting calls (usually all of them): each
        # call is described once and each distinct selection encoded once, not per advisor.
        waiting = self._waiting_calls()
        encoded: dict[tuple[str, ...], str] = {}
        for conn in self.connections.values():
            if conn.role is Role.ADVISOR:
                visible = [w for s, w in waiting if _visible_to(s, conn)]
                key = tuple(w.session_id for w in visible)
                text = encoded.get(key)
                if text is None:
                    text = encoded[key] = encode(Queue(waiting=visible))
                conn.send_text(text)
        self._tell_positions()

    def _tell_positions(self) -> None:
        """Every waiting walk-in learns its place in its queue (topic and region) and an
        estimate."""
        walk_ins = sorted(
            (
                s
                for s in self.sessions.values()
                if s.state is SessionState.WAITING and s.advisor_id is None
            ),
            key=lambda s: s.waiting_since,
        )
        places: dict[tuple[str | None, str | None], int] = {}
        for session in walk_ins:
            queue = (session.topic_id, session.region)
            place = places[queue] = places.get(queue, 0) + 1
            told = (place, round(place * self.average_wait))
            if session.caller.told_place == told:
                continue  # nothing new for this one
            session.caller.told_place = told
            session.caller.send(
                QueuePosition(
                    session_id=session.id, position=told[0], estimated_wait_seconds=told[1]
                )
            )

    def close_all(self) -> None:
        """Close every connection (server shutdown)."""
        if self._queue_due is not None:
            self._queue_due.cancel()
            self._queue_due = None
        for conn in list(self.connections.values()):
            conn.close(1001, "server shutting down")
