"""The booth's update errors: one root; messages a technician can act on."""

from __future__ import annotations

__all__ = ["DownloadError", "UpdateError"]


class UpdateError(Exception):
    """An update could not be fetched or installed; the message says why."""


class DownloadError(UpdateError):
    """The bundle could not be downloaded, or what arrived is not what was announced."""
