"""Backups of a server's state, and restoring one into a fresh (or replaced) installation.

What a server cannot lose is its database and its key (``server.key``, which join codes are
checked with: see :mod:`server.keyfile`). Branding (the logo, colours and texts) is kept in the
database (tables ``assets`` and ``settings``), so it comes with it. A backup is one tar file,
mode 0600 (it holds the key and personal data), written to a temporary file and renamed:

``manifest.json``
    format and format version, the server's version, the database's kind and Alembic revision,
    when it was made, and the SHA-256 and size of every other member.
``manifest.json.sha256``
    the manifest's own SHA-256, in ``sha256sum`` form.
``database.sqlite3`` or ``database.sql``
    SQLite: a consistent copy made with SQLite's online backup API while the server runs.
    PostgreSQL: ``pg_dump``'s plain SQL, without owners and privileges, so it can be loaded by
    another role into another database.
``server.key``
    the key file as the server reads it.

Restoring reads and checks the whole archive (manifest, hashes, format, a schema this server
knows) before it changes anything; refuses to replace a database or key without ``force``;
installs the key and the database together, putting the old ones back if either fails
(PostgreSQL: ``psql`` in one transaction); and migrates a database from an older schema.
``pg_dump`` and ``psql`` find the password in a private password file, never on their command
line or in the log.

Errors::

    BackupError                              cannot back up or restore; the message says why
    ├── ArchiveError     (also ValueError)   not a Videobooth backup, damaged or incomplete
    │   └── NewerBackupError                 made by a newer server (format or schema)
    └── TargetNotEmptyError (also FileExistsError)
                                             a database or key is there already, or a server
                                             is running on it
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import lzma
import os
import secrets
import shutil
import socket
import sqlite3
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import IO, Protocol

from alembic.script import ScriptDirectory
from sqlalchemy import make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from server.config import ServerConfig
from server.keyfile import KEY_BYTES
from server.storage import StorageError, migrate
from server.storage.database import alembic_config, create_engine

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

log = logging.getLogger(__name__)

FORMAT = "videobooth-backup"
#: The archive layout this server writes and the newest it reads.
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MANIFEST_SUM = "manifest.json.sha256"
KEY_MEMBER = "server.key"
MAX_MANIFEST_BYTES = 64 * 1024
CHUNK = 1024 * 1024

#: Where a line of progress goes (the command line prints it).
Progress = Callable[[str], None]


class BackupError(Exception):
    """A backup or restore cannot go on; the message says why and what to do."""


class ArchiveError(BackupError, ValueError):
    """The file is not a Videobooth backup, or it is damaged or incomplete."""


class NewerBackupError(ArchiveError):
    """The backup was made by a newer server: a newer archive format or database schema."""


class TargetNotEmptyError(BackupError, FileExistsError):
    """A restore would replace a database or key that is there (without ``force``), or a
    server is running on them."""


class DatabaseKind(StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"

    @property
    def member(self) -> str:
        """The archive member holding a database of this kind."""
        return "database.sqlite3" if self is DatabaseKind.SQLITE else "database.sql"


# ---------------------------------------------------------------------------------------------
# The manifest


@dataclass(frozen=True)
class Member:
    """One file in the archive, as the manifest lists it."""

    sha256: str
    size: int

    @classmethod
    def of(cls, path: Path) -> Member:
        digest = hashlib.sha256()
        size = 0
        with path.open("rb") as source:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return cls(digest.hexdigest(), size)


def _server_version() -> str:
    try:
        return metadata.version("videobooth")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class Manifest:
    """What an archive holds; ``manifest.json``."""

    database: DatabaseKind
    schema_revision: str
    members: Mapping[str, Member]
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    server_version: str = field(default_factory=_server_version)
    format_version: int = FORMAT_VERSION

    def to_bytes(self) -> bytes:
        document = {
            "format": FORMAT,
            "format_version": self.format_version,
            "server_version": self.server_version,
            "created_at": self.created_at.isoformat(),
            "database": self.database.value,
            "schema_revision": self.schema_revision,
            "members": {
                name: {"sha256": member.sha256, "size": member.size}
                for name, member in sorted(self.members.items())
            },
        }
        return (json.dumps(document, indent=2) + "\n").encode()

    @classmethod
    def parse(cls, data: bytes, archive: Path) -> Manifest:
        """The manifest in ``data``; :class:`ArchiveError` if it is not one this server reads."""

        def bad(why: str) -> ArchiveError:
            return ArchiveError(f"{archive} is not a Videobooth backup this server can read: {why}")

        try:
            document = json.loads(data)
        except ValueError:
            raise _damaged(archive, f"{MANIFEST} is not valid JSON") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise bad(f"its {MANIFEST} does not say format {FORMAT!r}")
        version = document.get("format_version")
        made_by = str(document.get("server_version", ""))
        if not isinstance(version, int) or version < 1:
            raise bad(f"format_version {version!r} is not a version")
        if version > FORMAT_VERSION:
            raise NewerBackupError(
                f"{archive} has archive format {version}, newer than this server reads "
                f"({FORMAT_VERSION}): restore it with "
                + (f"Videobooth {made_by} or newer" if made_by else "a newer Videobooth")
            )
        try:
            database = DatabaseKind(document["database"])
            revision = document["schema_revision"]
            created_at = datetime.fromisoformat(document["created_at"])
            members = {
                str(name): Member(str(entry["sha256"]), int(entry["size"]))
                for name, entry in dict(document["members"]).items()
            }
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise bad(f"{MANIFEST} is incomplete ({exc})") from None
        if not isinstance(revision, str) or not revision:
            raise bad("schema_revision is missing")
        expected = {database.member, KEY_MEMBER}
        if set(members) != expected:
            raise bad(f"it lists {sorted(members)}, not {sorted(expected)}")
        for name, member in members.items():
            if len(member.sha256) != 64 or member.size < 0:
                raise bad(f"the entry for {name} has no SHA-256 or size")
        return cls(
            database=database,
            schema_revision=revision,
            members=members,
            created_at=created_at,
            server_version=made_by,
            format_version=version,
        )


def _damaged(archive: Path, what: str) -> ArchiveError:
    return ArchiveError(
        f"the backup {archive} is damaged: {what}; nothing was changed: use another copy of it"
    )


# ---------------------------------------------------------------------------------------------
# Writing and reading the archive


def write_archive(
    path: Path, manifest: Manifest, files: Mapping[str, Path], *, replace: bool = False
) -> None:
    """Write ``files`` (member name -> file) with ``manifest`` into the archive ``path``.

    The archive appears complete or not at all (a temporary file beside it, flushed to disk,
    then renamed), with mode 0600. An existing file is replaced only with ``replace``.
    """
    manifest_bytes = manifest.to_bytes()
    manifest_sum = f"{hashlib.sha256(manifest_bytes).hexdigest()}  {MANIFEST}\n".encode()
    mtime = int(manifest.created_at.timestamp())
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for name, data in ((MANIFEST, manifest_bytes), (MANIFEST_SUM, manifest_sum)):
                    tar.addfile(_tarinfo(name, len(data), mtime), _BytesReader(data))
                for name, source in files.items():
                    with source.open("rb") as stream:
                        size = os.fstat(stream.fileno()).st_size
                        tar.addfile(_tarinfo(name, size, mtime), stream)
            raw.flush()
            os.fsync(raw.fileno())
        if not replace and path.exists():
            raise BackupError(f"{path} already exists: name another file, or add --force")
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _sync_folder(path.parent)


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self._data, self._offset = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._offset + size
        chunk = self._data[self._offset : end]
        self._offset += len(chunk)
        return chunk


def _tarinfo(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, mtime, 0o600
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _sync_folder(folder: Path) -> None:
    # The rename itself is made durable by syncing the folder that holds it.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass(frozen=True)
class _Unpacked:
    manifest: Manifest
    database: Path
    key: bytes


def _unpack(archive: Path, into: Path) -> _Unpacked:
    """Read the whole archive into the folder ``into``, checking every member's hash."""
    try:
        tar = tarfile.open(archive, mode="r|*")  # noqa: SIM115 (closed by the with below)
    except FileNotFoundError:
        raise BackupError(f"there is no backup at {archive}") from None
    except OSError as exc:
        raise BackupError(f"cannot read the backup {archive}: {exc.strerror or exc}") from None
    except tarfile.TarError:
        raise ArchiveError(
            f"{archive} is not a Videobooth backup (not a tar archive), or it is damaged"
        ) from None
    try:
        with tar:
            return _unpack_members(archive, tar, into)
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise _damaged(archive, f"it ends early or cannot be read ({exc})") from None
    except OSError as exc:
        raise BackupError(f"cannot unpack the backup {archive}: {exc.strerror or exc}") from None


