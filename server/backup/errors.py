"""Errors of backups and restores, with one root::

    BackupError                              cannot back up or restore; the message says why
    ├── ArchiveError     (also ValueError)   not a Videobooth backup, damaged or incomplete
    │   └── NewerBackupError                 made by a newer server (format or schema)
    └── TargetNotEmptyError (also FileExistsError)
                                             a database or key is there already, or a server
                                             is running on them

Messages are one line for the operator at the command line: what is wrong, and what to do.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ArchiveError", "BackupError", "NewerBackupError", "TargetNotEmptyError", "damaged"]


class BackupError(Exception):
    """A backup or restore cannot go on; the message says why and what to do."""


class ArchiveError(BackupError, ValueError):
    """The file is not a Videobooth backup, or it is damaged or incomplete."""


class NewerBackupError(ArchiveError):
    """The backup was made by a newer server: a newer archive format or database schema."""


class TargetNotEmptyError(BackupError, FileExistsError):
    """A restore would replace a database or key that is there (without ``force``), or a
    server is running on them."""


def damaged(archive: Path, what: str) -> ArchiveError:
    """The error for an archive that is not as its manifest says."""
    return ArchiveError(
        f"the backup {archive} is damaged: {what}; nothing was changed: use another copy of it"
    )
