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
)

ALLOWED: dict[Role, frozenset[type[Message]]] = {
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


def check_allowed(role: Role, message: Message) -> None:
    """Refuse ``message`` unless ``role`` may send it."""
    if type(message) not in ALLOWED[role]:
        raise ProtocolError(ErrorCode.NOT_ALLOWED, f"a {role} may not send {message.type} messages")
