"""What participants of a running call pass to each other through the server: the media
negotiation (offer, answer, ICE candidates, to one participant or to all), call statistics
and chat. The server stamps the sender; it never reads the media or keeps the chat beyond the
call (data protection: chat stays in memory and goes with the session).
"""

from __future__ import annotations

import logging

from protocol import Answer, CallStats, Chat, ErrorCode, IceCandidate, Offer, ProtocolError
from server.signalling.clock import Clock
from server.signalling.participants import Participant
from server.signalling.sessions import SessionStore, active_session

log = logging.getLogger(__name__)


class Relay:
    def __init__(self, *, sessions: SessionStore, clock: Clock) -> None:
        self._sessions = sessions
        self._clock = clock

    def negotiation(self, sender: Participant, message: Offer | Answer | IceCandidate) -> None:
        """To the participant named in ``to``, or to everyone else in the call."""
        session = active_session(self._sessions, sender, message.session_id)
        relayed = message.model_copy(update={"sender": sender.participant_id, "id": None})
        if message.to is None:
            targets = [other for other in session.participants() if other is not sender]
        else:
            target = session.member(message.to)
            if target is None or target is sender:
                raise ProtocolError(
                    ErrorCode.NOT_IN_SESSION, f"no participant {message.to} in this call"
                )
            targets = [target]
        for other in targets:
            other.send(relayed)

    def stats(self, sender: Participant, message: CallStats) -> None:
        session = active_session(self._sessions, sender, message.session_id)
        stats = message.model_copy(update={"sender": sender.participant_id, "id": None})
        for other in session.participants():
            if other is not sender:
                other.send(stats)

    def chat(self, sender: Participant, message: Chat) -> None:
        """A chat line to everyone in the call (the sender too, with its time and name)."""
        session = active_session(self._sessions, sender, message.session_id)
        if not sender.chat_bucket.take():
            raise ProtocolError(ErrorCode.RATE_LIMITED, "too many chat messages; wait a moment")
        line = message.model_copy(
            update={
                "sender": sender.participant_id,
                "sender_name": sender.name,
                "sent_at": self._clock.now(),
                "id": None,
            }
        )
        session.chat.append(line)
        # Never the text in the log: chat is personal data and stays in memory.
        log.debug("session %s: chat line from %s", session.id, sender)
        for other in session.participants():
            other.send(line)