def _unpack_members(archive: Path, tar: tarfile.TarFile, into: Path) -> _Unpacked:
    members = iter(tar)
    manifest_bytes = _small_member(archive, tar, next(members, None), MANIFEST)
    manifest_sum = _small_member(archive, tar, next(members, None), MANIFEST_SUM)
    digest = hashlib.sha256(manifest_bytes).hexdigest()
    if manifest_sum.decode(errors="replace").split() != [digest, MANIFEST]:
        raise _damaged(archive, f"{MANIFEST} does not match its SHA-256 in {MANIFEST_SUM}")
    manifest = Manifest.parse(manifest_bytes, archive)
    seen: set[str] = set()
    for info in members:
        expected = manifest.members.get(info.name)
        if expected is None or info.name in seen or not info.isreg():
            raise _damaged(archive, f"it holds {info.name!r}, which its manifest does not list")
        if info.size != expected.size:
            raise _damaged(
                archive,
                f"{info.name} has {info.size} bytes, its manifest says {expected.size}",
            )
        source = tar.extractfile(info)
        assert source is not None  # a regular file
        target = into / info.name
        if _copy_hashed(source, target) != expected.sha256:
            raise _damaged(archive, f"{info.name} does not match its SHA-256 in the manifest")
        seen.add(info.name)
    missing = sorted(set(manifest.members) - seen)
    if missing:
        raise _damaged(archive, f"it is incomplete: {', '.join(missing)} missing")
    key = (into / KEY_MEMBER).read_bytes()
    _check_key_text(key, f"the server key in {archive}")
    return _Unpacked(manifest, into / manifest.database.member, key)


