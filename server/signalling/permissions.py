"""What each role may send: anything else is refused before it reaches a handler."""

from __future__ import annotations

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
    LobbyJoin,
    Message,
    Offer,
    ProtocolError,
    Remove,
    Resume,
    Role,
    UpdateProgress,
)

#: What everyone in a call sends: negotiation, hanging up, chat, staying and coming back.
IN_CALL: frozenset[type[Message]] = frozenset(
    {Offer, Answer, IceCandidate, Hangup, Chat, Heartbeat, Resume}
)

ALLOWED: dict[Role, frozenset[type[Message]]] = {
    Role.BOOTH: IN_CALL
    | {CallRequest, AppointmentJoin, CallCancel, CallStats, CommandResult, UpdateProgress},
    Role.ADVISOR: IN_CALL | {CallAccept, Admit, Remove},
    Role.CITIZEN: IN_CALL | {CallRequest, LobbyJoin, CallCancel, CallStats},
}


def check_allowed(role: Role, message: Message) -> None:
    """Refuse ``message`` unless ``role`` may send it."""
    if type(message) not in ALLOWED[role]:
        raise ProtocolError(ErrorCode.NOT_ALLOWED, f"a {role} may not send {message.type} messages")
