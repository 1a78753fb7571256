"""The update errors: one root, converted to clear answers at the API."""

from __future__ import annotations

__all__ = ["BundleError", "UpdateError"]


class UpdateError(Exception):
    """Something about booth updates went wrong; the message says what, for an administrator."""


class BundleError(UpdateError, ValueError):
    """An uploaded bundle is refused: not signed with the trusted key, altered, or malformed."""
