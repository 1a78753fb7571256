"""The boot script's choice of root slot, on Debian's real U-Boot for QEMU's arm64 machine.

A small disk with the image's partitions (the boot FAT with ``boot.scr`` made from
``images/boot/boot.cmd``, empty root slots A and B) is started again and again; what RAUC
writes from Linux (``fw_setenv`` through an ``fw_env.config``, as its U-Boot backend does) is
written between the starts. Shown: a fresh disk starts A; after an installation into B, B
starts; a B that never marks itself good runs out of starts and A starts again by itself; a
slot marked good keeps starting; with no starts left anywhere both get three more. The slots
hold no kernel here, so each start ends in a reset once the slot is chosen (``-no-reboot``
ends QEMU): the kernel's part is the image's update test.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.components import require

REPO = Path(__file__).resolve().parents[2]
BOOT_CMD = REPO / "images" / "boot" / "boot.cmd"
UBOOT = "/usr/lib/u-boot/qemu_arm64/u-boot.bin"
SLOT = re.compile(r"videobooth: slot ([AB]) \(starts left: A (\d+), B (\d+)\)")

pytestmark = pytest.mark.timeout(300)


def _run(*args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        args, input=stdin, capture_output=True, text=True, check=True, timeout=60
    ).stdout


@dataclass
class Disk:
    """The disk, the boot partition's image beside it, and RAUC's view of the variables."""

    folder: Path
    image: Path
    boot: Path
    env_config: Path

    def start(self) -> tuple[str | None, str]:
        """Start the machine once; the slot chosen (None: none) and the console."""
        qemu = require("qemu-system-aarch64", "to start the boot script on U-Boot")
        result = subprocess.run(
            [qemu, "-M", "virt", "-cpu", "cortex-a72", "-m", "256", "-nographic",
             "-no-reboot", "-bios", UBOOT,
             # No network: the default one wants an option ROM a minimal install lacks.
             "-nic", "none",
             "-drive", f"if=none,file={self.image},format=raw,id=d0",
             "-device", "virtio-blk-device,drive=d0"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        console = result.stdout + result.stderr
        match = SLOT.search(console)
        return (match[1] if match else None), console

    def _boot_partition(self, write: bool) -> None:
        offset = 2048 * 512
        if write:
            data = self.boot.read_bytes()
            with self.image.open("r+b") as disk:
                disk.seek(offset)
                disk.write(data)
        else:
            with self.image.open("rb") as disk:
                disk.seek(offset)
                self.boot.write_bytes(disk.read(self.boot.stat().st_size))

    def rauc_sets(self, **variables: str) -> None:
        """What RAUC's U-Boot backend does from Linux: fw_setenv on the boot partition's
        uboot.env."""
        fw_setenv = require("fw_setenv", "RAUC's U-Boot backend writes with it (libubootenv-tool)")
        mcopy = require("mcopy", "to reach the boot partition (mtools)")
        self._boot_partition(write=False)
        env = self.folder / "uboot.env"
        env.unlink(missing_ok=True)
        tools = {"MTOOLS_SKIP_CHECK": "1"}
        subprocess.run(
            [mcopy, "-i", str(self.boot), "::/uboot.env", str(env)], env=tools, check=True
        )
        for name, value in variables.items():  # one call a variable, as RAUC 1.8 does
            _run(fw_setenv, "-c", str(self.env_config), name, value)
        subprocess.run(
            [mcopy, "-o", "-i", str(self.boot), str(env), "::/uboot.env"], env=tools, check=True
        )
        self._boot_partition(write=True)

    def counters(self) -> dict[str, str]:
        fw_printenv = require("fw_printenv", "to read what the boot script wrote")
        mcopy = require("mcopy", "to reach the boot partition (mtools)")
        self._boot_partition(write=False)
        env = self.folder / "uboot.env"
        env.unlink(missing_ok=True)
        subprocess.run(
            [mcopy, "-i", str(self.boot), "::/uboot.env", str(env)],
            env={"MTOOLS_SKIP_CHECK": "1"}, check=True,
        )  # fmt: skip
        out = _run(fw_printenv, "-c", str(self.env_config))
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@pytest.fixture
def disk(tmp_path: Path) -> Disk:
    if not Path(UBOOT).is_file():
        require(UBOOT, "Debian's U-Boot for QEMU's arm64 machine (u-boot-qemu)")
    mkimage = require("mkimage", "to make boot.scr (u-boot-tools)")
    mkfs = require("mkfs.vfat", "the boot partition (dosfstools)")
    mke2fs = require("mke2fs", "the root slots (e2fsprogs)")
    sfdisk = require("sfdisk", "the partition table (fdisk)")
    mcopy = require("mcopy", "to fill the boot partition (mtools)")
    script = tmp_path / "boot.cmd"
    script.write_text(BOOT_CMD.read_text().replace("@CMDLINE@", "console=ttyAMA0"))
    _run(mkimage, "-A", "arm64", "-T", "script", "-C", "none", "-d", str(script),
         str(tmp_path / "boot.scr"))  # fmt: skip
    boot = tmp_path / "boot.vfat"
    _run(mkfs, "-C", str(boot), str(16 * 1024))
    subprocess.run([mcopy, "-i", str(boot), str(tmp_path / "boot.scr"), "::/"],
                   env={"MTOOLS_SKIP_CHECK": "1"}, check=True)  # fmt: skip
    # What the booth's /etc/fw_env.config says, with the boot partition's file copied out.
    config = tmp_path / "fw_env.config"
    config.write_text(f"{tmp_path / 'uboot.env'} 0x0000 0x4000\n")
    _first_env(tmp_path, boot)
    slot = tmp_path / "slot.ext4"
    empty = tmp_path / "empty"
    empty.mkdir()
    _run(mke2fs, "-q", "-t", "ext4", "-d", str(empty), str(slot), "8M")
    image = tmp_path / "disk.img"
    with image.open("wb") as out:
        out.truncate((1 + 16 + 8 + 8) * 1024 * 1024)
    table = (
        "label: dos\nunit: sectors\n"
        "start=2048, size=32768, type=c, bootable\n"
        "start=34816, size=16384, type=83\n"
        "start=51200, size=16384, type=83\n"
    )
    _run(sfdisk, "-q", str(image), stdin=table)
    with image.open("r+b") as out:
        out.seek(2048 * 512)
        out.write(boot.read_bytes())
        for start in (34816, 51200):
            out.seek(start * 512)
            out.write(slot.read_bytes())
    return Disk(folder=tmp_path, image=image, boot=boot, env_config=config)


def _first_env(folder: Path, boot: Path) -> None:
    """The variables a new card starts with, written as the image build writes them."""
    mkenvimage = require("mkenvimage", "the boot variables' file (u-boot-tools)")
    text = folder / "uboot.env.txt"
    text.write_text("BOOT_ORDER=A B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\n")
    env = folder / "uboot.env"
    _run(mkenvimage, "-s", "0x4000", "-o", str(env), str(text))
    subprocess.run(
        [require("mcopy", "mtools"), "-i", str(boot), str(env), "::/uboot.env"],
        env={"MTOOLS_SKIP_CHECK": "1"}, check=True,
    )  # fmt: skip


def test_the_boot_counter_falls_back_to_the_slot_that_works(disk: Disk) -> None:
    slot, console = disk.start()
    assert slot == "A", console  # a fresh disk
    assert disk.counters()["BOOT_A_LEFT"] == "2"
    disk.rauc_sets(BOOT_A_LEFT="3")  # the booth worked: RAUC marks A good

    # An update installed into B: RAUC makes B the next to start, with three starts.
    disk.rauc_sets(BOOT_ORDER="B A", BOOT_B_LEFT="3")
    starts = [disk.start()[0] for _ in range(4)]
    # B never marks itself good: three starts, then A again by itself.
    assert starts == ["B", "B", "B", "A"]
    assert disk.counters() == {"BOOT_ORDER": "B A", "BOOT_A_LEFT": "2", "BOOT_B_LEFT": "0"}


def test_a_slot_marked_good_keeps_starting(disk: Disk) -> None:
    disk.rauc_sets(BOOT_ORDER="B A", BOOT_B_LEFT="3", BOOT_A_LEFT="3")
    for _ in range(3):
        assert disk.start()[0] == "B"
        disk.rauc_sets(BOOT_B_LEFT="3")  # the booth on B reached READY: good
    assert disk.counters()["BOOT_B_LEFT"] == "3"


def test_with_no_starts_left_both_slots_get_more(disk: Disk) -> None:
    disk.rauc_sets(BOOT_ORDER="A B", BOOT_A_LEFT="0", BOOT_B_LEFT="0")
    slot, console = disk.start()
    assert slot is None and "no slot has starts left" in console, console
    assert disk.start()[0] == "A"
