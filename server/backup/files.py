"""Putting restored files in place so that a failure leaves the old ones as they were."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

from .archive import sync_folder

__all__ = ["Replacement", "stage_bytes"]


class Replacement:
    """A new file put in place of ``target`` by renaming; what was there (and its
    ``companions``, e.g. SQLite's ``-wal``) is kept aside until :meth:`commit` deletes it, or
    :meth:`undo` puts it back. ``new`` must be on the same file system as ``target``."""

    def __init__(self, target: Path, new: Path, *, companions: tuple[str, ...] = ()) -> None:
        self._target, self._new = target, new
        self._companions = [Path(f"{target}{suffix}") for suffix in companions]
        self._aside: list[tuple[Path, Path]] = []
        self._placed = False

    def apply(self) -> None:
        """Put the new file in place; on failure, leave everything as it was."""
        tag = secrets.token_hex(4)
        try:
            for path in (self._target, *self._companions):
                if path.exists():
                    aside = path.with_name(f".{path.name}.{tag}.replaced")
                    os.replace(path, aside)
                    self._aside.append((path, aside))
            os.chmod(self._new, 0o600)
            _adopt_owner(self._new, self._target.parent)
            os.replace(self._new, self._target)
            self._placed = True
        except BaseException:
            self.undo()
            raise
        sync_folder(self._target.parent)

    def undo(self) -> None:
        """Put back what was there before :meth:`apply`."""
        if self._placed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._target)
            self._placed = False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._new)
        for path, aside in reversed(self._aside):
            os.replace(aside, path)
        self._aside.clear()

    def commit(self) -> None:
        """Delete what was there before (it may hold personal data)."""
        for _, aside in self._aside:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(aside)
        self._aside.clear()


def _adopt_owner(path: Path, folder: Path) -> None:
    # Restored as root for a service that runs as its own user: the files belong to whoever
    # owns the folder they go into, as the ones the server made did.
    if os.geteuid() != 0:
        return
    owner = folder.stat()
    os.chown(path, owner.st_uid, owner.st_gid)


def stage_bytes(folder: Path, data: bytes) -> Path:
    """``data`` in a new private file in ``folder``, flushed to disk, ready to be renamed."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, prefix=".videobooth-restore-", suffix=".part")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    return Path(name)
