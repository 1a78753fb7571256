"""``backup``, ``restore`` and ``restore --check``: the operations, for the command line."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from server.config import ServerConfig

from . import schema
from .archive import (
    KEY_MEMBER,
    DatabaseKind,
    Manifest,
    Member,
    Unpacked,
    check_key_text,
    read_archive,
    write_archive,
)
from .base import DatabaseSide, Progress
from .errors import BackupError, TargetNotEmptyError, damaged
from .files import Replacement, stage_bytes
from .postgres import PostgresDatabase, dump_revision
from .sqlite import SqliteFile, sqlite_revision

__all__ = ["check_backup", "create_backup", "restore_backup"]

log = logging.getLogger(__name__)


def database_side(config: ServerConfig) -> DatabaseSide:
    """The database of ``config``'s ``database_url``, as backups see it."""
    url = config.effective_database_url
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise BackupError(f"database_url {url!r} is not a database URL") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise BackupError("database_url names no SQLite file: there is nothing to back up")
        return SqliteFile(Path(database))
    if backend == "postgresql":
        return PostgresDatabase(url, parsed)
    raise BackupError(f"database_url: cannot back up a {backend} database (SQLite or PostgreSQL)")


def _copy_revision(kind: DatabaseKind, copy: Path) -> str:
    return sqlite_revision(copy) if kind is DatabaseKind.SQLITE else dump_revision(copy)


# ---------------------------------------------------------------------------------------------
# backup


