"""Live signalling: who is connected, which calls wait or run, and relaying between them.

This is the façade the application uses; the work is done in :mod:`server.signalling`, one
concept a module (participants, sessions, the waiting room, calls, invited participants,
resuming, the relay). The switchboard is synchronous on purpose: every handler runs to
completion on the event loop without awaiting, so no two messages interleave half-way and the
state needs no locks. Sending is a bounded per-connection queue drained by that connection's
writer task (:class:`~server.signalling.transport.Outbox`), so one slow client never holds up
anybody else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from protocol import (
    Admit,
    Answer,
    AppointmentJoin,
    CallAccept,
    CallCancel,
    CallRequest,
    CallStats,
    Chat,
    CommandResult,
    ErrorCode,
    Hangup,
    Heartbeat,
    IceCandidate,
    IceTransportPolicy,
    LobbyJoin,
    Message,
    Offer,
    ProtocolError,
    Remove,
    Resume,
    Role,
    UpdateProgress,
)
from server import resume
from server.signalling.calls import Calls, IceServersFor, MediaPolicy
from server.signalling.clock import Clock, SystemClock
from server.signalling.connections import Connections, Elsewhere
from server.signalling.endings import EndingStore, MemoryEndings
from server.signalling.invitations import (
    INVITATION_SECONDS,
    Invitation,
    InvitationStore,
    MemoryInvitations,
)
from server.signalling.invited import Invited
from server.signalling.participants import (
    FleetObserver,
    MemoryParticipants,
    Participant,
    ParticipantStore,
    Presence,
    new_id,
)
from server.signalling.permissions import check_allowed
from server.signalling.relay import Relay
from server.signalling.resuming import RESUME_GRACE_SECONDS, Resumption
from server.signalling.sessions import CallSession, MemorySessions, SessionState, SessionStore
from server.signalling.tokens import ResumeTokens
from server.signalling.waiting_room import DEFAULT_WAIT_SECONDS, SharedQueue, WaitingRoom

__all__ = [
    "DEFAULT_WAIT_SECONDS",
    "INVITATION_SECONDS",
    "RESUME_GRACE_SECONDS",
    "CallSession",
    "ClusterLink",
    "Figures",
    "Invitation",
    "Participant",
    "SessionState",
    "Switchboard",
    "new_id",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Figures:
    """The switchboard's figures for ``/metrics``, read at one moment."""

    active_calls: int
    #: Waiting calls by queue: the topic's name, "appointment" (lobbies) or "none".
    waiting: dict[str, int]
    signalling_errors: int
    resumes: int
    participants_away: int
    connections: dict[Role, int]


class ClusterLink(SharedQueue, Elsewhere, Protocol):
    """What a node of a cluster adds: the other nodes' waiting calls, telling the nodes
    carrying calls that a participant connected here lost its connection, and telling every
    node what to do to the connections of a login, an appointment or a booth
    (:class:`server.cluster.calls.SharedCalls`)."""

    def tell_others(self, action: str, args: dict[str, str | None]) -> None:
        """The other nodes do ``action`` to their connections too
        (:meth:`Switchboard.from_other_node`)."""
        ...


