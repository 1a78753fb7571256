"""The boot partition a card's files go to: a mounted card (a folder) or an image file.

Image files are read and written with mtools, without root and without mounting anything: the
first FAT partition is found in the image's MBR partition table, or the file is a bare FAT file
system. A block device (``/dev/sdX``) is treated like an image file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from provisioning.errors import BootPartitionError, MtoolsMissingError

log = logging.getLogger(__name__)

SECTOR = 512
#: MBR partition types of FAT file systems: FAT16, FAT32 (CHS), FAT32 (LBA), FAT16 (LBA).
FAT_TYPES = frozenset({0x06, 0x0B, 0x0C, 0x0E})
GPT_PROTECTIVE = 0xEE
MTOOLS = ("mcopy", "mdir", "mdel", "mtype")
#: No mtools command on a boot partition takes anywhere near this long.
MTOOLS_TIMEOUT_SECONDS = 120


class BootPartition(Protocol):
    """A boot partition's top folder, where booth.toml and its CA certificate live."""

    @property
    def description(self) -> str:
        """What the technician named, for messages: ``booth.img (FAT partition 1 at 1 MiB)``."""
        ...

    def exists(self, name: str) -> bool: ...

    def read(self, name: str) -> bytes | None:
        """The file's bytes; None if there is no such file."""
        ...

    def write(self, name: str, data: bytes) -> None:
        """Create or replace the file."""
        ...

    def delete(self, name: str) -> None: ...


def _check_name(name: str) -> None:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"not a plain file name: {name!r}")


class MountedPartition:
    """A mounted boot partition: plain file operations, each write renamed into place."""

    def __init__(self, path: Path) -> None:
        if not path.is_dir():
            raise BootPartitionError(f"{path} is not a folder")
        self.path = path

    @property
    def description(self) -> str:
        return str(self.path)

    def _fail(self, action: str, name: str, exc: OSError) -> BootPartitionError:
        reason = exc.strerror or str(exc)
        hint = ""
        if isinstance(exc, PermissionError) or exc.errno == 30:  # EROFS
            hint = " (is the card write-protected or mounted read-only?)"
        return BootPartitionError(f"cannot {action} {self.path / name}: {reason}{hint}")

    def exists(self, name: str) -> bool:
        _check_name(name)
        return (self.path / name).is_file()

    def read(self, name: str) -> bytes | None:
        _check_name(name)
        try:
            return (self.path / name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._fail("read", name, exc) from exc

    def write(self, name: str, data: bytes) -> None:
        _check_name(name)
        # Written beside and renamed into place: a card pulled out half-way keeps the old file.
        try:
            fd, tmp = tempfile.mkstemp(dir=self.path, prefix=f".{name}.", suffix=".tmp")
        except OSError as exc:
            raise self._fail("write to", name, exc) from exc
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path / name)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise self._fail("write", name, exc) from exc
        with contextlib.suppress(OSError):  # not every file system syncs a folder
            folder = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        log.info("wrote %s (%d bytes)", self.path / name, len(data))

    def delete(self, name: str) -> None:
        _check_name(name)
        try:
            (self.path / name).unlink(missing_ok=True)
        except OSError as exc:
            raise self._fail("delete", name, exc) from exc


@dataclass(frozen=True)
class FatLocation:
    """Where the FAT file system starts in an image; ``partition`` 0: a bare file system."""

    offset: int
    partition: int

    def describe(self) -> str:
        if self.partition == 0:
            return "FAT file system without a partition table"
        if self.offset % (1024 * 1024) == 0:
            where = f"{self.offset // (1024 * 1024)} MiB"
        else:
            where = f"byte {self.offset}"
        return f"FAT partition {self.partition} at {where}"


