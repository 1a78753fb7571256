"""The image tests' marker, and the booth image they share: built once per test run (its
base root is cached in ``~/.cache/videobooth-image``, keyed by its inputs).

The builds the tests need (:data:`PREBUILDS`) can be made ahead, while other tests run:
``./scripts/test`` starts ``python -m tests.image.prebuild`` at the lowest priority and names
its folder in ``VIDEOBOOTH_IMAGE_PREBUILT``; :func:`build` then waits for the build it needs
there and takes its outputs, or builds itself when that one failed or was never started. The
image tests run after every other test (:func:`pytest_collection_modifyitems`), so the builds
have the whole run to finish."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.components import in_ci, require, unavailable

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "images" / "build"
CACHE = Path(os.environ.get("VIDEOBOOTH_IMAGE_CACHE", Path.home() / ".cache/videobooth-image"))
BUILD_SECONDS = 20 * 60
#: The release the shared image is built as, and those the update test rolls out.
RELEASE, V2, V3 = "1.0.0", "2.0.0", "3.0.0"
#: Every build the image tests make, by name, with its arguments, in the order they are made
#: ahead: the shared image (kept uncompressed for the boots; zstd is minutes faster than the
#: technicians' xz) and the update test's two bundles first (that test runs from the start,
#: beside the others, and waits for them), then the same image again (the builds must give the
#: same bytes; wanted only at the end, by test_image.py).
PREBUILDS: dict[str, tuple[str, ...]] = {
    "image": ("--release", RELEASE, "--compression", "zst", "--no-compress"),
    "v2": ("--release", V2, "--bundle-only"),
    "v3": (
        "--release", V3, "--bundle-only",
        "--customize", str(Path(__file__).with_name("broken-release.sh")),
    ),
    "again": ("--release", RELEASE, "--compression", "zst"),
}  # fmt: skip
PREBUILT = os.environ.get("VIDEOBOOTH_IMAGE_PREBUILT")
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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The image tests last: the rest of the run is quick to report, and builds made ahead
    (tests/image/prebuild.py) have it all to finish."""
    image = [item for item in items if item.get_closest_marker("image") is not None]
    if image:
        items[:] = [item for item in items if item.get_closest_marker("image") is None] + image


def command(out: Path, arguments: tuple[str, ...]) -> list[str]:
    """images/build for the generic variant into ``out``, with the shared cache."""
    return [
        str(BUILD),
        "--variant",
        "generic",
        "--out",
        str(out),
        "--cache",
        str(CACHE),
        *arguments,
    ]


def _prebuilt(out: Path, arguments: tuple[str, ...]) -> str | None:
    """The outputs of the build made ahead with these ``arguments``, moved into ``out``, and
    its log; None when there is none to take (never started, or it failed: the log says why,
    and the caller builds itself)."""
    if not PREBUILT:
        return None
    name = next((n for n, args in PREBUILDS.items() if args == arguments), None)
    if name is None:
        return None
    folder = Path(PREBUILT) / name
    done = folder / "done.json"
    waited = time.monotonic()
    while not done.exists():  # still building (the prebuilder builds them one after another)
        if not _prebuilder_alive():
            print(f"prebuilt {name}: the builder is gone without it; building here")
            return None
        if time.monotonic() - waited > BUILD_SECONDS:
            print(f"prebuilt {name}: not done within {BUILD_SECONDS} s; building here")
            _stop_prebuilder()
            return None
        time.sleep(2)
    result = json.loads(done.read_text())
    log = (folder / "build.log").read_text(errors="replace")
    if result["returncode"] != 0 or tuple(result["arguments"]) != arguments:
        print(f"prebuilt {name} failed ({result['returncode']}); building here:\n{log[-2000:]}")
        _stop_prebuilder()  # no second build beside this one, on the same cache
        return None
    out.mkdir(parents=True, exist_ok=True)
    for item in (folder / "out").iterdir():
        _take(item, out / item.name)
    waited_s = time.monotonic() - waited
    print(f"images/build {' '.join(arguments)}: made ahead in {result['seconds']:.0f} s "
          f"(waited {waited_s:.0f} s for it)\n{log[-2000:]}")  # fmt: skip
    return log


def _take(source: Path, target: Path) -> None:
    """A build's output, linked (not moved): the update test, in a pytest of its own beside
    the others (scripts/test), takes the same image as the image tests. The outputs are only
    read (a boot copies the card first)."""
    if source.is_dir():
        shutil.copytree(source, target, copy_function=os.link)
    else:
        os.link(source, target)


@contextlib.contextmanager
def build_lock() -> Iterator[None]:
    """One images/build at a time on the shared cache: the builder made ahead, and a test
    building itself (in either pytest when the update test runs beside the others)."""
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    with CACHE.with_name(CACHE.name + ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _stop_prebuilder() -> None:
    """End the prebuilder and its build (its own process group: scripts/test starts it with
    setsid)."""
    assert PREBUILT
    with contextlib.suppress(OSError, ValueError):
        os.killpg(int((Path(PREBUILT) / "pid").read_text()), signal.SIGTERM)


def _prebuilder_alive() -> bool:
    assert PREBUILT
    try:
        pid = int((Path(PREBUILT) / "pid").read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


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
    made_ahead = _prebuilt(out, arguments)
    if made_ahead is not None:
        return made_ahead
    out.mkdir(parents=True, exist_ok=True)
    log = out / "build.log"
    with build_lock(), log.open("w") as sink:
        started = time.monotonic()
        done = subprocess.run(
            command(out, arguments),
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
    text = build(out, *PREBUILDS["image"])
    assert "GENERIC variant" in text
    assert "DEVELOPMENT key" in text
    return out
