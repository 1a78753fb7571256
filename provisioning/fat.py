"""Where the boot partition is: a mounted card (a folder) or an image file's FAT partition.

Image files are read and written with mtools, without root and without mounting anything: the
first FAT partition is found in the image's MBR partition table (or the file is a bare FAT
file system).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import Protocol

FAT_TYPES = {0x01, 0x04, 0x06, 0x0B, 0x0C, 0x0E}
SECTOR = 512


class TargetError(RuntimeError):
    """The card or image cannot be used; the message says why."""


class BootPartition(Protocol):
    def read(self, name: str) -> bytes | None: ...

    def write(self, name: str, data: bytes) -> None: ...

    def describe(self) -> str: ...


class Folder:
    """A mounted boot partition."""

    def __init__(self, path: Path) -> None:
        if not path.is_dir():
            raise TargetError(f"{path} is not a folder")
        self.path = path

    def read(self, name: str) -> bytes | None:
        try:
            return (self.path / name).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes) -> None:
        # Written beside and renamed: a card pulled out half-way keeps the old file.
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=f".{name}.")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        Path(tmp).replace(self.path / name)

    def describe(self) -> str:
        return f"the mounted partition {self.path}"


def fat_offset(image: Path) -> int:
    """Byte offset of the first FAT partition in ``image`` (0 for a bare FAT file system)."""
    try:
        with image.open("rb") as fh:
            first = fh.read(SECTOR)
    except OSError as exc:
        raise TargetError(f"cannot read {image}: {exc.strerror}") from None
    if len(first) < SECTOR or first[510:512] != b"\x55\xaa":
        raise TargetError(f"{image} is neither a card image nor a FAT file system")
    if first[0x36:0x3B] in (b"FAT12", b"FAT16") or first[0x52:0x57] == b"FAT32":
        return 0  # a bare FAT boot sector
    size = image.stat().st_size
    for index in range(4):
        entry = first[0x1BE + 16 * index : 0x1BE + 16 * (index + 1)]
        kind = entry[4]
        start, sectors = struct.unpack("<II", entry[8:16])
        if kind in FAT_TYPES and sectors:
            if (start + sectors) * SECTOR > size:
                raise TargetError(f"{image} is cut short: its boot partition ends past the file")
            return int(start) * SECTOR
    raise TargetError(f"{image} has no FAT partition in its partition table")


class ImageFile:
    """The boot partition inside an image file, through mtools."""

    def __init__(self, path: Path) -> None:
        if shutil.which("mcopy") is None:
            raise TargetError("mtools is not installed (apt-get install mtools)")
        self.path = path
        self.offset = fat_offset(path)
        self._drive = f"{path}@@{self.offset}"

    def _run(self, *args: str, data: bytes | None = None) -> bytes:
        env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
        result = subprocess.run(  # noqa: S603 - fixed tool, arguments from this module
            [*args], input=data, capture_output=True, env=env, check=False
        )
        if result.returncode != 0:
            reason = result.stderr.decode(errors="replace").strip().splitlines()
            raise TargetError(f"{args[0]} failed on {self.path}: {reason[-1] if reason else '?'}")
        return result.stdout

    def read(self, name: str) -> bytes | None:
        listing = self._run("mdir", "-b", "-i", self._drive, "::/")
        if f"::/{name}".lower() not in listing.decode(errors="replace").lower().split():
            return None
        return self._run("mtype", "-i", self._drive, f"::/{name}")

    def write(self, name: str, data: bytes) -> None:
        with tempfile.TemporaryDirectory() as folder:
            local = Path(folder) / name
            local.write_bytes(data)
            self._run("mcopy", "-o", "-i", self._drive, str(local), f"::/{name}")

    def describe(self) -> str:
        return f"the image {self.path} (boot partition at byte {self.offset})"


def open_target(path: Path) -> BootPartition:
    if path.is_dir():
        return Folder(path)
    if path.is_file():
        return ImageFile(path)
    raise TargetError(f"{path} does not exist (a mounted boot partition or an image file)")
