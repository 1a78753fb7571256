"""Backups of a server's state, and restoring one into a fresh (or replaced) installation.

What a server cannot lose is its database and its key (``server.key``, which join codes are
checked with: see :mod:`server.keyfile`). Branding (the logo, colours and texts) is kept in the
database (tables ``assets`` and ``settings``), so it comes with it. A backup is one tar file,
mode 0600 (it holds the key and personal data), written to a temporary file and renamed; its
layout is in :mod:`.archive`.

- :mod:`.archive` — the manifest, writing the archive and reading it back checked
- :mod:`.sqlite`, :mod:`.postgres` — each kind of database (:mod:`.base`: what they do)
- :mod:`.files` — putting restored files in place, or the old ones back
- :mod:`.schema` — the schema revisions this server knows
- :mod:`.commands` — ``backup``, ``restore``, ``restore --check``
- :mod:`.errors` — the error tree

A restore reads and checks the whole archive (manifest, hashes, format, a schema this server
knows) before it changes anything; refuses to replace a database or key without ``replace``;
puts the key and the database in place together, the old ones back if either fails
(PostgreSQL: ``psql`` in one transaction); and migrates a database from an older schema.
"""

from .archive import FORMAT_VERSION, DatabaseKind, Manifest, Member, write_archive
from .base import Progress
from .commands import check_backup, create_backup, restore_backup
from .errors import ArchiveError, BackupError, NewerBackupError, TargetNotEmptyError
from .postgres import libpq_environment

__all__ = [
    "FORMAT_VERSION",
    "ArchiveError",
    "BackupError",
    "DatabaseKind",
    "Manifest",
    "Member",
    "NewerBackupError",
    "Progress",
    "TargetNotEmptyError",
    "check_backup",
    "create_backup",
    "libpq_environment",
    "restore_backup",
    "write_archive",
]
