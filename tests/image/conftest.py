"""The image tests' marker, and the booth image they share: built once per test run (its
base root is cached in ``~/.cache/videobooth-image``, keyed by its inputs)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.components import in_ci, require, unavailable

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "images" / "build"
CACHE = Path(os.environ.get("VIDEOBOOTH_IMAGE_CACHE", Path.home() / ".cache/videobooth-image"))
BUILD_SECONDS = 20 * 60
#: The release the shared image is built as.
RELEASE = "1.0.0"
TOOLS = {
    "mmdebstrap": "builds the image's Debian root",
    "qemu-system-aarch64": "boots the image (qemu-system-arm)",
    "mkfs.vfat": "makes the boot partition (dosfstools)",
    "mcopy": "fills the boot partition (mtools)",
    "mke2fs": "makes the root and data partitions (e2fsprogs)",
    "sfdisk": "writes the partition table (fdisk)",
    "bmaptool": "writes the block map (bmap-tools)",
    "xz": "compresses the image (xz-utils)",
    "zstd": "compresses the cached base root (zstd)",
    "cpio": "packs the generic variant's initramfs (cpio)",
    "rauc": "makes the update bundle",
    "mksquashfs": "packs the update bundle (squashfs-tools)",
    "mkimage": "makes the boot script (u-boot-tools)",
    "mkenvimage": "makes the boot counter's uboot.env (u-boot-tools)",
    "debugfs": "reads the data partition after the boot (e2fsprogs)",
    "e2fsck": "replays the data partition's journal after the boot (e2fsprogs)",
    "dtc": "gives QEMU's device tree a Raspberry Pi board revision (device-tree-compiler)",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "image: builds the booth image and boots it under QEMU (minutes)"
    )


def build(out: Path, *arguments: str) -> str:
    """Run images/build for the generic variant into ``out``; its output."""
    if not in_ci() and os.environ.get("VIDEOBOOTH_IMAGE_TEST") != "1":
        pytest.skip("the image build takes minutes: set VIDEOBOOTH_IMAGE_TEST=1 (CI runs it)")
    for tool, why in TOOLS.items():
        require(tool, why)
    if os.geteuid() != 0:
        unavailable("building the image needs root (the image's files belong to root)")
    if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        unavailable(
            "arm64 programs cannot run here: install qemu-user-static and binfmt-support, "
            "mount binfmt_misc and 'update-binfmts --enable qemu-aarch64'"
        )
    out.mkdir(parents=True, exist_ok=True)
    log = out / "build.log"
    started = time.monotonic()
    command = [str(BUILD), "--variant", "generic", "--out", str(out), "--cache", str(CACHE)]
    with log.open("w") as sink:
        done = subprocess.run(
            [*command, *arguments],
            stdout=sink,
            stderr=subprocess.STDOUT,
            timeout=BUILD_SECONDS,
            check=False,
        )
    text = log.read_text(errors="replace")
    print(f"images/build {' '.join(arguments)}: {time.monotonic() - started:.0f} s\n{text[-2000:]}")
    assert done.returncode == 0, f"images/build failed:\n{text[-3000:]}"
    return text


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generic variant's output folder, release 1.0.0 (booth.img kept uncompressed for
    the boots; zstd: minutes faster than the technicians' xz)."""
    out = tmp_path_factory.mktemp("image")
    text = build(out, "--release", RELEASE, "--compression", "zst", "--no-compress")
    assert "GENERIC variant" in text
    assert "DEVELOPMENT key" in text
    return out
