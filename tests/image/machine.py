"""A booth card started under QEMU as a booth starts: QEMU's arm64 ``virt`` machine with
Debian's U-Boot as its firmware, which runs the card's boot script (``boot.scr``): it picks
root slot A or B and starts the kernel and initramfs of that slot. Shared by the image's
smoke boot and its update test; also the card's partitions read offline."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.components import require, unavailable

#: Debian's U-Boot for QEMU's arm64 machine (u-boot-qemu).
UBOOT = Path("/usr/lib/u-boot/qemu_arm64/u-boot.bin")
#: acpi=off: with firmware and ACPI, QEMU gives the machine no PL061 GPIO controller (the
#: status light's); U-Boot boots by device tree anyway.
MACHINE = ["-M", "virt,acpi=off", "-cpu", "cortex-a72", "-smp", "2", "-m", "1536"]
#: The status light's GPIO: a line of QEMU's PL061 controller (/dev/gpiochip0); line 3 is its
#: power button.
STATUS_LED_GPIO = 5
#: A Raspberry Pi 4 B's board revision, which gpiozero needs to map its pins: QEMU's device
#: tree gets it as the Pi's firmware sets it (/proc/device-tree/system/linux,revision).
PI4_REVISION = 0xC03111
#: systemd colours its status lines on the console.
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: Partitions of the card: boot (FAT), root slots A and B, data.
BOOT, SLOT_A, SLOT_B, DATA = 1, 2, 3, 4
#: Extra kernel arguments for the tests' starts: systemd's progress on the console, and the
#: journal's notices, warnings and errors (the booth's own among them: a failed test shows
#: why). The level also bounds what services with StandardOutput=journal+console show there.
VERBOSE = (
    "extra_bootargs=systemd.show_status=1 loglevel=6"
    " systemd.journald.forward_to_console=1 systemd.journald.max_level_console=notice\n"
)


def device_tree(qemu: str, folder: Path) -> Path:
    """QEMU's own device tree for the machine, with a Raspberry Pi 4 B's board revision."""
    dtb, dts = folder / "virt.dtb", folder / "virt.dts"
    if (patched := folder / "booth-pi4.dtb").exists():
        return patched
    # With the firmware, as the machine runs: without -bios QEMU describes another flash
    # layout, and the kernel faults on a device that is not there.
    dump = [qemu, MACHINE[0], f"{MACHINE[1]},dumpdtb={dtb}", *MACHINE[2:], "-bios", str(UBOOT)]
    dump += ["-net", "none"]
    subprocess.run(dump, check=True, capture_output=True)
    text = subprocess.run(
        ["dtc", "-q", "-I", "dtb", "-O", "dts", str(dtb)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    dts.write_text(text + f"\n/ {{ system {{ linux,revision = <{PI4_REVISION:#x}>; }}; }};\n")
    subprocess.run(
        ["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", str(patched), str(dts)], check=True
    )
    return patched


#: While the file this names exists, a running machine is paused (tests/conftest.py: a test
#: measuring frames a second runs in the other pytest, beside the update test).
PAUSE_FILE = "VIDEOBOOTH_PAUSE_FILE"


class Qmp:
    """QEMU's machine protocol on its socket: one connection, commands one at a time."""

    def __init__(self, path: Path, timeout: float = 30) -> None:
        self._socket = socket.socket(socket.AF_UNIX)
        self._socket.settimeout(timeout)
        self._socket.connect(str(path))
        self._stream = self._socket.makefile("rw")
        self._stream.readline()  # the greeting
        self.ask("qmp_capabilities")

    def ask(self, command: str, **arguments: Any) -> dict[str, Any]:
        message: dict[str, Any] = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        self._stream.write(json.dumps(message) + "\n")
        self._stream.flush()
        while True:  # QEMU's events may come first
            reply: dict[str, Any] = json.loads(self._stream.readline())
            if "return" in reply or "error" in reply:
                return reply

    def close(self) -> None:
        self._stream.close()
        self._socket.close()

    def __enter__(self) -> Qmp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Machine:
    """One QEMU run of ``card``: its serial console read line by line."""

    def __init__(self, card: Path, folder: Path, name: str = "booth") -> None:
        self.card = card
        self.folder = folder
        self.name = name
        self.console: list[str] = []
        self.qmp = folder / f"{name}-qmp.sock"
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._changed = threading.Condition()
        self.started = 0.0

    def start(self) -> None:
        qemu = require("qemu-system-aarch64", "starts the booth image (qemu-system-arm)")
        require("dtc", "gives QEMU's device tree a Raspberry Pi board revision")
        if not UBOOT.exists():
            unavailable(f"{UBOOT} is missing: install u-boot-qemu (the booth's firmware here)")
        command = [qemu, *MACHINE, "-bios", str(UBOOT), "-dtb", str(device_tree(qemu, self.folder))]
        command += ["-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot"]
        command += ["-drive", f"if=none,file={self.card},format=raw,id=card"]
        command += ["-device", "virtio-blk-device,drive=card"]
        # A network: DHCP, DNS; the host's loopback is 10.0.2.2 (no option ROM: none is needed).
        command += ["-netdev", "user,id=net", "-device", "virtio-net-pci,netdev=net,romfile="]
        command += ["-device", "i6300esb"]  # a watchdog for systemd's RuntimeWatchdogSec
        # A panel (virtio GPU, KMS/DRM) and a sound card with a microphone and a speaker.
        command += ["-device", "virtio-gpu-pci,xres=1024,yres=600"]
        command += ["-audiodev", "none,id=sound", "-device", "intel-hda"]
        command += ["-device", "hda-duplex,audiodev=sound"]
        self.qmp.unlink(missing_ok=True)
        command += ["-qmp", f"unix:{self.qmp},server=on,wait=off"]
        print(f"[{self.name}] starting:", shlex.join(command))
        self.started = time.monotonic()
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if pause := os.environ.get(PAUSE_FILE):
            threading.Thread(target=self._pause_when, args=(Path(pause),), daemon=True).start()

    def _pause_when(self, pause: Path) -> None:
        """Stop the machine while ``pause`` exists, and let it go on after (QEMU's ``stop`` and
        ``cont``: the machine's clocks stop too, so no timer in it runs out meanwhile)."""
        process, paused, since = self._process, False, 0.0
        while process is not None and process.poll() is None:
            wanted = pause.exists()
            if wanted != paused:
                try:
                    with Qmp(self.qmp) as qmp:
                        reply = qmp.ask("stop" if wanted else "cont")
                except OSError:
                    reply = {"error": "no machine protocol"}
                if "return" in reply:
                    paused = wanted
                    if paused:
                        since = time.monotonic()
                        try:  # the test may be over already
                            who = pause.read_text().strip()
                        except OSError:
                            who = "a solo test"
                        # The wall clock, to match the server's log: a machine paused longer
                        # than the server's heartbeat waits for an answer loses its link.
                        now = time.strftime("%H:%M:%S")
                        print(f"[{self.name}] paused at {now}: {who} runs beside")
                    else:
                        now, took = time.strftime("%H:%M:%S"), time.monotonic() - since
                        print(f"[{self.name}] going on at {now} after {took:.0f} s")
            time.sleep(0.25)

    def _read(self) -> None:
        process = self._process
        assert process is not None and process.stdout is not None
        with (self.folder / f"{self.name}-console.log").open("a") as log:
            for raw in process.stdout:
                line = ANSI.sub("", raw.decode(errors="replace")).rstrip()
                log.write(line + "\n")
                log.flush()
                with self._changed:
                    self.console.append(line)
                    self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def wait_for(
        self, pattern: str | re.Pattern[str], timeout: float, *, since: int = 0
    ) -> re.Match[str]:
        """The first console line from line ``since`` on that matches ``pattern``."""
        expression = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        seen = since
        with self._changed:
            while True:
                for line in self.console[seen:]:
                    if (match := expression.search(line)) is not None:
                        return match
                seen = len(self.console)
                left = deadline - time.monotonic()
                if left <= 0 or (not self.running and seen == len(self.console)):
                    break
                self._changed.wait(min(left, 1.0))
        reason = (
            f"[{self.name}] no console line matching {expression.pattern!r} within "
            f"{timeout:.0f} s{'' if self.running else ' (QEMU ended)'}"
        )
        raise AssertionError(self.failure(reason))

    def failure(self, reason: str) -> str:
        """A failed test's message: the reason, the console's last lines, and the reason again
        at the end (a log cut to its tail still shows it)."""
        tail = "\n".join(self.console[-80:])
        return f"{reason}; the console ends:\n{tail}\n[{self.name}] failed: {reason}"

    def wait_ended(self, timeout: float) -> None:
        """QEMU ends by itself (``-no-reboot``: a restart of the machine ends it)."""
        assert self._process is not None
        self._process.wait(timeout)
        self._closed()

    def kill(self) -> None:
        """Power cut: QEMU killed, nothing flushed."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(30)
        self._closed()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._closed()

    def _closed(self) -> None:
        if self._reader is not None:
            self._reader.join(10)
        if self._process is not None and self._process.stdout is not None:
            self._process.stdout.close()


# ------------------------------------------------------------ the card, offline


def partition(card: Path, number: int) -> tuple[int, int]:
    """(offset, size) in bytes of partition ``number`` of ``card``."""
    table = json.loads(
        subprocess.run(["sfdisk", "--json", str(card)], capture_output=True, check=True).stdout
    )
    part = table["partitiontable"]["partitions"][number - 1]
    return int(part["start"]) * 512, int(part["size"]) * 512


def digest(card: Path, number: int) -> str:
    offset, size = partition(card, number)
    hashed = hashlib.sha256()
    with card.open("rb") as disk:
        disk.seek(offset)
        while size:
            chunk = disk.read(min(size, 1 << 22))
            hashed.update(chunk)
            size -= len(chunk)
    return hashed.hexdigest()


def data_file(card: Path, folder: Path, name: str) -> str:
    """A file from the card's data partition (debugfs reads the file system offline)."""
    offset, size = partition(card, DATA)
    data = folder / "data.ext4"
    with card.open("rb") as disk, data.open("wb") as out:
        disk.seek(offset)
        while size:
            chunk = disk.read(min(size, 1 << 22))
            out.write(chunk)
            size -= len(chunk)
    # The booth was switched off, not shut down: replay the journal first (on the copy).
    fsck = subprocess.run(["e2fsck", "-fy", str(data)], capture_output=True, text=True)
    assert fsck.returncode in (0, 1), fsck.stdout + fsck.stderr  # 1: the journal was replayed
    done = subprocess.run(
        ["debugfs", "-R", f"cat {name}", str(data)], capture_output=True, text=True, check=True
    )
    data.unlink()
    return done.stdout


