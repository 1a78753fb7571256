"""People invited by link into a running call (an interpreter, a relative): the link, asking
to join, being admitted into the mesh by the call's advisor, being removed.

A call has at most ``MAX_PARTICIPANTS`` in it; a few more may wait to be admitted.
"""

from __future__ import annotations

import logging

from protocol import (
    MAX_PARTICIPANTS,
    CallStarted,
    CallWaiting,
    ErrorCode,
    Hangup,
    ParticipantJoined,
    ParticipantWaiting,
    ProtocolError,
)
from server.signalling.calls import Calls
from server.signalling.clock import Clock
from server.signalling.invitations import (
    Invitation,
    InvitationStore,
    new_invitation,
    open_invitation,
)
from server.signalling.participants import Participant
from server.signalling.sessions import SessionState, SessionStore, hosted_session

log = logging.getLogger(__name__)

#: People who may wait to be admitted beyond a full call.
EXTRA_WAITING = 2


class Invited:
    def __init__(
        self,
        *,
        sessions: SessionStore,
        invitations: InvitationStore,
        calls: Calls,
        clock: Clock,
    ) -> None:
        self._sessions = sessions
        self._invitations = invitations
        self._calls = calls
        self._clock = clock

    def invite(self, advisor_id: str, session_id: str, label: str) -> str:
        """A new invitation link's token for the running call ``session_id`` of ``advisor_id``."""
        session = self._sessions.get(session_id)
        if (
            session is None
            or session.advisor is None
            or session.advisor.principal_id != advisor_id
            or session.state is not SessionState.ACTIVE
        ):
            raise ProtocolError(ErrorCode.NOT_IN_SESSION, "you have no running call with that id")
        token = new_invitation(self._invitations, session_id, label, self._clock.monotonic())
        log.info("session %s: invitation created", session_id)
        return token

    def invitation(self, token: str) -> Invitation | None:
        """The invitation ``token`` opens, if its call is still running."""
        invitation = open_invitation(self._invitations, token, self._clock.monotonic())
        if invitation is None:
            return None
        session = self._sessions.get(invitation.session_id)
        if session is None or session.state is not SessionState.ACTIVE:
            return None
        return invitation

    def ask_to_join(self, guest: Participant, session_id: str) -> None:
        self._calls.check_may_wait(guest)
        session = self._sessions.get(session_id)
        if session is None or session.advisor is None or session.state is not SessionState.ACTIVE:
            raise ProtocolError(ErrorCode.UNKNOWN_SESSION, "this call has ended")
        if len(session.participants()) + len(session.pending) >= MAX_PARTICIPANTS + EXTRA_WAITING:
            raise ProtocolError(ErrorCode.CALL_FULL, "too many people are waiting to join")
        session.pending.append(guest)
        guest.session_id = session.id
        log.info("session %s: %s asks to join", session.id, guest)
        guest.send(CallWaiting(session_id=session.id))
        session.advisor.send(ParticipantWaiting(session_id=session.id, peer=guest.peer()))

    def admit(self, advisor: Participant, session_id: str, participant_id: str) -> None:
        session = hosted_session(self._sessions, advisor, session_id)
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
        self._sessions.changed(session)
        log.info("session %s: %s admitted %s", session.id, advisor, guest)
        media = self._calls.media
        guest.send(
            CallStarted(
                session_id=session.id,
                offerer=False,
                ice_servers=media.ice_servers_for(guest, session),
                ice_transport_policy=media.browser_policy,
                peer=advisor.peer(),
                peers=[p.peer() for p in present],
                resume_token=self._calls.tokens.issue(session, guest),
            )
        )
        for participant in present:
            participant.send(ParticipantJoined(session_id=session.id, peer=guest.peer()))

    def remove(self, advisor: Participant, session_id: str, participant_id: str) -> None:
        """The advisor sends an invited participant (admitted or waiting) away."""
        session = hosted_session(self._sessions, advisor, session_id)
        guest = next(
            (g for g in (*session.pending, *session.guests) if g.participant_id == participant_id),
            None,
        )
        if guest is None:
            raise ProtocolError(ErrorCode.NOT_IN_SESSION, "nobody invited with that id is here")
        guest.send(Hangup(session_id=session.id, reason="removed"))
        self._calls.leave(session, guest, "removed")