def _is_fat_boot_sector(sector: bytes) -> bool:
    """A FAT boot sector: a jump, a sane BIOS parameter block, the 0x55AA signature."""
    if len(sector) < SECTOR or sector[510:512] != b"\x55\xaa":
        return False
    if not (sector[0] == 0xEB and sector[2] == 0x90) and sector[0] != 0xE9:
        return False
    bytes_per_sector = int.from_bytes(sector[11:13], "little")
    per_cluster = sector[13]
    return (
        bytes_per_sector in (512, 1024, 2048, 4096)
        and per_cluster != 0
        and per_cluster & (per_cluster - 1) == 0
        and int.from_bytes(sector[14:16], "little") != 0  # reserved sectors
        and sector[16] != 0  # number of FATs
    )


def _fat_size(sector: bytes) -> int:
    """The size in bytes a FAT boot sector says its file system has."""
    total = int.from_bytes(sector[19:21], "little") or int.from_bytes(sector[32:36], "little")
    return total * int.from_bytes(sector[11:13], "little")


def locate_fat(image: Path) -> FatLocation:
    """The first FAT partition of ``image`` (MBR partition types 0x06, 0x0b, 0x0c, 0x0e), or
    the whole file if it is a bare FAT file system. Refuses an image cut short."""
    try:
        with image.open("rb") as fh:
            first = fh.read(SECTOR)
            size = fh.seek(0, os.SEEK_END)
            if _is_fat_boot_sector(first):
                end = _fat_size(first)
                if end > size:
                    raise BootPartitionError(
                        f"{image} is cut short: its FAT file system ends at byte {end} but the "
                        f"file has {size} bytes (an incomplete download or copy?)"
                    )
                return FatLocation(offset=0, partition=0)
            if len(first) < SECTOR:
                raise BootPartitionError(f"{image} is too small to be a card image ({size} bytes)")
            if first[510:512] != b"\x55\xaa":
                raise BootPartitionError(
                    f"{image} is not a card image: it has no partition table and no FAT file system"
                )
            entries = []
            for index in range(4):
                entry = first[446 + 16 * index : 446 + 16 * (index + 1)]
                kind = entry[4]
                start = int.from_bytes(entry[8:12], "little")
                sectors = int.from_bytes(entry[12:16], "little")
                if kind != 0 and sectors != 0:
                    entries.append((index + 1, kind, start, sectors))
            if any(kind == GPT_PROTECTIVE for _, kind, _, _ in entries):
                raise BootPartitionError(
                    f"{image} has a GPT partition table; a Videobooth image has an MBR (DOS) "
                    "partition table: is this the right image?"
                )
            # A cut-short image would flash without complaint and fail in the booth.
            for number, _, start, sectors in entries:
                end = (start + sectors) * SECTOR
                if end > size:
                    raise BootPartitionError(
                        f"{image} is cut short: partition {number} ends at byte {end} but the "
                        f"file has {size} bytes (an incomplete download or copy?)"
                    )
            for number, kind, start, _ in entries:
                if kind in FAT_TYPES:
                    fh.seek(start * SECTOR)
                    if not _is_fat_boot_sector(fh.read(SECTOR)):
                        raise BootPartitionError(
                            f"{image}: partition {number} is marked FAT (type 0x{kind:02x}) but "
                            "holds no FAT file system"
                        )
                    return FatLocation(offset=start * SECTOR, partition=number)
    except OSError as exc:
        if isinstance(exc, BootPartitionError):
            raise
        raise BootPartitionError(f"cannot read {image}: {exc.strerror or exc}") from exc
    if not entries:
        raise BootPartitionError(f"{image} has an empty partition table")
    kinds = ", ".join(f"0x{kind:02x}" for _, kind, _, _ in entries)
    raise BootPartitionError(
        f"{image} has no FAT partition (partition types {kinds}); the boot partition is FAT"
    )


