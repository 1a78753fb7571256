"""Password hashing for advisors and administrators: argon2id with argon2-cffi's defaults.

Hashing and verifying cost about a tenth of a second of CPU each, by design. Call them from a
worker thread (the stores use :func:`asyncio.to_thread`) so the event loop keeps serving.
"""

from __future__ import annotations

import functools
import logging
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import Argon2Error, InvalidHashError

from .errors import WeakPasswordError

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "hash_password",
    "needs_rehash",
    "spend_verify_time",
    "validate_new_password",
    "verify_password",
]

logger = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 12
"""Shortest password accepted for a new password, in characters."""

MAX_PASSWORD_LENGTH = 1024
"""Longest password accepted for a new password, in characters (guards against huge inputs)."""

# PasswordHasher's defaults are argon2id with the parameters RFC 9106 recommends; the object
# holds only those parameters, so sharing one is safe.
_HASHER = PasswordHasher()


def validate_new_password(password: str) -> None:
    """Raise :class:`WeakPasswordError` if *password* may not be set as a new password."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPasswordError(
            f"The password is too short: use at least {MIN_PASSWORD_LENGTH} characters "
            f"(it has {len(password)})."
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPasswordError(
            f"The password is too long: use at most {MAX_PASSWORD_LENGTH} characters."
        )
    if not password.strip():
        raise WeakPasswordError("The password must not consist of spaces only.")


def hash_password(password: str) -> str:
    """Return the argon2id hash of *password* (a string starting with ``$argon2id$``)."""
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Return whether *password* matches *password_hash*.

    Never raises for a wrong password or a malformed hash; both give ``False``.
    """
    try:
        return _HASHER.verify(password_hash, password)
    except InvalidHashError:
        logger.warning("A stored password hash is malformed; the login is refused")
        return False
    except Argon2Error:
        # VerifyMismatchError (the usual wrong password) and other verification failures.
        return False


def needs_rehash(password_hash: str) -> bool:
    """Return whether *password_hash* was made with other parameters than the current ones."""
    try:
        return _HASHER.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return True


@functools.cache
def _dummy_hash() -> str:
    # Made on first use with the current parameters, so verifying against it costs the same
    # as verifying a real user's hash, whatever argon2-cffi's defaults are.
    return _HASHER.hash(secrets.token_urlsafe(16))


def spend_verify_time(password: str) -> None:
    """Verify *password* against a throw-away hash to spend the time a real check takes.

    Used for unknown usernames, so the response time does not tell whether a user exists.
    """
    verify_password(_dummy_hash(), password)
