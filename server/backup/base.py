"""What each kind of database does for a backup and a restore (:mod:`.sqlite`,
:mod:`.postgres`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from .archive import DatabaseKind
from .files import Replacement

__all__ = ["DatabaseSide", "Progress"]

#: Where a line of progress goes (the command line prints it).
Progress = Callable[[str], None]


class DatabaseSide(Protocol):
    """The database side of a backup: SQLite's file or a PostgreSQL database."""

    kind: DatabaseKind
    #: How messages name it (never with a password).
    where: str

    async def dump(self, into: Path) -> str:
        """Write a consistent copy of the database into the file ``into``; its revision."""

    async def existing(self) -> str | None:
        """What a restore would replace, said for the refusal; None when there is nothing."""

    def workdir(self) -> Path:
        """A new private folder for a restore's files (on the database's own file system
        where it is a file, so that putting it in place is a rename)."""

    async def stage(self, copy: Path, upgrade_from: str | None, progress: Progress) -> None:
        """Make the checked copy ready to be put in place (SQLite: migrate it)."""

    async def install(self, copy: Path, *, replace: bool, progress: Progress) -> Replacement | None:
        """Put the copy in place, all or nothing; what to undo if something later fails."""

    async def finish(self, upgrade_from: str | None, progress: Progress) -> None:
        """Once everything is in place (PostgreSQL: migrate)."""