class Mtools:
    """Runs mtools on image files, with the environment the entry point hands in."""

    def __init__(self, programs: Mapping[str, str], environ: Mapping[str, str]) -> None:
        self.programs = dict(programs)
        # The image's geometry is whatever mformat or the image builder chose: do not insist
        # on a floppy's.
        self.environ = {**environ, "MTOOLS_SKIP_CHECK": "1"}

    @classmethod
    def find(cls, environ: Mapping[str, str]) -> Mtools:
        programs = {}
        for name in MTOOLS:
            found = shutil.which(name, path=environ.get("PATH", os.defpath))
            if found is None:
                raise MtoolsMissingError(
                    f"{name} is not installed: writing into an image file needs mtools; "
                    "install mtools (apt-get install mtools), or mount the card and give its "
                    "folder"
                )
            programs[name] = found
        return cls(programs, environ)

    def run(self, name: str, *args: str) -> bytes:
        command = [self.programs[name], *args]
        log.debug("running %s", " ".join(command))
        try:
            result = subprocess.run(  # noqa: S603 - an mtools program found on PATH
                command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                env=self.environ,
                timeout=MTOOLS_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise BootPartitionError(
                f"{name} did not finish in {MTOOLS_TIMEOUT_SECONDS} s"
            ) from None
        except OSError as exc:
            raise BootPartitionError(f"cannot run {name}: {exc.strerror or exc}") from exc
        if result.returncode != 0:
            lines = result.stderr.decode(errors="replace").strip().splitlines()
            reason = lines[-1] if lines else f"exit status {result.returncode}"
            raise BootPartitionError(f"{name} failed: {reason}")
        return result.stdout


class ImagePartition:
    """The FAT boot partition inside an image file (or on a block device), through mtools."""

    def __init__(self, image: Path, location: FatLocation, *, mtools: Mtools) -> None:
        self.image = image
        self.location = location
        self.mtools = mtools
        self._drive = f"{image}@@{location.offset}"

    @property
    def description(self) -> str:
        return f"{self.image} ({self.location.describe()})"

    def _run(self, name: str, *args: str) -> bytes:
        try:
            return self.mtools.run(name, "-i", self._drive, *args)
        except BootPartitionError as exc:
            raise BootPartitionError(f"{self.image}: {exc}") from exc

    def names(self) -> list[str]:
        listing = self._run("mdir", "-a", "-b", "::/").decode("utf-8", errors="replace")
        return [line.removeprefix("::/") for line in listing.splitlines() if line.strip()]

    def exists(self, name: str) -> bool:
        _check_name(name)
        # FAT compares names without regard to case.
        return name.lower() in (found.lower() for found in self.names())

    def read(self, name: str) -> bytes | None:
        if not self.exists(name):
            return None
        return self._run("mtype", f"::/{name}")

    def write(self, name: str, data: bytes) -> None:
        _check_name(name)
        with tempfile.TemporaryDirectory(prefix="videobooth-provision.") as folder:
            local = Path(folder) / name
            local.write_bytes(data)
            self._run("mcopy", "-o", str(local), f"::/{name}")
        log.info("wrote %s into %s (%d bytes)", name, self.description, len(data))

    def delete(self, name: str) -> None:
        if self.exists(name):
            self._run("mdel", f"::/{name}")


def open_partition(target: Path, *, environ: Mapping[str, str]) -> BootPartition:
    """A mounted boot partition (a folder), or the FAT partition of an image file or device."""
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        raise BootPartitionError(
            f"{target} does not exist (give the mounted boot partition's folder or an image file)"
        ) from None
    except OSError as exc:
        raise BootPartitionError(f"cannot read {target}: {exc.strerror or exc}") from exc
    if stat.S_ISDIR(mode):
        return MountedPartition(target)
    if stat.S_ISREG(mode) or stat.S_ISBLK(mode):
        # The image is checked before mtools is looked for: a wrong file is the likelier slip.
        location = locate_fat(target)
        return ImagePartition(target, location, mtools=Mtools.find(environ))
    raise BootPartitionError(f"{target} is neither a folder nor an image file")
