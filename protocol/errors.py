"""Errors raised while reading wire messages.

Exception tree::

    ProtocolError (ValueError)      a message that cannot be accepted; carries a stable ``code``
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Stable machine-readable codes sent in ``error`` replies."""

    BAD_JSON = "bad_json"
    NOT_AN_OBJECT = "not_an_object"
    MESSAGE_TOO_LARGE = "message_too_large"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_MESSAGE = "invalid_message"
    BINARY_NOT_ALLOWED = "binary_not_allowed"
    NOT_ALLOWED = "not_allowed"
    UNKNOWN_SESSION = "unknown_session"
    UNKNOWN_TOPIC = "unknown_topic"
    UNKNOWN_REGION = "unknown_region"
    WRONG_CODE = "wrong_code"
    NOT_IN_SESSION = "not_in_session"
    SESSION_NOT_WAITING = "session_not_waiting"
    ALREADY_IN_CALL = "already_in_call"
    CALL_FULL = "call_full"
    RATE_LIMITED = "rate_limited"
    #: Too many people wait for an advisor now (in all, or from one address): try later.
    QUEUE_FULL = "queue_full"
    #: A resume token that is not valid, not this participant's, or for a call that ended.
    CANNOT_RESUME = "cannot_resume"
    INTERNAL = "internal_error"


class ProtocolError(ValueError):
    """A wire message was rejected; ``code`` goes into the error reply, ``message`` explains."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
