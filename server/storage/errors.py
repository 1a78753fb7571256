"""Errors raised by the storage package.

Every error has one root, and most also inherit the built-in that describes them, so callers
may catch either::

    StorageError
    ├── DuplicateError       (also ValueError)   a username, booth, branch or topic name is taken
    ├── WeakPasswordError    (also ValueError)   a new password does not meet the policy
    ├── InvalidValueError    (also ValueError)   a malformed username, role, name, time, ...
    ├── ConflictError        (also ValueError)   a rule about other records would break: the
    │                                            last administrator, a branch still in use
    ├── NotFoundError        (also LookupError)  no user, booth, branch, ... with that id
    ├── EnrolmentError                           a booth's enrolment is refused; ``reason``
    │                                            says why as an :class:`EnrolmentRefusal`
    └── DatabaseError                            the database cannot be reached or migrated

Messages are written for the person who typed the value (an administrator, a technician), so
they can be shown as they are.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ConflictError",
    "DatabaseError",
    "DuplicateError",
    "EnrolmentError",
    "EnrolmentRefusal",
    "InvalidValueError",
    "NotFoundError",
    "StorageError",
    "WeakPasswordError",
]


class StorageError(Exception):
    """Root of all errors raised by :mod:`server.storage`."""


class DuplicateError(StorageError, ValueError):
    """A value that must be unique (username, booth name) is already in use."""


class WeakPasswordError(StorageError, ValueError):
    """A new password does not meet the password policy."""


class InvalidValueError(StorageError, ValueError):
    """A value is malformed (username, role, booth name)."""


class ConflictError(StorageError, ValueError):
    """The change would break a rule about other records: it would leave no enabled
    administrator, or it deletes a branch that booths or appointments still refer to."""


class NotFoundError(StorageError, LookupError):
    """No record exists with the given id."""


class EnrolmentRefusal(StrEnum):
    """Why an enrolment was refused, for a booth to explain in its own language."""

    # (S105: these name reasons, they are no secrets)
    NOT_A_TOKEN = "not_a_token"  # noqa: S105
    BAD_REQUEST = "bad_request"  # a malformed key or hardware description: a booth's bug
    TOKEN_UNKNOWN = "token_unknown"  # noqa: S105
    TOKEN_USED = "token_used"  # noqa: S105
    TOKEN_EXPIRED = "token_expired"  # noqa: S105
    BOOTH_REVOKED = "booth_revoked"
    KEY_TAKEN = "key_taken"


class EnrolmentError(StorageError):
    """The enrolment cannot go ahead; the message says why (shown to the technician), and
    :attr:`reason` says it as a code."""

    def __init__(self, message: str, reason: EnrolmentRefusal) -> None:
        super().__init__(message)
        self.reason = reason


class DatabaseError(StorageError):
    """The database cannot be opened, reached or migrated; the message says which and why."""