def _small_member(
    archive: Path, tar: tarfile.TarFile, info: tarfile.TarInfo | None, name: str
) -> bytes:
    if info is None or info.name != name or not info.isreg():
        raise ArchiveError(f"{archive} is not a Videobooth backup (it does not start with {name})")
    if info.size > MAX_MANIFEST_BYTES:
        raise _damaged(archive, f"{name} is {info.size} bytes long")
    source = tar.extractfile(info)
    assert source is not None
    return source.read()


def _copy_hashed(source: IO[bytes], target: Path) -> str:
    digest = hashlib.sha256()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# The server key


def _check_key_text(data: bytes, what: str) -> None:
    try:
        key = bytes.fromhex(data.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise BackupError(f"{what} is damaged (expected {KEY_BYTES * 2} hex digits)")


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
    _check_key_text(data, f"the server key {path}")
    return data.decode("ascii").strip().encode() + b"\n"


# ---------------------------------------------------------------------------------------------
# Schema revisions


def _schema_head_and_known() -> tuple[str, set[str]]:
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    assert head is not None
    return head, {revision.revision for revision in script.walk_revisions()}


def _upgrade_from(manifest: Manifest, archive: Path) -> str | None:
    """The revision a restored database must be migrated from, or None when it is current;
    :class:`NewerBackupError` for a schema this server does not know."""
    head, known = _schema_head_and_known()
    revision = manifest.schema_revision
    if revision not in known:
        raise NewerBackupError(
            f"{archive} holds a database at schema revision {revision} (made by Videobooth "
            f"{manifest.server_version}), newer than this server knows (newest {head}): "
            f"restore it with Videobooth {manifest.server_version} or newer; nothing was changed"
        )
    return None if revision == head else revision


# ---------------------------------------------------------------------------------------------
# Databases


class _Database(Protocol):
    """The database side of a backup: SQLite's file or a PostgreSQL database."""

    kind: DatabaseKind
    #: How messages name it (never with a password).
    where: str

    async def dump(self, into: Path) -> str:
        """Write a consistent copy of the database into the file ``into``; its revision."""

    async def existing(self) -> str | None:
        """What a restore would replace (for the refusal), or None when there is nothing."""

    def workdir(self) -> Path:
        """A new private folder for a restore's files (on the database's own file system
        where it is a file, so that putting it in place is a rename)."""

    async def stage(self, copy: Path, upgrade_from: str | None, progress: Progress) -> None:
        """Make the checked copy ready to be put in place (SQLite: migrate it)."""

    async def install(
        self, copy: Path, *, replace: bool, progress: Progress
    ) -> _Replacement | None:
        """Put the copy in place, all or nothing; what to undo if something later fails."""

    async def finish(self, upgrade_from: str | None, progress: Progress) -> None:
        """After everything is in place (PostgreSQL: migrate)."""


def _database(config: ServerConfig) -> _Database:
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
        return _Sqlite(Path(database))
    if backend == "postgresql":
        return _Postgres(url, parsed)
    raise BackupError(f"database_url: cannot back up a {backend} database (SQLite or PostgreSQL)")


class _Sqlite:
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
        return _sqlite_revision(into)

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
        head, _ = _schema_head_and_known()
        progress(f"database: migrating the restored copy from schema {upgrade_from} to {head}")
        await _migrate(f"sqlite+aiosqlite:///{copy}", self.where)
        await asyncio.to_thread(_sqlite_revision, copy)  # back to one file, checked again

    async def install(self, copy: Path, *, replace: bool, progress: Progress) -> _Replacement:
        # The old database's WAL and shared memory must go with it: SQLite would otherwise
        # replay the old log into the new file.
        replacement = _Replacement(self.path, copy, companions=("-wal", "-shm", "-journal"))
        replacement.apply()
        progress(f"database: in place at {self.path}")
        return replacement

    async def finish(self, upgrade_from: str | None, progress: Progress) -> None:
        return None


def _sqlite_revision(copy: Path) -> str:
    """The schema revision of a copy of a SQLite database, after checking its integrity."""
    try:
        connection = sqlite3.connect(copy)
        try:
            # A self-contained file: no WAL beside it, wherever it is restored.
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


def _dump_revision(copy: Path) -> str:
    """The schema revision in a plain dump of a PostgreSQL database (its alembic_version)."""
    try:
        with copy.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if line.rstrip("\n") == _REVISION_COPY:
                    value = next(lines, "\\.").rstrip("\n")
                    if value != "\\.":
                        return value
                    break
    except OSError as exc:
        raise BackupError(f"cannot read the database dump: {exc.strerror or exc}") from None
    raise BackupError(
        "the dump has no schema revision (table alembic_version): run videobooth-server "
        "migrate on the database first"
    )


def _copy_revision(kind: DatabaseKind, copy: Path) -> str:
    return _sqlite_revision(copy) if kind is DatabaseKind.SQLITE else _dump_revision(copy)


async def _migrate(url: str, where: str) -> None:
    try:
        await migrate(url)
    except StorageError as exc:
        raise BackupError(f"cannot migrate the restored database {where}: {exc}") from None


#: URL query parameters (asyncpg's and libpq's names) and the libpq variables they become.
_LIBPQ_PARAMETERS = {
    "host": "PGHOST",
    "port": "PGPORT",
    "ssl": "PGSSLMODE",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
}


def libpq_environment(url: str, private: Path) -> dict[str, str]:
    """The environment that points ``pg_dump`` and ``psql`` at the database of ``url``.

    The password goes into a password file in the folder ``private`` (mode 0600), named by
    ``PGPASSFILE``: never onto a command line (anyone may list those) or into the environment.
    Inherited ``PG*`` variables are dropped, so the URL alone says where to connect.
    """
    parsed = make_url(url)
    env = {name: value for name, value in os.environ.items() if not name.startswith("PG")}
    env["PGAPPNAME"] = "videobooth-backup"
    env["PGCONNECT_TIMEOUT"] = "15"
    if parsed.host:
        env["PGHOST"] = parsed.host
    if parsed.port:
        env["PGPORT"] = str(parsed.port)
    if parsed.username:
        env["PGUSER"] = parsed.username
    if parsed.database:
        env["PGDATABASE"] = parsed.database
    for name, value in parsed.query.items():
        variable = _LIBPQ_PARAMETERS.get(name)
        if variable is None:
            log.debug("database_url parameter %s is not passed to the PostgreSQL tools", name)
            continue
        value = value if isinstance(value, str) else value[0]
        env[variable] = {"true": "require", "false": "disable"}.get(value, value)
    passfile = private / "pgpass"
    password = parsed.password or ""
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        if password:
            out.write(f"*:*:*:*:{escaped}\n")
    env["PGPASSFILE"] = str(passfile)
    return env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} is not installed: install the Debian package postgresql-client (the "
            "PostgreSQL server's major version or newer)"
        )
    return found


