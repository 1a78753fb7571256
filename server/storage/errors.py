"""Errors raised by the storage package.

Every error has one root, and also inherits the built-in that describes it, so callers may
catch either::

    StorageError
    ├── DuplicateError       (also ValueError)   a username or booth name is taken
    ├── WeakPasswordError    (also ValueError)   a new password does not meet the policy
    ├── InvalidValueError    (also ValueError)   a malformed username, role or name
    ├── NotFoundError        (also LookupError)  no user or booth with that id
    └── DatabaseError                            the database cannot be reached or migrated

Messages are written for the person who typed the value (an administrator), so they can be
shown as they are.
"""

from __future__ import annotations

__all__ = [
    "DatabaseError",
    "DuplicateError",
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


class NotFoundError(StorageError, LookupError):
    """No record exists with the given id."""


class DatabaseError(StorageError):
    """The database cannot be opened, reached or migrated; the message says which and why."""