async def create_backup(
    config: ServerConfig, destination: Path | str, *, replace: bool = False, progress: Progress
) -> Path:
    """Back up the server of ``config`` into one archive at ``destination`` (a file, or a
    folder for ``videobooth-backup-<time>.tar``; as text, a trailing slash says it must be
    a folder); the archive's path.

    Safe while the server runs. Raises :class:`BackupError` with the reason.
    """
    database = database_side(config)
    created_at = datetime.now(UTC).replace(microsecond=0)
    path = _archive_path(destination, created_at)
    if path.exists() and not replace:
        raise BackupError(f"{path} already exists: name another file, or add --force")
    key_path = config.effective_secret_key_file
    key = _read_key(key_path)
    try:
        work = Path(tempfile.mkdtemp(dir=path.parent, prefix=".videobooth-backup-"))
    except OSError as exc:
        raise BackupError(f"cannot write into {path.parent}: {exc.strerror or exc}") from None
    try:
        copy = work / database.kind.member
        progress(f"database: copying {database.where} ({database.kind.value})")
        revision = await database.dump(copy)
        progress(f"database: copied, {_size(copy.stat().st_size)} at schema revision {revision}")
        key_copy = work / KEY_MEMBER
        key_copy.write_bytes(key)
        progress(f"server key: {key_path}")
        files = {database.kind.member: copy, KEY_MEMBER: key_copy}
        manifest = Manifest(
            database=database.kind,
            schema_revision=revision,
            members={name: Member.of(file) for name, file in files.items()},
            created_at=created_at,
        )
        progress(f"writing {path}")
        try:
            await asyncio.to_thread(write_archive, path, manifest, files, replace=replace)
        except OSError as exc:
            raise BackupError(f"cannot write the backup {path}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.debug("backup of %s written to %s", database.where, path)
    progress(
        f"backup written: {path} ({_size(path.stat().st_size)}); it holds the server key and "
        "personal data: keep it where only operators can read it"
    )
    return path


def _archive_path(given: Path | str, created_at: datetime) -> Path:
    if str(given) == "-":
        raise BackupError(
            "a backup is never written to standard output: name a file or folder with --output"
        )
    destination = Path(given)
    if destination.is_dir():
        return destination / f"videobooth-backup-{created_at:%Y%m%dT%H%M%SZ}.tar"
    if str(given).endswith(os.sep):
        raise BackupError(f"the folder {given} does not exist")
    if destination.exists() and not destination.is_file():
        raise BackupError(f"{destination} is not a regular file: name a file or folder")
    if not destination.parent.is_dir():
        raise BackupError(f"the folder {destination.parent} does not exist")
    return destination


def _read_key(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BackupError(
            f"there is no server key at {path}: is this the server's configuration "
            "(--config, --data-dir)? The server makes it when it first starts"
        ) from None
    except OSError as exc:
        raise BackupError(f"cannot read the server key {path}: {exc.strerror or exc}") from None
    if not check_key_text(data):
        raise BackupError(f"the server key {path} is damaged: it is not a server key")
    return data.strip() + b"\n"


def _size(count: int) -> str:
    if count < 1000:
        return f"{count} bytes"
    value = count / 1000
    for unit in ("kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            break
        value /= 1000
    return f"{value:.1f} {unit}"


# ---------------------------------------------------------------------------------------------
# restore --check


async def check_backup(archive: Path, *, progress: Progress) -> Manifest:
    """Read and check the whole archive without restoring it; its manifest."""
    work = Path(tempfile.mkdtemp(prefix="videobooth-check-"))
    try:
        unpacked = await asyncio.to_thread(read_archive, archive, work)
        manifest = unpacked.manifest
        upgrade_from = schema.upgrade_from(manifest, archive)
        revision = await asyncio.to_thread(_copy_revision, manifest.database, unpacked.database)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _check_revision(archive, manifest, revision)
    progress(_describe(archive, manifest))
    progress(
        "the archive is complete and undamaged"
        + (f"; its database would be migrated from schema {upgrade_from}" if upgrade_from else "")
    )
    return manifest


def _check_revision(archive: Path, manifest: Manifest, revision: str) -> None:
    if revision != manifest.schema_revision:
        raise damaged(
            archive,
            f"its database is at schema revision {revision}, its manifest says "
            f"{manifest.schema_revision}",
        )


def _describe(archive: Path, manifest: Manifest) -> str:
    return (
        f"{archive}: made {manifest.created_at:%Y-%m-%d %H:%M:%S %Z} by Videobooth "
        f"{manifest.server_version}, {manifest.database.value} database at schema revision "
        f"{manifest.schema_revision}"
    )


# ---------------------------------------------------------------------------------------------
# restore


async def restore_backup(
    config: ServerConfig, archive: Path, *, replace: bool = False, progress: Progress
) -> Manifest:
    """Restore ``archive`` into the installation of ``config``; the archive's manifest.

    The archive is checked in full before anything changes. Without ``replace`` an existing
    database (a non-empty one on PostgreSQL) or server key is refused. On failure everything
    is as it was. Stop the server first: one answering on the configured port is refused.
    """
    database = database_side(config)
    key_path = config.effective_secret_key_file
    _refuse_running_server(config)
    await _refuse_existing(database, key_path, replace)
    work = database.workdir()
    try:
        progress(f"checking {archive}")
        unpacked = await asyncio.to_thread(read_archive, archive, work)
        manifest = unpacked.manifest
        progress(_describe(archive, manifest))
        if manifest.database is not database.kind:
            raise BackupError(
                f"{archive} holds a {manifest.database.value} database, but this "
                f"configuration's database is {database.kind.value} ({database.where}): "
                "restore it into an installation with the same kind of database"
            )
        upgrade_from = schema.upgrade_from(manifest, archive)
        revision = await asyncio.to_thread(_copy_revision, manifest.database, unpacked.database)
        _check_revision(archive, manifest, revision)
        progress("checked: every member matches its SHA-256")
        await database.stage(unpacked.database, upgrade_from, progress)
        # Again, right before anything changes: the first look was before a long check.
        _refuse_running_server(config)
        await _refuse_existing(database, key_path, replace)
        await _install(database, unpacked, key_path, replace=replace, progress=progress)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    await database.finish(upgrade_from, progress)
    log.debug("restored %s into %s", archive, database.where)
    progress("restored; start the server (e.g. systemctl start videobooth)")
    return manifest


def _refuse_running_server(config: ServerConfig) -> None:
    # Connecting, not binding: a server listening on every address answers on loopback.
    anywhere = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104
    host = anywhere.get(config.host, config.host)
    try:
        with socket.create_connection((host, config.port), timeout=1):
            pass
    except OSError:
        return
    raise TargetNotEmptyError(
        f"something answers on {host}:{config.port}, where this configuration's server "
        "listens: stop the server (and every other server on this database) before restoring, "
        "e.g. systemctl stop videobooth"
    )


async def _refuse_existing(database: DatabaseSide, key_path: Path, replace: bool) -> None:
    if replace:
        return
    there = []
    if found := await database.existing():
        there.append(found)
    if await asyncio.to_thread(key_path.exists):
        there.append(f"there is a server key at {key_path}")
    if there:
        raise TargetNotEmptyError(
            f"{'; '.join(there)}: nothing was changed. To replace what is there with the "
            "backup, stop the server and add --force"
        )


async def _install(
    database: DatabaseSide,
    unpacked: Unpacked,
    key_path: Path,
    *,
    replace: bool,
    progress: Progress,
) -> None:
    """The key, then the database; if the database fails, the old key goes back."""
    placed: list[Replacement] = []
    try:
        key = Replacement(key_path, stage_bytes(key_path.parent, unpacked.key))
        key.apply()
        placed.append(key)
        progress(f"server key: in place at {key_path}")
        installed = await database.install(unpacked.database, replace=replace, progress=progress)
        if installed is not None:
            placed.append(installed)
    except BaseException as exc:
        for replacement in reversed(placed):
            replacement.undo()
        if isinstance(exc, OSError):
            raise BackupError(
                f"cannot put the restored files in place: {exc}; nothing was changed"
            ) from None
        raise
    for replacement in placed:
        replacement.commit()
