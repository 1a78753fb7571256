"""Checks of the values people type, shared by the store modules: names and other short
texts, times, and choices from a fixed set.

Each check returns the value as it is stored (trimmed, in UTC, as the enum) or raises
:class:`~server.storage.errors.InvalidValueError` with a message for the person who typed it;
*what* names the value in that message ("branch name", "start time").
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeVar

from .errors import InvalidValueError

__all__ = ["aware", "clean_optional_text", "clean_text", "parse_choice"]

_Choice = TypeVar("_Choice", bound=StrEnum)


def clean_text(value: str, what: str, max_length: int) -> str:
    """*value* trimmed; refused when empty, longer than *max_length* or with control
    characters."""
    cleaned = value.strip()
    if not cleaned:
        raise InvalidValueError(f"The {what} must not be empty.")
    return _checked(cleaned, what, max_length)


def clean_optional_text(value: str | None, what: str, max_length: int) -> str | None:
    """Like :func:`clean_text`, but None (or only spaces) gives None."""
    cleaned = (value or "").strip()
    if not cleaned:
        return None
    return _checked(cleaned, what, max_length)


def _checked(cleaned: str, what: str, max_length: int) -> str:
    if len(cleaned) > max_length:
        raise InvalidValueError(f"The {what} is too long: use at most {max_length} characters.")
    if not cleaned.isprintable():
        raise InvalidValueError(f"The {what} must not contain control characters.")
    return cleaned


def aware(value: datetime, what: str) -> datetime:
    """*value* in UTC; refused when it has no time zone (its meaning would be a guess)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidValueError(
            f"The {what} has no time zone; pass a timezone-aware time (for example in UTC)."
        )
    try:
        return value.astimezone(UTC)
    except OverflowError:  # the first or last day the calendar knows, with an offset
        raise InvalidValueError(f"The {what} {value.isoformat()} is out of range.") from None


def parse_choice(kind: type[_Choice], value: _Choice | str, what: str) -> _Choice:
    """*value* as a member of *kind*; refused, naming the choices, when it is none of them."""
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise InvalidValueError(f"Unknown {what} {value!r}: use one of {choices}.") from None