def boot_file(card: Path, name: str) -> bytes:
    """A file from the card's boot partition (mtools)."""
    offset, _ = partition(card, BOOT)
    return subprocess.run(
        ["mtype", "-i", f"{card}@@{offset}", f"::{name}"],
        capture_output=True,
        check=True,
        env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"},
    ).stdout


def put_boot_file(card: Path, name: str, content: bytes) -> None:
    """Write a file onto the card's boot partition (mtools), as a technician's card reader."""
    offset, _ = partition(card, BOOT)
    source = card.parent / f"{card.name}.{name}"
    source.write_bytes(content)
    subprocess.run(
        ["mcopy", "-o", "-i", f"{card}@@{offset}", str(source), f"::{name}"],
        check=True,
        capture_output=True,
        env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"},
    )
    source.unlink()


def boot_env(card: Path, folder: Path, **variables: str) -> dict[str, str]:
    """The boot counter's variables in the card's uboot.env (``fw_printenv``, as RAUC reads
    them); ``variables`` are first written there with ``fw_setenv``, as RAUC's U-Boot backend
    does from Linux."""
    fw_printenv = require("fw_printenv", "reads the boot counter (libubootenv-tool)")
    fw_setenv = require("fw_setenv", "writes the boot counter (libubootenv-tool)")
    env, config = folder / "uboot.env", folder / "fw_env.config"
    env.write_bytes(boot_file(card, "uboot.env"))
    config.write_text(f"{env} 0x0000 0x4000\n")
    for name, value in variables.items():  # one call a variable, as RAUC 1.8 does
        subprocess.run([fw_setenv, "-c", str(config), name, value], check=True, timeout=60)
    if variables:
        put_boot_file(card, "uboot.env", env.read_bytes())
    out = subprocess.run(
        [fw_printenv, "-c", str(config)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def provision(card: Path, *settings: str, devices: Path) -> None:
    """booth.toml as a technician writes it (``videobooth-provision prepare``)."""
    devices.write_text(
        '[camera]\nkind = "test-pattern"\n'
        # The booth's own ALSA devices: PipeWire's (its echo canceller) through ALSA's default.
        '[audio]\ncapture = "default"\nplayback = "default"\n'
        f"[hardware]\nstatus_led = {STATUS_LED_GPIO}\n"
    )
    command = [sys.executable, "-m", "provisioning", "prepare", str(card), "--quiet"]
    subprocess.run([*command, *settings, "--device-config", str(devices)], check=True)
    put_boot_file(card, "bootargs.txt", VERBOSE.encode())
