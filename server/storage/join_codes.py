"""Join links and codes: the secrets that open an appointment.

An appointment is joined with a link token (``secrets.token_urlsafe(24)``, in the link a
citizen gets) or an 8-digit code typed on a booth's keypad. Both are shown once, at booking,
and only hashes are stored: the token's SHA-256, and the code's HMAC under the server's key
with a per-row salt (rows from before the key: a salted SHA-256). 10**8 codes are few enough to
try them all against a stolen database, so the database alone must not be enough.

A code is unique among the scheduled appointments whose join windows overlap, so a booth can
find the appointment from the code alone (:mod:`.appointments` asks for a code that avoids
them). Finding one by code hashes the code once with each open appointment's salt: O(k) hashes
for k appointments open at the same moment, which is a few hundred at most in a deployment of
branch offices. Callers limit how many codes a client may try.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from .common import advisory_lock, sha256_hex
from .database import Database
from .errors import DuplicateError, InvalidValueError
from .models import Appointment

__all__ = [
    "JOIN_CODE_LENGTH",
    "code_matches",
    "is_join_code",
    "is_join_token",
    "issue_code",
    "lock_join_codes",
    "new_join_code",
    "new_join_token",
]

logger = logging.getLogger(__name__)

JOIN_CODE_LENGTH = 8
_JOIN_CODE = re.compile(rf"[0-9]{{{JOIN_CODE_LENGTH}}}")
_JOIN_TOKEN_BYTES = 24
# secrets.token_urlsafe(24) gives 32 characters; refuse anything else before hashing.
_JOIN_TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")
# With 10^8 codes and a few hundred open appointments a second draw is already rare.
_CODE_ATTEMPTS = 20
# Serialises code allocation between server nodes on PostgreSQL; on SQLite the first write of
# a transaction already takes the database's single write lock.
_JOIN_CODE_LOCK_ID = 0x5642_4A4F_494E_4344 & 0x7FFF_FFFF_FFFF_FFFF
#: Salts of codes hashed with the server's key start with this (older rows: plain SHA-256).
_KEYED = "k1:"


def new_join_token() -> str:
    """A fresh link token; store its :func:`~.common.sha256_hex`."""
    return secrets.token_urlsafe(_JOIN_TOKEN_BYTES)


def is_join_token(token: object) -> bool:
    """Whether *token* could be a link token (checked before hashing anything)."""
    return isinstance(token, str) and _JOIN_TOKEN.fullmatch(token) is not None


def new_join_code() -> str:
    """A random 8-digit code (leading zeros allowed)."""
    return f"{secrets.randbelow(10**JOIN_CODE_LENGTH):0{JOIN_CODE_LENGTH}d}"


def is_join_code(code: object) -> bool:
    """Whether *code* could be a join code: exactly 8 ASCII digits."""
    return isinstance(code, str) and _JOIN_CODE.fullmatch(code) is not None


def _code_hash(code: str, salt: str, key: bytes | None) -> str:
    if salt.startswith(_KEYED):
        if key is None:
            raise InvalidValueError(
                "This join code was made with the server's key; open the "
                "database through the server to check it."
            )
        return hmac.new(key, f"{salt}:{code}".encode(), "sha256").hexdigest()
    return sha256_hex(f"{salt}:{code}")


def code_matches(appointment: Appointment, code: str, key: bytes | None) -> bool:
    """Whether *code* is the appointment's join code (*key*: the server's, see
    :attr:`Database.code_key`)."""
    expected = _code_hash(code, appointment.join_code_salt, key)
    return hmac.compare_digest(expected, appointment.join_code_hash)


def issue_code(
    appointment: Appointment, key: bytes | None, *, avoiding: Sequence[Appointment] = ()
) -> str:
    """Give the appointment a fresh code that none of *avoiding* (the scheduled appointments
    whose windows overlap its own) has; store its hash and return the code, to show once.

    Raises :class:`DuplicateError` when no free code turns up after a few draws.
    """
    for _ in range(_CODE_ATTEMPTS):
        code = new_join_code()
        if not any(code_matches(other, code, key) for other in avoiding):
            salt = (_KEYED + secrets.token_hex(14)) if key is not None else secrets.token_hex(16)
            appointment.join_code_salt = salt
            appointment.join_code_hash = _code_hash(code, salt, key)
            return code
        # The code itself is never logged.
        logger.info("Join code collision for appointment %s; drawing another", appointment.id)
    raise DuplicateError(
        f"No free join code found in {_CODE_ATTEMPTS} attempts; try again or choose another time."
    )


async def lock_join_codes(session: AsyncSession, db: Database) -> None:
    """Make transactions that issue codes wait for each other (on every server node)."""
    await advisory_lock(session, db, _JOIN_CODE_LOCK_ID)
