"""The archive: one tar file with a manifest, written atomically and read with every member
checked against it.

Members, in this order: ``manifest.json`` (format and format version, the server's version,
the database's kind and Alembic revision, when, and the SHA-256 and size of every other
member); ``manifest.json.sha256`` (the manifest's own SHA-256, in ``sha256sum`` form); the
database (``database.sqlite3`` or ``database.sql``); ``server.key``. The manifest comes first,
so a reader knows the format before it reads anything else; a restore reads the archive as a
stream, so a compressed copy (``gzip``, ``xz``) reads as well.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import lzma
import os
import tarfile
import tempfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import IO

from server.keyfile import KEY_BYTES

from .errors import ArchiveError, BackupError, NewerBackupError, damaged

__all__ = [
    "FORMAT_VERSION",
    "KEY_MEMBER",
    "DatabaseKind",
    "Manifest",
    "Member",
    "Unpacked",
    "check_key_text",
    "read_archive",
    "sync_folder",
    "write_archive",
]

FORMAT = "videobooth-backup"
#: The archive layout this server writes and the newest it reads.
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MANIFEST_SUM = "manifest.json.sha256"
KEY_MEMBER = "server.key"
MAX_MANIFEST_BYTES = 64 * 1024
CHUNK = 1024 * 1024


class DatabaseKind(StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"

    @property
    def member(self) -> str:
        """The archive member holding a database of this kind."""
        return "database.sqlite3" if self is DatabaseKind.SQLITE else "database.sql"


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
        """The manifest in ``data``; :class:`ArchiveError` if it is not one this server reads,
        :class:`NewerBackupError` if a newer server wrote it."""

        def bad(why: str) -> ArchiveError:
            return ArchiveError(f"{archive} is not a Videobooth backup this server can read: {why}")

        try:
            document = json.loads(data)
        except ValueError:
            raise damaged(archive, f"{MANIFEST} is not valid JSON") from None
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
        # Only these names are ever unpacked: no path in an archive reaches outside its folder.
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


def check_key_text(data: bytes) -> bool:
    """Whether ``data`` is a server key file's content (hex digits of the key)."""
    try:
        return len(bytes.fromhex(data.decode("ascii").strip())) == KEY_BYTES
    except (UnicodeDecodeError, ValueError):
        return False


# ---------------------------------------------------------------------------------------------
# Writing


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
                    tar.addfile(_tarinfo(name, len(data), mtime), io.BytesIO(data))
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
    sync_folder(path.parent)


def _tarinfo(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, mtime, 0o600
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the file system allows)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class Unpacked:
    """A checked archive's content, unpacked into a folder."""

    manifest: Manifest
    #: The database's copy (SQLite file or SQL text).
    database: Path
    #: The server key file's content.
    key: bytes


def read_archive(archive: Path, into: Path) -> Unpacked:
    """Read the whole archive into the folder ``into``, every member checked against the
    manifest; :class:`ArchiveError` (or :class:`NewerBackupError`) when it is not as it says."""
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
            return _read_members(archive, tar, into)
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise damaged(archive, f"it ends early or cannot be read ({exc})") from None
    except OSError as exc:
        raise BackupError(f"cannot unpack the backup {archive}: {exc.strerror or exc}") from None


def _read_members(archive: Path, tar: tarfile.TarFile, into: Path) -> Unpacked:
    members = iter(tar)
    manifest_bytes = _small_member(archive, tar, next(members, None), MANIFEST)
    manifest_sum = _small_member(archive, tar, next(members, None), MANIFEST_SUM)
    digest = hashlib.sha256(manifest_bytes).hexdigest()
    if manifest_sum.decode(errors="replace").split() != [digest, MANIFEST]:
        raise damaged(archive, f"{MANIFEST} does not match its SHA-256 in {MANIFEST_SUM}")
    manifest = Manifest.parse(manifest_bytes, archive)
    seen: set[str] = set()
    for info in members:
        expected = manifest.members.get(info.name)
        if expected is None or info.name in seen or not info.isreg():
            raise damaged(archive, f"it holds {info.name!r} where its manifest says otherwise")
        if info.size != expected.size:
            raise damaged(
                archive, f"{info.name} has {info.size} bytes, its manifest says {expected.size}"
            )
        source = tar.extractfile(info)
        assert source is not None  # a regular file
        if _copy_hashed(source, into / info.name) != expected.sha256:
            raise damaged(archive, f"{info.name} does not match its SHA-256 in the manifest")
        seen.add(info.name)
    missing = sorted(set(manifest.members) - seen)
    if missing:
        raise damaged(archive, f"it is incomplete: {', '.join(missing)} missing")
    key = (into / KEY_MEMBER).read_bytes()
    if not check_key_text(key):
        raise damaged(archive, f"its {KEY_MEMBER} is not a server key")
    return Unpacked(manifest, into / manifest.database.member, key)


def _small_member(
    archive: Path, tar: tarfile.TarFile, info: tarfile.TarInfo | None, name: str
) -> bytes:
    if info is None or info.name != name or not info.isreg():
        raise ArchiveError(f"{archive} is not a Videobooth backup (it does not start with {name})")
    if info.size > MAX_MANIFEST_BYTES:
        raise damaged(archive, f"{name} is {info.size} bytes long")
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
