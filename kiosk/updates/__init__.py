"""Booth updates: the bundle fetched from the server in resumable ranges, installed by RAUC
into the other root slot when the booth is idle and inside its maintenance window."""

from .download import Bundle, Download
from .errors import DownloadError, UpdateError
from .installer import FakeInstaller, Installer, InstallError, RaucInstaller, Slots, parse_status

__all__ = [
    "Bundle",
    "Download",
    "DownloadError",
    "FakeInstaller",
    "InstallError",
    "Installer",
    "RaucInstaller",
    "Slots",
    "UpdateError",
    "parse_status",
]
