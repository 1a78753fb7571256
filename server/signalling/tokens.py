"""Resume tokens for the participants of a call (the format is :mod:`server.resume`'s).

Every participant gets one when it starts waiting or joins a call; it says what a restarted
server needs to rebuild the call. Without a key no tokens are handed out (and a lost
connection ends its call).
"""

from __future__ import annotations

from server import resume
from server.resume import Member, ResumeClaim
from server.signalling.clock import Clock
from server.signalling.participants import Participant
from server.signalling.sessions import CallSession, SessionState


def member(participant: Participant) -> Member:
    return Member(
        participant_id=participant.participant_id,
        role=participant.role,
        principal_id=participant.principal_id,
        name=participant.name,
    )


def claim(session: CallSession, participant: Participant) -> ResumeClaim:
    """What ``participant``'s token says about ``session``."""
    return ResumeClaim(
        session_id=session.id,
        me=member(participant),
        caller=member(session.caller),
        advisor=member(session.advisor) if session.advisor is not None else None,
        active=session.state is SessionState.ACTIVE,
        waiting_since=session.waiting_since,
        appointment_id=session.appointment_id,
        advisor_id=session.advisor_id,
        topic_id=session.topic_id,
        topic_name=session.topic_name,
        region=session.region,
    )


class ResumeTokens:
    def __init__(self, *, key: bytes | None, clock: Clock) -> None:
        #: Signs the tokens (the server's key, set once it is loaded).
        self.key = key
        self._clock = clock

    def issue(self, session: CallSession, participant: Participant) -> str | None:
        if self.key is None:
            return None
        return resume.issue(self.key, claim(session, participant), now=self._clock.time())

    def verify(self, token: str) -> ResumeClaim | None:
        if self.key is None:
            return None
        return resume.verify(self.key, token, now=self._clock.time())