async def _run_tool(command: list[str], env: Mapping[str, str]) -> str:
    """Run a PostgreSQL tool; the first error line of its output if it fails, else ''."""
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
    )
    _, stderr = await process.communicate()
    if process.returncode == 0:
        return ""
    lines = stderr.decode(errors="replace").splitlines()
    errors = [line for line in lines if "error" in line.lower() or "fatal" in line.lower()]
    return (errors or lines or [f"exit status {process.returncode}"])[0].strip()


_REVISION_COPY = "COPY public.alembic_version (version_num) FROM stdin;"

#: Relations and types a restore replaces (those in schema public, where the migrations put
#: everything); checked again inside the restoring transaction.
_RELATIONS = (
    "SELECT c.relname AS name, c.relkind AS kind FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')"
)
_REFUSE_NON_EMPTY = f"""
DO $videobooth$
BEGIN
  IF EXISTS ({_RELATIONS}) THEN
    RAISE EXCEPTION 'the database is not empty any more; nothing was restored';
  END IF;
END
$videobooth$;
"""
_CLEAR = f"""
DO $videobooth$
DECLARE
  item record;
BEGIN
  FOR item IN {_RELATIONS} LOOP
    EXECUTE format(
      CASE item.kind
        WHEN 'v' THEN 'DROP VIEW IF EXISTS public.%I CASCADE'
        WHEN 'm' THEN 'DROP MATERIALIZED VIEW IF EXISTS public.%I CASCADE'
        WHEN 'S' THEN 'DROP SEQUENCE IF EXISTS public.%I CASCADE'
        WHEN 'f' THEN 'DROP FOREIGN TABLE IF EXISTS public.%I CASCADE'
        ELSE 'DROP TABLE IF EXISTS public.%I CASCADE'
      END, item.name);
  END LOOP;
  FOR item IN SELECT t.typname AS name FROM pg_catalog.pg_type t
      JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
      WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd') LOOP
    EXECUTE format('DROP TYPE IF EXISTS public.%I CASCADE', item.name);
  END LOOP;
END
$videobooth$;
"""  # noqa: S608 (constant text, no input in it)


