"""The pi variant's boot loader backend for RAUC (``usr/lib/videobooth/rauc-tryboot``):
the Raspberry Pi firmware's one-time tryboot instead of U-Boot. Run here on a boot partition
made as ``images/build`` makes the pi variant's, with the firmware's choice played by
:func:`firmware_starts` (config.txt, or tryboot.txt once after ``reboot '0 tryboot'``, names the
folder whose cmdline.txt starts the kernel). RAUC's own calls are made in the order RAUC makes
them when it installs and when the booth marks its slot good. (No Pi here: this is the
script's logic, not the firmware's.)"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BACKEND = REPO / "images" / "rootfs" / "usr" / "lib" / "videobooth" / "rauc-tryboot"
CONFIG_TXT = REPO / "images" / "boot" / "config.txt"
AFTER_BOOTH = REPO / "images" / "rootfs" / "usr" / "lib" / "videobooth" / "after-booth"


class Pi:
    """A boot partition as flashed (slot A), the two slots' file systems, and what runs."""

    def __init__(self, folder: Path) -> None:
        self.boot = folder / "boot"
        self.slots = folder / "slots"
        self.cmdline = folder / "cmdline"
        (self.boot / "slot-a").mkdir(parents=True)
        (self.boot / "config.txt").write_text(CONFIG_TXT.read_text())
        (self.boot / "slot-a" / "cmdline.txt").write_text(self._cmdline("02", "A"))
        (self.boot / "slot-a" / "kernel8.img").write_bytes(b"kernel of release 1")
        for slot in ("A", "B"):
            (self.slots / slot / "usr/lib/videobooth/boot").mkdir(parents=True)
        self.install_release("A", "1")
        self.start(tryboot=False)

    @staticmethod
    def _cmdline(number: str, slot: str) -> str:
        return (
            f"console=serial0,115200 root=PARTUUID=b007ab1e-{number} rauc.slot={slot} "
            "rootfstype=ext4 ro rootwait quiet\n"
        )

    def install_release(self, slot: str, release: str) -> None:
        """What RAUC writes into a slot: a root file system whose /usr/lib/videobooth/boot
        holds the build's kernel side (its cmdline.txt names slot A, as the build writes)."""
        boot = self.slots / slot / "usr/lib/videobooth/boot"
        (boot / "kernel8.img").write_bytes(f"kernel of release {release}".encode())
        (boot / "cmdline.txt").write_text(self._cmdline("02", "A"))

    def rauc(self, *arguments: str) -> str:
        done = subprocess.run(
            [str(BACKEND), *arguments],
            capture_output=True,
            text=True,
            check=False,
            env={
                "PATH": "/usr/bin:/bin",
                "VIDEOBOOTH_BOOT": str(self.boot),
                "VIDEOBOOTH_CMDLINE": str(self.cmdline),
                "VIDEOBOOTH_SLOTS": str(self.slots),
            },
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def start(self, *, tryboot: bool) -> tuple[str, bytes]:
        """The firmware starts: tryboot.txt if asked for (and there), else config.txt; the
        slot its cmdline.txt names and the kernel it loads."""
        name = "tryboot.txt" if tryboot and (self.boot / "tryboot.txt").exists() else "config.txt"
        prefix = re.findall(r"^os_prefix=(\S+)$", (self.boot / name).read_text(), re.MULTILINE)
        assert len(prefix) == 1, f"{name} names {prefix}"
        folder = self.boot / prefix[0]
        cmdline = (folder / "cmdline.txt").read_text()
        self.cmdline.write_text(cmdline)
        match = re.search(r"rauc\.slot=(\w+)", cmdline)
        assert match is not None
        return match[1], (folder / "kernel8.img").read_bytes()

    def install(self, slot: str, release: str) -> None:
        """RAUC installing into ``slot``: marked bad first, written, then made primary."""
        self.rauc("set-state", slot, "bad")
        self.install_release(slot, release)
        self.rauc("set-primary", slot)


def test_tryboot_flashed_card_starts_slot_a(tmp_path: Path) -> None:
    pi = Pi(tmp_path)
    assert pi.start(tryboot=False) == ("A", b"kernel of release 1")
    assert (pi.rauc("get-primary"), pi.rauc("get-state", "A")) == ("A", "good")


def test_tryboot_an_update_is_started_once_and_kept_when_marked_good(tmp_path: Path) -> None:
    pi = Pi(tmp_path)
    pi.install("B", "2")
    assert pi.rauc("get-primary") == "B"
    cmdline = (pi.boot / "slot-b" / "cmdline.txt").read_text()
    assert "root=PARTUUID=b007ab1e-03 rauc.slot=B" in cmdline, cmdline
    # An ordinary start (a power cut before the restart) still starts A.
    assert pi.start(tryboot=False)[0] == "A"
    # The booth's restart asks for tryboot: B, with its own kernel.
    assert pi.start(tryboot=True) == ("B", b"kernel of release 2")
    pi.rauc("set-state", "B", "good")  # the booth reached its server and passed its self-test
    assert not (pi.boot / "tryboot.txt").exists()
    assert pi.rauc("get-primary") == "B"
    assert pi.start(tryboot=False) == ("B", b"kernel of release 2")
    # The next update goes into A the same way.
    pi.install("A", "3")
    assert pi.start(tryboot=True) == ("A", b"kernel of release 3")
    pi.rauc("set-state", "A", "good")
    assert pi.start(tryboot=False) == ("A", b"kernel of release 3")


def test_tryboot_a_slot_that_is_not_kept_gives_way_to_the_old_one(tmp_path: Path) -> None:
    pi = Pi(tmp_path)
    pi.install("B", "2")
    assert pi.start(tryboot=True)[0] == "B"
    # Never marked good: the booth fails, the trial guard or systemd restarts it (no tryboot).
    assert pi.start(tryboot=False) == ("A", b"kernel of release 1")
    pi.rauc("set-state", "A", "good")  # the booth on A marks its slot good, as on every start
    assert pi.rauc("get-primary") == "A"
    assert not (pi.boot / "tryboot-pending").exists()
    assert pi.start(tryboot=True)[0] == "A"  # nothing on trial any more


def test_tryboot_a_slot_marked_bad_is_not_tried(tmp_path: Path) -> None:
    pi = Pi(tmp_path)
    pi.install("B", "2")
    pi.rauc("set-state", "B", "bad")
    assert (pi.rauc("get-primary"), pi.rauc("get-state", "B")) == ("A", "bad")
    assert pi.start(tryboot=True)[0] == "A"


@pytest.mark.parametrize(
    ("pending", "running", "reboot"),
    [("B", "A", "0 tryboot"), (None, "A", ""), ("B", "B", "")],
)
def test_tryboot_the_booths_restart_asks_the_firmware_for_tryboot_when_a_slot_waits(
    tmp_path: Path, pending: str | None, running: str, reboot: str
) -> None:
    """after-booth (the booth's exit code 4): ``systemctl reboot '0 tryboot'`` only when an
    installed slot waits for its one start."""
    boot = tmp_path / "boot"
    boot.mkdir()
    if pending is not None:
        (boot / "tryboot-pending").write_text(pending + "\n")
    cmdline = tmp_path / "cmdline"
    cmdline.write_text(f"root=PARTUUID=b007ab1e-02 rauc.slot={running} quiet\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    (bin_dir / "systemctl").write_text(f'#!/bin/sh\nprintf "%s|" "$@" > {calls}\n')
    (bin_dir / "systemctl").chmod(0o755)
    done = subprocess.run(
        [str(AFTER_BOOTH)],
        capture_output=True,
        text=True,
        check=False,
        env={
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "SERVICE_RESULT": "exit-code",
            "EXIT_STATUS": "4",
            "VIDEOBOOTH_BOOT": str(boot),
            "VIDEOBOOTH_CMDLINE": str(cmdline),
        },
    )
    assert done.returncode == 0, done.stderr
    expected = "reboot|--no-block|" + (f"{reboot}|" if reboot else "")
    assert calls.read_text() == expected
