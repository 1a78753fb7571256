"""Lost connections: a call waits for a participant whose connection is lost, takes it back
when it resumes with its token (on a new connection, under its old participant id), and ends
when it does not come back in time.

Media does not pass through the server and may well go on while signalling is lost. When the
server itself restarted, the call is rebuilt from the first token presented; the others are
expected back within the same grace period. What ended stays ended (:mod:`.endings`).
"""

from __future__ import annotations

import logging

from protocol import (
    MAX_PARTICIPANTS,
    ErrorCode,
    ParticipantAway,
    ParticipantBack,
    ProtocolError,
    Resume,
    Resumed,
    Role,
)
from server.resume import ResumeClaim
from server.signalling.calls import Calls
from server.signalling.clock import Clock
from server.signalling.endings import EndingStore
from server.signalling.participants import Participant, ParticipantStore, Presence
from server.signalling.sessions import CallSession, SessionState, SessionStore
from server.signalling.waiting_room import WaitingRoom

log = logging.getLogger(__name__)

#: How long a call waits for a participant whose connection was lost (seconds), by default.
RESUME_GRACE_SECONDS = 60.0


class Resumption:
    def __init__(
        self,
        *,
        participants: ParticipantStore,
        sessions: SessionStore,
        endings: EndingStore,
        room: WaitingRoom,
        calls: Calls,
        clock: Clock,
        grace_seconds: float = RESUME_GRACE_SECONDS,
    ) -> None:
        self._participants = participants
        self._sessions = sessions
        self._endings = endings
        self._room = room
        self._calls = calls
        self._clock = clock
        self.grace_seconds = grace_seconds
        #: Calls taken up again after a lost connection, since the start (for /metrics).
        self.resumes = 0

    @property
    def possible(self) -> bool:
        """Whether a lost connection's call waits for it (tokens are signed, a grace is set)."""
        return self._calls.tokens.key is not None and self.grace_seconds > 0

    def away(self, session: CallSession, participant: Participant) -> None:
        """``participant``'s connection is lost: the call waits for it."""
        participant.lost(self._clock.monotonic())
        if session.state is SessionState.ACTIVE:
            for other in session.participants():
                if other is not participant:
                    other.send(
                        ParticipantAway(
                            session_id=session.id, participant_id=participant.participant_id
                        )
                    )

    def gave_up(self, booth: Participant) -> None:
        """A booth that comes back without resuming has restarted: the call it was away from
        is over, and the others learn so now rather than after the grace period."""
        for session in list(self._sessions.values()):
            for participant in session.participants():
                if (
                    participant.presence is Presence.AWAY
                    and participant.role is Role.BOOTH
                    and participant.principal_id == booth.principal_id
                ):
                    log.info("session %s: %s restarted; the call is over", session.id, participant)
                    self._calls.end(session.id, "peer_disconnected", by=participant)
                    break

    def expire(self, now: float | None = None) -> None:
        """End what waited too long for a participant to come back."""
        now = self._clock.monotonic() if now is None else now
        for session in list(self._sessions.values()):
            for participant in session.participants():
                since = participant.away_since
                if since is None or now - since < self.grace_seconds:
                    continue
                log.info("session %s: %s did not come back", session.id, participant)
                if participant in session.guests:
                    self._calls.leave(session, participant, "connection_lost")
                    participant.gone("did not come back")
                else:
                    self._calls.end(session.id, "connection_lost", by=participant)
                    break

    def resume(self, participant: Participant, message: Resume) -> None:
        """``participant`` takes up its call (or its wait) again under its old id."""
        claim = self._calls.tokens.verify(message.token)
        if (
            claim is None
            or claim.session_id != message.session_id
            or claim.me.role is not participant.role
            or claim.me.principal_id != participant.principal_id
        ):
            raise ProtocolError(ErrorCode.CANNOT_RESUME, "this call cannot be taken up again")
        if participant.session_id is not None:
            raise ProtocolError(ErrorCode.ALREADY_IN_CALL, "you are already waiting or in a call")
        if self._endings.ended(claim.session_id):
            raise ProtocolError(ErrorCode.CANNOT_RESUME, "the call has ended")
        if self._endings.ended(claim.session_id, claim.me.participant_id):
            raise ProtocolError(
                ErrorCode.CANNOT_RESUME, "you left this call; it cannot be taken up again"
            )
        session = self._sessions.get(claim.session_id) or self._rebuild(claim)
        old = session.member(claim.me.participant_id)
        if (
            old is None
            and claim.me not in (claim.caller, claim.advisor)
            and session.state is SessionState.ACTIVE
            and len(session.participants()) < MAX_PARTICIPANTS
        ):
            # An invited participant the rebuilt call did not know of yet.
            old = Participant.stand_in(claim.me, session.id, self._clock.monotonic())
            session.guests.append(old)
        if (
            old is None
            or old.principal_id != participant.principal_id
            or old.role is not participant.role
        ):
            raise ProtocolError(ErrorCode.CANNOT_RESUME, "the call has ended")
        if self._participants.discard(old):
            # Its older connection has not noticed yet that it is gone: this one takes over.
            old.session_id = None
            old.close(4002, "taken up by a newer connection")
        was_away = old.presence is Presence.AWAY
        self._participants.discard(participant)
        participant.participant_id = old.participant_id
        participant.session_id = session.id
        if participant.node is None:  # connected here (not through another node)
            self._participants.add(participant)
        session.replace(old, participant)
        self._sessions.changed(session)
        old.gone(f"resumed by a new connection in session {session.id}")
        self.resumes += 1
        log.info("session %s: %s resumed", session.id, participant)
        others = [p for p in session.participants() if p is not participant]
        active = session.state is SessionState.ACTIVE
        participant.send(
            Resumed(
                session_id=session.id,
                participant_id=participant.participant_id,
                active=active,
                peers=[p.peer() for p in others],
                away=[p.participant_id for p in others if p.presence is Presence.AWAY],
                ice_servers=self._calls.media.ice_servers_for(participant, session)
                if active
                else [],
            )
        )
        for text in old.take_held():  # what happened meanwhile, in order
            participant.send_text(text)
        if session.state is SessionState.WAITING:
            self._room.changed()
        elif was_away:
            for other in others:
                other.send(
                    ParticipantBack(
                        session_id=session.id, participant_id=participant.participant_id
                    )
                )

    def _rebuild(self, claim: ResumeClaim) -> CallSession:
        """A call the server lost (it restarted), rebuilt from a participant's token; the
        others are expected back within the grace period."""
        now = self._clock.monotonic()
        advisor = claim.advisor
        session = CallSession(
            id=claim.session_id,
            caller=Participant.stand_in(claim.caller, claim.session_id, now),
            advisor=Participant.stand_in(advisor, claim.session_id, now) if advisor else None,
            appointment_id=claim.appointment_id,
            advisor_id=claim.advisor_id,
            topic_id=claim.topic_id,
            topic_name=claim.topic_name,
            region=claim.region,
            state=SessionState.ACTIVE if claim.active else SessionState.WAITING,
            waiting_since=claim.waiting_since,
        )
        self._sessions.add(session)
        log.info("session %s: rebuilt from a resume token (the server restarted)", session.id)
        return session