class _Postgres:
    kind = DatabaseKind.POSTGRESQL

    def __init__(self, url: str, parsed: URL) -> None:
        self.url = url
        self.where = parsed.render_as_string(hide_password=True)

    async def dump(self, into: Path) -> str:
        pg_dump = _tool("pg_dump")
        with _private_folder() as private:
            failure = await _run_tool(
                [
                    pg_dump,
                    "--format=plain",
                    "--no-owner",
                    "--no-privileges",
                    "--no-tablespaces",
                    "--no-publications",
                    "--no-subscriptions",
                    "--no-security-labels",
                    f"--file={into}",
                ],
                libpq_environment(self.url, private),
            )
        if failure:
            raise BackupError(f"pg_dump could not back up {self.where}: {failure}")
        return _dump_revision(into)

    async def existing(self) -> str | None:
        engine = create_engine(self.url)
        try:
            async with engine.connect() as connection:
                query = text(f"SELECT count(*) FROM ({_RELATIONS}) AS r")  # noqa: S608
                count = (await connection.execute(query)).scalar_one()
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise BackupError(f"cannot reach the database {self.where}: {reason}") from None
        finally:
            await engine.dispose()
        if not count:
            return None
        return f"the database {self.where} is not empty ({count} tables, views or sequences)"

    def workdir(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="videobooth-restore-"))

    async def stage(self, copy: Path, upgrade_from: str | None, progress: Progress) -> None:
        return None

    async def install(self, copy: Path, *, replace: bool, progress: Progress) -> None:
        psql = _tool("psql")
        guard = copy.with_name("before.sql")
        guard.write_text(_CLEAR if replace else _REFUSE_NON_EMPTY, encoding="utf-8")
        progress(f"database: loading into {self.where} (psql, one transaction)")
        with _private_folder() as private:
            failure = await _run_tool(
                [
                    psql,
                    "--no-psqlrc",
                    "--quiet",
                    "--single-transaction",
                    "--set=ON_ERROR_STOP=1",
                    f"--file={guard}",
                    f"--file={copy}",
                ],
                libpq_environment(self.url, private),
            )
        if failure:
            raise BackupError(
                f"psql could not restore into {self.where}, nothing was changed: {failure}"
            )
        progress(f"database: restored into {self.where}")

    async def finish(self, upgrade_from: str | None, progress: Progress) -> None:
        if upgrade_from is None:
            return
        head, _ = _schema_head_and_known()
        progress(f"database: migrating from schema {upgrade_from} to {head}")
        try:
            await migrate(self.url)
        except StorageError as exc:
            raise BackupError(
                f"the backup is restored at schema {upgrade_from}, but migrating it failed: "
                f"{exc}; run videobooth-server migrate once that is fixed"
            ) from None


