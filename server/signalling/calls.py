"""Calls from start to end: waiting for an advisor (walk-in or appointment lobby), being
accepted, leaving and ending.

Everything here runs to completion without awaiting. What must be kept beyond memory is told
to callbacks that must not block either (``on_ending``: an ending to store, so that no resume
token brings it back after a restart; ``on_call_ended``: a connected call that ended, for the
records). Media never passes through the server: a participant only learns which relay to use
(:class:`MediaPolicy`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from protocol import (
    CallStarted,
    CallWaiting,
    ErrorCode,
    Hangup,
    IceServer,
    IceTransportPolicy,
    ParticipantLeft,
    ProtocolError,
    Role,
)
from server.signalling.clock import Clock
from server.signalling.endings import WHOLE_CALL, EndingStore
from server.signalling.invitations import InvitationStore
from server.signalling.participants import Participant, Presence, new_id
from server.signalling.sessions import (
    CallSession,
    SessionState,
    SessionStore,
    own_session,
    pending_in,
)
from server.signalling.tokens import ResumeTokens
from server.signalling.waiting_room import WaitingRoom, visible_to

log = logging.getLogger(__name__)

IceServersFor = Callable[[Participant, CallSession], list[IceServer]]


@dataclass(frozen=True)
class MediaPolicy:
    """Which relays a participant of a call may use, and whether it must."""

    ice_servers_for: IceServersFor
    booth_policy: IceTransportPolicy
    browser_policy: IceTransportPolicy

    def policy_for(self, participant: Participant) -> IceTransportPolicy:
        return self.booth_policy if participant.role is Role.BOOTH else self.browser_policy


class Calls:
    def __init__(
        self,
        *,
        sessions: SessionStore,
        room: WaitingRoom,
        endings: EndingStore,
        invitations: InvitationStore,
        tokens: ResumeTokens,
        media: MediaPolicy,
        clock: Clock,
        on_call_ended: Callable[[CallSession], None] | None = None,
        on_ending: Callable[[str, str], None] | None = None,
        on_appointment: Callable[[str, CallSession], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self._room = room
        self._endings = endings
        self._invitations = invitations
        self.tokens = tokens
        self.media = media
        self._clock = clock
        self._on_call_ended = on_call_ended
        self._on_ending = on_ending
        #: ``(event, session)`` of an appointment's call: ``appointment.waiting`` (the citizen
        #: is in the lobby), ``call.started``, ``call.ended`` (the booking system's webhooks).
        self._on_appointment = on_appointment

    # ------------------------------------------------------------ waiting

    def request(
        self, caller: Participant, topic: tuple[str, str] | None, region: str | None
    ) -> None:
        """A booth or a walk-in's browser waits for an advisor (on ``topic``: id, name)."""
        self.check_may_wait(caller)
        session = CallSession(
            id=new_id(), caller=caller, waiting_since=self._clock.now(), region=region
        )
        if topic is not None:
            session.topic_id, session.topic_name = topic
        self._open(session)
        log.info("session %s: %s waits for an advisor", session.id, caller)

    def lobby(self, caller: Participant, appointment_id: str, advisor_id: str) -> None:
        """A citizen's browser or a booth waits in an appointment's lobby."""
        self.check_may_wait(caller)
        session = CallSession(
            id=new_id(),
            caller=caller,
            waiting_since=self._clock.now(),
            appointment_id=appointment_id,
            advisor_id=advisor_id,
        )
        self._open(session)
        log.info(
            "session %s: %s in the lobby of appointment %s", session.id, caller, appointment_id
        )
        self._appointment("appointment.waiting", session)

    def _open(self, session: CallSession) -> None:
        self._sessions.add(session)
        session.caller.session_id = session.id
        session.caller.send(
            CallWaiting(
                session_id=session.id, resume_token=self.tokens.issue(session, session.caller)
            )
        )
        self._room.changed()

    def check_may_wait(self, participant: Participant) -> None:
        """A guest pass waits or talks once at a time; citizens asking for an advisor now
        from their browsers are limited in all and per address."""
        if participant.session_id is not None:
            raise ProtocolError(ErrorCode.ALREADY_IN_CALL, "you are already waiting or in a call")
        if participant.role is not Role.CITIZEN:
            return
        self._take_over_pass(participant)
        if participant.entitlement.walk_in:
            self._room.check_room(participant)

    def _take_over_pass(self, citizen: Participant) -> None:
        """A guest pass's wait or call is over when its page's connection is lost (reloaded,
        say): the citizen starts again on the new page. On a live page it goes on, and the new
        one is refused."""
        for session in list(self._sessions.values()):
            for other in (*session.participants(), *session.pending):
                if other.role is not Role.CITIZEN or other.principal_id != citizen.principal_id:
                    continue
                if other.presence is not Presence.AWAY:
                    raise ProtocolError(
                        ErrorCode.ALREADY_IN_CALL,
                        "you are already waiting or in a call on another page",
                    )
                log.info("session %s: %s started again on a new page", session.id, other)
                if other is session.caller:
                    self.end(session.id, "peer_disconnected", by=other)
                else:
                    self.leave(session, other, "peer_disconnected")
                break

    def accept(self, advisor: Participant, session_id: str) -> None:
        if advisor.session_id is not None:
            raise ProtocolError(ErrorCode.ALREADY_IN_CALL, "end your current call first")
        session = self._sessions.get(session_id)
        if session is None or not visible_to(session, advisor):
            raise ProtocolError(ErrorCode.UNKNOWN_SESSION, f"no waiting call {session_id}")
        if session.state is not SessionState.WAITING:
            raise ProtocolError(
                ErrorCode.SESSION_NOT_WAITING, "another advisor has already taken this call"
            )
        session.start(advisor)
        self._sessions.changed(session)
        if session.is_walk_in:  # walk-ins teach the wait estimate
            self._room.learn_wait(session)
        advisor.session_id = session.id
        log.info("session %s: %s accepted %s", session.id, advisor, session.caller)
        self._appointment("call.started", session)
        for participant, offerer, peer in (
            (session.caller, True, advisor),
            (advisor, False, session.caller),
        ):
            participant.send(
                CallStarted(
                    session_id=session.id,
                    offerer=offerer,
                    ice_servers=self.media.ice_servers_for(participant, session),
                    ice_transport_policy=self.media.policy_for(participant),
                    peer=peer.peer(),
                    peers=[peer.peer()],
                    resume_token=self.tokens.issue(session, participant),
                )
            )
        self._room.changed()

    def cancel(self, caller: Participant, session_id: str) -> None:
        """The caller stops waiting (or someone invited stops waiting to be let in)."""
        if pending_in(self._sessions, caller, session_id):
            self.leave(self._sessions[session_id], caller, "cancelled")
            return
        session = own_session(self._sessions, caller, session_id)
        if session.state is not SessionState.WAITING:
            raise ProtocolError(ErrorCode.SESSION_NOT_WAITING, "the call already started")
        self.end(session.id, "cancelled", by=caller)

    def hang_up(self, participant: Participant, session_id: str, reason: str) -> None:
        """An invited participant leaves (the call goes on); anyone else ends the call."""
        if pending_in(self._sessions, participant, session_id):
            self.leave(self._sessions[session_id], participant, reason)
            return
        session = own_session(self._sessions, participant, session_id)
        if participant in session.guests:
            self.leave(session, participant, reason)
        else:
            self.end(session.id, reason, by=participant)

    # ------------------------------------------------------------ leaving and ending

    def leave(self, session: CallSession, guest: Participant, reason: str) -> None:
        """An invited participant goes (or stops waiting to join); the call goes on."""
        was_in_call = guest in session.guests
        if was_in_call:
            session.guests.remove(guest)
        elif guest in session.pending:
            session.pending.remove(guest)
        else:  # pragma: no cover - callers check membership
            return
        guest.session_id = None
        if was_in_call:  # its token must not bring it back (it was removed, say)
            self.finish(session.id, guest.participant_id)
            self._sessions.changed(session)
        log.info("session %s: %s left: %s", session.id, guest, reason)
        told = session.participants() if was_in_call else [session.advisor]
        for participant in told:
            if participant is not None:
                participant.send(
                    ParticipantLeft(
                        session_id=session.id, participant_id=guest.participant_id, reason=reason
                    )
                )

    def end(self, session_id: str, reason: str, *, by: Participant) -> None:
        """End the call; everybody but ``by`` is told ``reason``."""
        session = self._sessions.remove(session_id)
        if session is None:
            return
        was_waiting = session.state is SessionState.WAITING
        session.end()
        self.finish(session.id)
        self._invitations.drop_for(session.id)
        for participant in (*session.participants(), *session.pending):
            participant.session_id = None
            if participant is not by:
                participant.send(Hangup(session_id=session.id, reason=reason))
            if participant.presence is Presence.AWAY:  # nothing left to come back to
                participant.gone(f"session {session.id} ended")
        log.info("session %s ended by %s: %s", session.id, by, reason)
        if was_waiting:
            self._room.changed()
            return
        self._appointment("call.ended", session)
        if self._on_call_ended is not None:
            self._on_call_ended(session)

    def _appointment(self, event: str, session: CallSession) -> None:
        if session.appointment_id is not None and self._on_appointment is not None:
            self._on_appointment(event, session)

    def finish(self, session_id: str, participant_id: str = WHOLE_CALL) -> None:
        """Remember that the call ended (or that the participant is finished in it)."""
        if self._endings.finish(session_id, participant_id, self._clock.time()) and (
            self._on_ending is not None
        ):
            self._on_ending(session_id, participant_id)
