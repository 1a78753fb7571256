"""Connections coming and going: one at a time per booth and per guest pass, a lost one away
while its call waits for it (or its call ending at once), and the logins that people's
connections live by (ended, renewed, expired).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Protocol

from protocol import Hangup, Role
from server.signalling.calls import Calls
from server.signalling.clock import Clock
from server.signalling.participants import FleetObserver, Participant, ParticipantStore
from server.signalling.resuming import Resumption
from server.signalling.sessions import SessionState, SessionStore
from server.signalling.waiting_room import WaitingRoom

log = logging.getLogger(__name__)


class Elsewhere(Protocol):
    """The calls other nodes of a cluster carry (:mod:`server.cluster.calls`)."""

    def lost(self, conn: Participant, session_id: str, *, resumable: bool) -> None:
        """``conn``, connected here, lost its connection while in a call another node carries."""
        ...


class Connections:
    def __init__(
        self,
        *,
        participants: ParticipantStore,
        sessions: SessionStore,
        room: WaitingRoom,
        calls: Calls,
        resumption: Resumption,
        clock: Clock,
        fleet: FleetObserver | None = None,
        elsewhere: Elsewhere | None = None,
    ) -> None:
        self._participants = participants
        self._elsewhere = elsewhere
        self._sessions = sessions
        self._room = room
        self._calls = calls
        self._resumption = resumption
        self._clock = clock
        self._fleet = fleet

    def set_elsewhere(self, elsewhere: Elsewhere) -> None:
        self._elsewhere = elsewhere

    def register(self, conn: Participant) -> None:
        """Add a connection. A booth, or a citizen's guest pass, has one connection at a
        time: a newer one replaces the older (whose call waits for a resume)."""
        if conn.role in (Role.BOOTH, Role.CITIZEN):
            for other in list(self._participants.values()):
                if other.role is conn.role and other.principal_id == conn.principal_id:
                    log.info("%s connected again; closing its older connection", conn)
                    self.unregister(other)
                    other.close(4001, "replaced by a newer connection")
        self._participants.add(conn)
        log.info("%s connected", conn)
        if conn.role is Role.ADVISOR:
            conn.send(self._room.queue_for(conn))
        elif conn.role is Role.BOOTH and self._fleet is not None:
            self._fleet.booth_connected(conn)

    def unregister(self, conn: Participant, *, resumable: bool = True) -> None:
        """Remove a connection. A participant of a call is away for a while (the call waits
        for it to resume); otherwise, and once the wait is over, its session ends (the others
        are told why) or, for an invited participant, it only leaves the call."""
        if not self._participants.discard(conn):
            return  # gone already, or its place was taken by a resumed connection
        self.left(conn, resumable=resumable)
        log.info("%s disconnected", conn)
        if conn.role is Role.BOOTH and self._fleet is not None:
            self._fleet.booth_disconnected(conn)

    def left(self, conn: Participant, *, resumable: bool = True) -> None:
        """What a lost connection means for its call: away, leaving it or ending it. ``conn``
        is connected here, or (in a cluster) through another node that told of its loss."""
        session = self._sessions.get(conn.session_id) if conn.session_id else None
        if (
            session is None
            and conn.session_id is not None
            and conn.node is None
            and self._elsewhere is not None
        ):
            self._elsewhere.lost(conn, conn.session_id, resumable=resumable)
            conn.session_id = None
            return
        if session is not None and conn in session.pending:
            self._calls.leave(session, conn, "peer_disconnected")
        elif (
            session is not None
            and resumable
            and self._resumption.possible
            and conn in session.participants()
        ):
            self._resumption.away(session, conn)
        elif session is not None and conn in session.guests:
            self._calls.leave(session, conn, "peer_disconnected")
        elif conn.session_id is not None:
            self._calls.end(conn.session_id, "peer_disconnected", by=conn)

    def end_logins(
        self, user_id: str, *, login: str | None = None, keep: str | None = None, reason: str
    ) -> int:
        """Close the live connections of the user's logins (only of ``login`` when given; all
        but ``keep``'s when that is given) at once. Returns how many were closed."""
        closed = []
        for conn in self._participants.with_role(Role.ADVISOR):
            lease = conn.login.id if conn.login is not None else None
            if (
                conn.principal_id == user_id
                and (login is None or lease == login)
                and (keep is None or lease != keep)
            ):
                closed.append(conn)
        for conn in closed:
            self.close_login(conn, reason)
        return len(closed)

    def renew_login(self, old: str, new: str, expires_at: datetime) -> None:
        """The connections of login ``old`` carry on under ``new``."""
        for conn in self._participants.values():
            if conn.login is not None and conn.login.id == old:
                conn.login.id, conn.login.expires_at = new, expires_at

    def close_login(self, conn: Participant, reason: str) -> None:
        """``conn``'s login is no longer valid: it goes, and its call ends (no resume)."""
        log.info("closing %s: %s", conn, reason)
        self.unregister(conn, resumable=False)
        conn.close(4003, reason)

    def expire_logins(self, now: datetime | None = None) -> None:
        """Close the connections whose login has expired."""
        now = now or self._clock.now()
        for conn in list(self._participants.values()):
            expires_at = conn.login.expires_at if conn.login is not None else None
            if expires_at is not None and expires_at <= now:
                self.close_login(conn, "login expired")

    def appointment_cancelled(self, appointment_id: str) -> None:
        """The citizens whose passes are for the appointment go (their pages close, a wait
        ends) and a booth waiting in its lobby is told."""
        for conn in self._participants.with_role(Role.CITIZEN):
            if conn.entitlement.appointment_id == appointment_id:
                self.close_login(conn, "the appointment was cancelled")
        for session in list(self._sessions.values()):
            if session.appointment_id == appointment_id and session.state is SessionState.WAITING:
                self._calls.end(session.id, "cancelled", by=session.caller)
                session.caller.send(Hangup(session_id=session.id, reason="cancelled"))

    def disconnect_booth(self, booth_id: str, reason: str) -> None:
        """Close a booth's connection (revoked, say); its session ends at once."""
        for conn in self._participants.with_role(Role.BOOTH):
            if conn.principal_id == booth_id:
                self.unregister(conn, resumable=False)
                conn.close(4003, reason)

    def close_all(self) -> None:
        """Close every connection (server shutdown)."""
        self._room.close()
        for conn in list(self._participants.values()):
            conn.close(1001, "server shutting down")