@contextlib.contextmanager
def _private_folder() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="videobooth-pg-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Putting files in place


class _Replacement:
    """A new file put in place of ``target``; what was there is kept aside until
    :meth:`commit` deletes it, or :meth:`undo` puts it back."""

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
        _sync_folder(self._target.parent)

    def undo(self) -> None:
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


def _stage_bytes(folder: Path, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, prefix=".videobooth-restore-", suffix=".part")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    return Path(name)


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


# ---------------------------------------------------------------------------------------------
# The commands


def _size(count: int) -> str:
    value = float(count)
    for unit in ("bytes", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{count} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _archive_path(destination: Path, created_at: datetime) -> Path:
    if str(destination) == "-":
        raise BackupError(
            "a backup is never written to standard output: name a file or folder with --output"
        )
    if destination.is_dir():
        return destination / f"videobooth-backup-{created_at:%Y%m%dT%H%M%SZ}.tar"
    if str(destination).endswith(os.sep):
        raise BackupError(f"the folder {destination} does not exist")
    if destination.exists() and not destination.is_file():
        raise BackupError(f"{destination} is not a regular file: name a file or folder")
    if not destination.parent.is_dir():
        raise BackupError(f"the folder {destination.parent} does not exist")
    return destination


async def create_backup(
    config: ServerConfig, destination: Path, *, replace: bool = False, progress: Progress
) -> Path:
    """Back up the server of ``config`` into one archive at ``destination`` (a file, or a
    folder for ``videobooth-backup-<time>.tar``); the archive's path.

    Safe while the server runs. Raises :class:`BackupError` with the reason.
    """
    database = _database(config)
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


async def check_backup(archive: Path, *, progress: Progress) -> Manifest:
    """Read and check the whole archive without restoring it; its manifest."""
    work = Path(tempfile.mkdtemp(prefix="videobooth-check-"))
    try:
        unpacked = await asyncio.to_thread(_unpack, archive, work)
        manifest = unpacked.manifest
        upgrade_from = _upgrade_from(manifest, archive)
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
        raise _damaged(
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


async def restore_backup(
    config: ServerConfig, archive: Path, *, replace: bool = False, progress: Progress
) -> Manifest:
    """Restore ``archive`` into the installation of ``config``; the archive's manifest.

    The archive is checked in full before anything changes. Without ``replace`` an existing
    database (a non-empty one on PostgreSQL) or server key is refused. On failure everything
    is as it was. Stop the server first.
    """
    database = _database(config)
    key_path = config.effective_secret_key_file
    _refuse_running_server(config)
    await _refuse_existing(database, key_path, replace)
    work = database.workdir()
    try:
        progress(f"checking {archive}")
        unpacked = await asyncio.to_thread(_unpack, archive, work)
        manifest = unpacked.manifest
        progress(_describe(archive, manifest))
        if manifest.database is not database.kind:
            raise BackupError(
                f"{archive} holds a {manifest.database.value} database, but this "
                f"configuration's database is {database.kind.value} ({database.where}): "
                "restore it into an installation with the same kind of database"
            )
        upgrade_from = _upgrade_from(manifest, archive)
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


async def _refuse_existing(database: _Database, key_path: Path, replace: bool) -> None:
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
    database: _Database, unpacked: _Unpacked, key_path: Path, *, replace: bool, progress: Progress
) -> None:
    """The key, then the database; if the database fails, the old key goes back."""
    placed: list[_Replacement] = []
    try:
        key = _Replacement(key_path, _stage_bytes(key_path.parent, unpacked.key))
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