class Switchboard:
    """Routes signalling between the participants of a session, and only between them."""

    def __init__(
        self,
        *,
        ice_servers_for: IceServersFor,
        booth_ice_policy: IceTransportPolicy,
        browser_ice_policy: IceTransportPolicy,
        on_call_ended: Callable[[CallSession], None] | None = None,
        on_appointment: Callable[[str, CallSession], None] | None = None,
        on_ending: Callable[[str, str], None] | None = None,
        fleet: FleetObserver | None = None,
        resume_key: bytes | None = None,
        resume_grace_seconds: float = RESUME_GRACE_SECONDS,
        walk_in_queue_limit: int = 300,
        walk_ins_per_address: int = 3,
        clock: Clock | None = None,
        participants: ParticipantStore | None = None,
        sessions: SessionStore | None = None,
        endings: EndingStore | None = None,
        invitations: InvitationStore | None = None,
    ) -> None:
        self._clock = clock or SystemClock()
        self._link: ClusterLink | None = None
        #: The connected participants and the calls not ended, by id (read as mappings).
        self.connections = participants if participants is not None else MemoryParticipants()
        self.sessions = sessions if sessions is not None else MemorySessions()
        #: Calls that ended and participants who left one: no resume token takes these up.
        self._endings = endings if endings is not None else MemoryEndings()
        self._fleet = fleet
        #: Messages refused with an error reply since the start (for /metrics).
        self.signalling_errors = 0
        self._tokens = ResumeTokens(key=resume_key, clock=self._clock)
        invitation_store = invitations if invitations is not None else MemoryInvitations()
        #: The open invitation links into the calls carried here.
        self.invitations = invitation_store
        self.room = WaitingRoom(
            sessions=self.sessions,
            participants=self.connections,
            clock=self._clock,
            walk_in_limit=walk_in_queue_limit,
            walk_ins_per_address=walk_ins_per_address,
        )
        self.calls = Calls(
            sessions=self.sessions,
            room=self.room,
            endings=self._endings,
            invitations=invitation_store,
            tokens=self._tokens,
            media=MediaPolicy(
                ice_servers_for=ice_servers_for,
                booth_policy=booth_ice_policy,
                browser_policy=browser_ice_policy,
            ),
            clock=self._clock,
            on_call_ended=on_call_ended,
            on_appointment=on_appointment,
            on_ending=on_ending,
        )
        self.invited = Invited(
            sessions=self.sessions,
            invitations=invitation_store,
            calls=self.calls,
            clock=self._clock,
        )
        self.resumption = Resumption(
            participants=self.connections,
            sessions=self.sessions,
            endings=self._endings,
            room=self.room,
            calls=self.calls,
            clock=self._clock,
            grace_seconds=resume_grace_seconds,
        )
        self.relay = Relay(sessions=self.sessions, clock=self._clock)
        self._desk = Connections(
            participants=self.connections,
            sessions=self.sessions,
            room=self.room,
            calls=self.calls,
            resumption=self.resumption,
            clock=self._clock,
            fleet=fleet,
        )

    # ------------------------------------------------------------ settings and figures

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def resume_key(self) -> bytes | None:
        """Signs resume tokens; without it (or with no grace) a lost connection ends its call."""
        return self._tokens.key

    @resume_key.setter
    def resume_key(self, key: bytes | None) -> None:
        self._tokens.key = key

    @property
    def resume_grace_seconds(self) -> float:
        return self.resumption.grace_seconds

    @property
    def resumable(self) -> bool:
        return self.resumption.possible

    @property
    def resumes(self) -> int:
        """Calls taken up again after a lost connection, since the start."""
        return self.resumption.resumes

    def figures(self) -> Figures:
        active = away = 0
        waiting: dict[str, int] = {}
        for session in self.sessions.values():
            if session.state is SessionState.ACTIVE:
                active += 1
            elif session.state is SessionState.WAITING:
                queue = "appointment" if session.appointment_id else session.topic_name or "none"
                waiting[queue] = waiting.get(queue, 0) + 1
            away += sum(p.presence is Presence.AWAY for p in session.participants())
        roles = dict.fromkeys(Role, 0)
        for participant in self.connections.values():
            roles[participant.role] += 1
        return Figures(
            active_calls=active,
            waiting=waiting,
            signalling_errors=self.signalling_errors,
            resumes=self.resumes,
            participants_away=away,
            connections=roles,
        )

    # ------------------------------------------------------------ connections

    def register(self, conn: Participant) -> None:
        """Add a connection (a newer one of a booth or a guest pass replaces the older)."""
        self._desk.register(conn)

    def unregister(self, conn: Participant, *, resumable: bool = True) -> None:
        """Remove a connection: away while its call waits for it, or its call ends."""
        self._desk.unregister(conn, resumable=resumable)

    def online_booths(self) -> set[str]:
        """The ids of the booths connected now."""
        return {p.principal_id for p in self.connections.with_role(Role.BOOTH)}

    def end_logins(
        self, user_id: str, *, login: str | None = None, keep: str | None = None, reason: str
    ) -> int:
        """Close the connections of the user's logins (the account was disabled, its password
        changed, or the login ended); their calls end now. Returns how many were closed here
        (in a cluster the other nodes close theirs too)."""
        self._tell_others("end_logins", user_id=user_id, login=login, keep=keep, reason=reason)
        return self._desk.end_logins(user_id, login=login, keep=keep, reason=reason)

    def renew_login(self, old: str, new: str, expires_at: datetime) -> None:
        """The connections of login ``old`` carry on under ``new``."""
        self._tell_others("renew_login", old=old, new=new, expires_at=expires_at.isoformat())
        self._desk.renew_login(old, new, expires_at)

    def close_login(self, conn: Participant, reason: str) -> None:
        """``conn``'s login is no longer valid: it goes, and its call ends (no resume)."""
        self._desk.close_login(conn, reason)

    def expire_logins(self, now: datetime | None = None) -> None:
        """Close the connections whose login has expired (called every second)."""
        self._desk.expire_logins(now)

    def appointment_cancelled(self, appointment_id: str) -> None:
        """Its citizens' pages close, and a booth waiting in its lobby is told."""
        self._tell_others("appointment_cancelled", appointment_id=appointment_id)
        self._desk.appointment_cancelled(appointment_id)

    def disconnect_booth(self, booth_id: str, reason: str) -> None:
        """Close a booth's connection (revoked, say); its session ends at once."""
        self._tell_others("disconnect_booth", booth_id=booth_id, reason=reason)
        self._desk.disconnect_booth(booth_id, reason)

    def _tell_others(self, action: str, **args: str | None) -> None:
        if self._link is not None:
            self._link.tell_others(action, args)

    def from_other_node(self, action: str, args: dict[str, Any]) -> None:
        """What another node of the cluster did to the connections of a login, an appointment
        or a booth, done to this node's too; raises ValueError for what is not one of those."""
        match action:
            case "end_logins":
                self._desk.end_logins(
                    _text(args["user_id"]),
                    login=_optional(args.get("login")),
                    keep=_optional(args.get("keep")),
                    reason=_text(args["reason"]),
                )
            case "renew_login":
                expires_at = datetime.fromisoformat(_text(args["expires_at"]))
                self._desk.renew_login(_text(args["old"]), _text(args["new"]), expires_at)
            case "appointment_cancelled":
                self._desk.appointment_cancelled(_text(args["appointment_id"]))
            case "disconnect_booth":
                self._desk.disconnect_booth(_text(args["booth_id"]), _text(args["reason"]))
            case _:
                raise ValueError(f"no action {action!r}")

    def close_all(self) -> None:
        """Close every connection (server shutdown)."""
        self._desk.close_all()

    # ------------------------------------------------------------ several nodes

    def join_cluster(self, link: ClusterLink) -> None:
        """This node is one of several: advisors see the other nodes' waiting calls too, a
        participant of a call carried elsewhere is reached through ``link``, and what ends
        logins' or booths' connections is done on every node."""
        self.room.shared = link
        self._desk.set_elsewhere(link)
        self._link = link

    def handle_forwarded(self, proxy: Participant, message: Message) -> None:
        """Act on a message that ``proxy``, a participant of a call carried here, sent to the
        node holding its connection (which passed it on); raise ProtocolError to refuse it."""
        check_allowed(proxy.role, message)
        self._dispatch(proxy, message, topic=None, appointment=None, region=None)

    def forwarded_lost(self, proxy: Participant, *, resumable: bool) -> None:
        """``proxy``'s connection to another node is lost: away, leaving or ending its call."""
        self._desk.left(proxy, resumable=resumable)

    # ------------------------------------------------------------ every second

    def expire_away(self, now: float | None = None) -> None:
        """End what waited too long for a participant to come back."""
        self.resumption.expire(now)

    def remember_endings(self, endings: Iterable[tuple[str, str, float]]) -> None:
        """Endings recorded before a restart (session id, participant id, epoch seconds),
        oldest first: their tokens stay useless."""
        self._endings.remember(endings)

    def forget_old_endings(self, now: float | None = None) -> None:
        """Forget the endings no resume token can name any more."""
        now = self._clock.time() if now is None else now
        self._endings.forget_before(now - resume.TOKEN_SECONDS)

    # ------------------------------------------------------------ invitation links

    def invite(self, advisor_id: str, session_id: str, label: str) -> str:
        """A new invitation link's token for the running call ``session_id`` of ``advisor_id``."""
        return self.invited.invite(advisor_id, session_id, label)

    def invitation(self, token: str) -> Invitation | None:
        """The invitation ``token`` opens, if its call is still running."""
        return self.invited.invitation(token)

    # ------------------------------------------------------------ messages

    def handle(
        self,
        conn: Participant,
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
        if not self.connections.is_connected(conn):
            # Replaced or closed, with messages still in flight: it no longer acts (it would
            # leave a call behind with nobody on the line).
            log.debug("ignored %s from %s: the connection is closing", message.type, conn)
            return
        check_allowed(conn.role, message)
        if not conn.spoke:
            conn.spoke = True
            if conn.role is Role.BOOTH and not isinstance(message, Resume):
                self.resumption.gave_up(conn)
        self._dispatch(conn, message, topic=topic, appointment=appointment, region=region)

    def _dispatch(
        self,
        conn: Participant,
        message: Message,
        *,
        topic: tuple[str, str] | None,
        appointment: tuple[str, str] | None,
        region: str | None,
    ) -> None:
        match message:
            case Heartbeat():
                self._heartbeat(conn, message)
            case CommandResult():
                if self._fleet is not None:
                    self._fleet.command_result(conn, message)
            case UpdateProgress():
                if self._fleet is not None:
                    self._fleet.update_progress(conn, message)
            case Resume():
                self.resumption.resume(conn, message)
            case CallRequest():
                if conn.role is Role.CITIZEN and not conn.entitlement.walk_in:
                    raise ProtocolError(
                        ErrorCode.NOT_ALLOWED, "open the page for an advisor now first"
                    )
                own_region = conn.entitlement.region if conn.role is Role.BOOTH else region
                self.calls.request(conn, topic, own_region)
            case LobbyJoin():
                self._lobby_join(conn)
            case AppointmentJoin():
                if appointment is None:  # pragma: no cover - the WebSocket layer resolves it
                    raise ProtocolError(ErrorCode.WRONG_CODE, "this code opens no appointment now")
                self.calls.lobby(conn, *appointment)
            case CallCancel():
                self.calls.cancel(conn, message.session_id)
            case CallAccept():
                self.calls.accept(conn, message.session_id)
            case Admit():
                self.invited.admit(conn, message.session_id, message.participant_id)
            case Remove():
                self.invited.remove(conn, message.session_id, message.participant_id)
            case Chat():
                self.relay.chat(conn, message)
            case Offer() | Answer() | IceCandidate():
                self.relay.negotiation(conn, message)
            case CallStats():
                self.relay.stats(conn, message)
            case Hangup():
                self.calls.hang_up(conn, message.session_id, message.reason)
            case _:  # pragma: no cover - check_allowed guards this
                raise ProtocolError(ErrorCode.NOT_ALLOWED, f"{message.type} is not handled")

    def _heartbeat(self, conn: Participant, message: Heartbeat) -> None:
        if message.health is not None and conn.role is not Role.BOOTH:
            raise ProtocolError(ErrorCode.NOT_ALLOWED, "only a booth reports its health")
        conn.status.last_heartbeat = self._clock.monotonic()
        conn.status.reported_state = message.state
        if message.health is not None:
            conn.status.health = message.health
            if self._fleet is not None:
                self._fleet.booth_reported(conn)

    def _lobby_join(self, conn: Participant) -> None:
        """A citizen's page waits: to be let into the call its invitation link is for, or in
        its appointment's lobby."""
        entitlement = conn.entitlement
        if entitlement.invited_to is not None:
            self.invited.ask_to_join(conn, entitlement.invited_to)
            return
        if entitlement.appointment_id is None or entitlement.appointment_advisor is None:
            raise ProtocolError(ErrorCode.NOT_ALLOWED, "open your appointment's link first")
        self.calls.lobby(conn, entitlement.appointment_id, entitlement.appointment_advisor)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected text")
    return value


def _optional(value: Any) -> str | None:
    return None if value is None else _text(value)
