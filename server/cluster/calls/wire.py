"""What the nodes say to each other about calls: the constants, the members of a call as
they travel, refusals as answers to requests."""

from __future__ import annotations

import json
import logging
from typing import Any, TypeVar

from protocol import Admit, CallCancel, Chat, ErrorCode, Hangup, ProtocolError, Remove
from server.cluster.membership import GONE_AFTER
from server.resume import Member
from server.signalling import CallSession, Participant

log = logging.getLogger(__name__)

__all__ = [
    "ANY_TOPIC",
    "APPOINTMENTS",
    "ASK_SECONDS",
    "CONNECTIONS_SUBJECT",
    "SURELY",
    "TAKE_OVER_SECONDS",
    "WRITE_BACKOFF",
    "WRITE_TRIES",
    "error_code",
    "member_of",
    "queue_of",
    "raise_refusal",
    "refusal",
]


T = TypeVar("T")

#: How long a node waits for the owner of a call to answer an accept or a resume.
ASK_SECONDS = 5.0
#: How long a resume waits for the owner of its call to answer or to be known gone.
TAKE_OVER_SECONDS = GONE_AFTER + 4.0
#: A write to PostgreSQL that failed (it restarts, say) is tried again this often, waiting
#: twice as long each time from the first figure up to the second.
WRITE_TRIES, WRITE_BACKOFF = 12, (0.1, 3.0)
#: What a participant sends that must reach the call's owner even while it changes.
SURELY = (Chat, Hangup, CallCancel, Admit, Remove)
#: Where a node tells the others to end a login's, an appointment's or a booth's connections.
CONNECTIONS_SUBJECT = "vb.connections"
#: The queue subjects' last token for calls on no topic and for appointments' lobbies.
ANY_TOPIC, APPOINTMENTS = "any", "appointment"


def queue_of(session: CallSession) -> str:
    if session.appointment_id is not None:
        return APPOINTMENTS
    return session.topic_id or ANY_TOPIC


def member_of(participant: Participant) -> Member:
    return Member(
        participant_id=participant.participant_id,
        role=participant.role,
        principal_id=participant.principal_id,
        name=participant.name,
    )


def refusal(code: ErrorCode, message: str) -> bytes:
    return json.dumps({"error": str(code), "message": message}).encode()


def error_code(value: Any) -> ErrorCode:
    try:
        return ErrorCode(value)
    except ValueError:
        return ErrorCode.INTERNAL


def raise_refusal(reply: dict[str, Any]) -> None:
    if "error" in reply:
        raise ProtocolError(error_code(reply["error"]), str(reply.get("message", "refused")))
