"""SQLite: copied with its online backup API while the server runs; restored by renaming a
checked (and, from an older schema, migrated) copy into place."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from pathlib import Path

from server.storage import StorageError, migrate

from . import schema
from .archive import DatabaseKind
from .base import Progress
from .errors import BackupError
from .files import Replacement

__all__ = ["SqliteFile", "sqlite_revision"]


class SqliteFile:
    """The database file of a SQLite installation."""

    kind = DatabaseKind.SQLITE

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)

    async def dump(self, into: Path) -> str:
        return await asyncio.to_thread(self._dump, into)

    def _dump(self, into: Path) -> str:
        if not self.path.is_file():
            raise BackupError(
                f"there is no database at {self.path}: is this the server's configuration "
                "(--config, --data-dir)?"
            )
        try:
            # mode=rw: never create an empty database where the real one was expected.
            uri = f"{self.path.resolve().as_uri()}?mode=rw"
            source = sqlite3.connect(uri, uri=True, timeout=30)
            try:
                target = sqlite3.connect(into)
                try:
                    # One step (pages=-1) reads one snapshot: in WAL mode the server goes on
                    # writing meanwhile, and nothing makes the copy start again.
                    source.backup(target)
                finally:
                    target.close()
            finally:
                source.close()
        except sqlite3.Error as exc:
            raise BackupError(f"cannot copy the database {self.path}: {exc}") from None
        return sqlite_revision(into)

    async def existing(self) -> str | None:
        paths = (self.path, Path(f"{self.path}-wal"))
        if any(await asyncio.to_thread(lambda: [path.exists() for path in paths])):
            return f"there is a database at {self.path}"
        return None

    def workdir(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=self.path.parent, prefix=".videobooth-restore-"))

    async def stage(self, copy: Path, upgrade_from: str | None, progress: Progress) -> None:
        if upgrade_from is None:
            return
        progress(
            f"database: migrating the restored copy from schema {upgrade_from} to {schema.head()}"
        )
        try:
            await migrate(f"sqlite+aiosqlite:///{copy}")
        except StorageError as exc:
            raise BackupError(f"cannot migrate the restored database: {exc}") from None
        await asyncio.to_thread(sqlite_revision, copy)  # back to one file, checked again

    async def install(self, copy: Path, *, replace: bool, progress: Progress) -> Replacement:
        # The old database's WAL and shared memory go with it: SQLite would otherwise replay
        # the old log into the new file.
        replacement = Replacement(self.path, copy, companions=("-wal", "-shm", "-journal"))
        replacement.apply()
        progress(f"database: in place at {self.path}")
        return replacement

    async def finish(self, upgrade_from: str | None, progress: Progress) -> None:
        return None


def sqlite_revision(copy: Path) -> str:
    """The schema revision of a copy of a SQLite database, after checking its integrity; the
    copy is left a file of its own (no WAL beside it)."""
    try:
        connection = sqlite3.connect(copy)
        try:
            connection.execute("PRAGMA journal_mode=DELETE")
            check = connection.execute("PRAGMA integrity_check").fetchall()
            if check != [("ok",)]:
                raise BackupError(
                    f"the database copy fails SQLite's integrity check: {check[0][0]}"
                )
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise BackupError(f"the database copy cannot be read: {exc}") from None
    if row is None:
        raise BackupError("the database has no schema revision: run videobooth-server migrate")
    return str(row[0])
