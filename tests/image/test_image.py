"""The booth image's smoke boot: build the generic variant, boot it under QEMU, read its health.

``images/build`` makes the image (its base root is cached in ``~/.cache/videobooth-image``,
keyed by its inputs); the test provisions it with ``videobooth-provision`` as a technician
would, boots it on QEMU's arm64 ``virt`` machine with the image's own Debian kernel, and reads
the line ``videobooth-health`` prints on the serial console once the booth service is up.
This proves the units, the lockdown, the read-only root, the booth's screen on KMS/DRM (QEMU's
virtio GPU) and PipeWire's echo canceller as the default audio devices; not the Pi's firmware,
camera or GPIO.

It takes minutes, so it runs in CI (``CI=true``, where a missing tool fails it) or when
``VIDEOBOOTH_IMAGE_TEST=1``; otherwise it is skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.components import in_ci, require, unavailable

pytestmark = [pytest.mark.image, pytest.mark.timeout(25 * 60)]

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "images" / "build"
#: What the booth's panel showed in the smoke boot (look at it).
SCREEN = REPO / "test-output" / "image" / "booth-screen.png"
CACHE = Path(os.environ.get("VIDEOBOOTH_IMAGE_CACHE", Path.home() / ".cache/videobooth-image"))
BUILD_SECONDS = 20 * 60
BOOT_SECONDS = 10 * 60
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
    "debugfs": "reads the data partition after the boot (e2fsprogs)",
    "e2fsck": "replays the data partition's journal after the boot (e2fsprogs)",
    "dtc": "gives QEMU's device tree a Raspberry Pi board revision (device-tree-compiler)",
}
#: What videobooth-health must report (see images/rootfs/usr/lib/videobooth/health).
EXPECTED = {
    "booth": "ready",
    # pygame full screen straight on KMS/DRM, at the panel's own resolution (QEMU's virtio GPU
    # set to a 7-inch booth panel's 1024x600)
    "display": "kmsdrm:1024x600",
    # PipeWire's echo canceller is the default microphone and speaker (QEMU's HDA codec) ...
    "audio": "echo-cancel",
    # ... and the booth itself opened both through ALSA (its PyAV's own libasound)
    "alsa": "capture+playback",
    # gpiozero's lgpio factory drives the status light on QEMU's PL061 GPIO controller, under
    # the service's sandbox, and reads the line back
    "gpio": "lgpio",
    "gpio_readback": "ok",
    "root": "read-only",
    "data": "writable",
    "sysrq": "0",
    "ctrl_alt_del": "masked",
    "getty": "none",
    "autovts": "0",
    "sshd": "off",
    "firewall": "loaded",
    "watchdog": "10s",
    "journal": "volatile",
    "result": "ok",
}
#: The status light's GPIO: a line of QEMU's PL061 controller (/dev/gpiochip0); line 3 is its
#: power button.
STATUS_LED_GPIO = 5
#: A Raspberry Pi 4 B's board revision, which gpiozero needs to map its pins: QEMU's device
#: tree gets it as the Pi's firmware sets it (/proc/device-tree/system/linux,revision).
PI4_REVISION = 0xC03111
#: Fewer colours than this on the panel is not a booth screen (black, or one colour).
MIN_COLOURS = 16
HEALTH = re.compile(r"videobooth-health:((?: [a-z_]+=\S*)+)")
#: systemd colours its status lines on the console.
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generic variant's output folder (booth.img kept uncompressed for the boot)."""
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
    out = tmp_path_factory.mktemp("image")
    log = out / "build.log"
    started = time.monotonic()
    command = [str(BUILD), "--variant", "generic", "--out", str(out), "--cache", str(CACHE)]
    # zstd: minutes faster than the technicians' xz; booth.img stays for the boot.
    with log.open("w") as sink:
        done = subprocess.run(
            [*command, "--compression", "zst", "--no-compress"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            timeout=BUILD_SECONDS,
            check=False,
        )
    text = log.read_text(errors="replace")
    print(f"image build: {time.monotonic() - started:.0f} s\n{text[-3000:]}")
    assert done.returncode == 0, f"images/build failed:\n{text[-3000:]}"
    assert "GENERIC variant" in text
    return out


def test_outputs(image: Path) -> None:
    for name in ("booth.img.zst", "booth.img.bmap", "SHA256SUMS", "manifest.txt"):
        assert (image / name).stat().st_size > 0, name
    subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=image, check=True)
    manifest = (image / "manifest.txt").read_text()
    for line in ("pip aiortc==1.16.0", "pip pygame-ce==2.5.8", "pip videobooth==0.1.0"):
        assert line in manifest.splitlines(), line
    assert re.search(r"^deb systemd:arm64 252\.", manifest, re.MULTILINE)
    assert re.search(r"^deb pipewire:arm64 ", manifest, re.MULTILINE)
    table = subprocess.run(
        ["sfdisk", "--dump", str(image / "booth.img")], capture_output=True, text=True, check=True
    ).stdout
    types = re.findall(r"type=(\w+)", table)
    assert types == ["c", "83", "83"], table  # boot FAT, root, data


def test_same_inputs_give_the_same_bytes(image: Path, tmp_path: Path) -> None:
    """A second build of this tree (same SOURCE_DATE_EPOCH, same cached base root) makes the
    same card image, block map, manifest, kernel and initramfs, byte for byte."""
    again = tmp_path / "again"
    command = [str(BUILD), "--variant", "generic", "--out", str(again), "--cache", str(CACHE)]
    started = time.monotonic()
    done = subprocess.run(
        [*command, "--compression", "zst"],
        capture_output=True,
        text=True,
        timeout=BUILD_SECONDS,
        check=False,
    )
    print(f"second image build: {time.monotonic() - started:.0f} s")
    assert done.returncode == 0, f"images/build failed:\n{(done.stdout + done.stderr)[-3000:]}"
    # The commit names the build (file system ids, version): both builds must see the same one.
    heads = [(out / "manifest.txt").read_text().splitlines()[0] for out in (image, again)]
    assert heads[0] == heads[1], f"the repository moved on between the two builds: {heads}"
    first = (image / "SHA256SUMS").read_text().splitlines()
    second = (again / "SHA256SUMS").read_text().splitlines()
    assert len(first) >= 6, first
    assert sorted(first) == sorted(second), "\n".join(sorted(set(first) ^ set(second)))


def _provision(image: Path, card: Path) -> None:
    """booth.toml as a technician writes it, with the test pattern for the camera."""
    devices = card.parent / "devices.toml"
    devices.write_text(
        '[camera]\nkind = "test-pattern"\n'
        # The booth's own ALSA devices: PipeWire's (its echo canceller) through ALSA's default.
        '[audio]\ncapture = "default"\nplayback = "default"\n'
        f"[hardware]\nstatus_led = {STATUS_LED_GPIO}\n"
    )
    settings = {
        "--server-url": "http://127.0.0.1:8080",
        "--branch": "CI smoke boot",
        "--fingerprint": "sha256:" + ":".join(["AB"] * 32),
        "--token": "vbe_" + "x" * 40,
        "--device-config": str(devices),
    }
    arguments = [item for pair in settings.items() for item in pair]
    command = [sys.executable, "-m", "provisioning", "prepare", str(card), "--quiet"]
    subprocess.run([*command, *arguments], check=True)


def _partition(card: Path, number: int) -> tuple[int, int]:
    """(offset, size) in bytes of partition ``number`` of ``card``."""
    table = json.loads(
        subprocess.run(["sfdisk", "--json", str(card)], capture_output=True, check=True).stdout
    )
    part = table["partitiontable"]["partitions"][number - 1]
    return int(part["start"]) * 512, int(part["size"]) * 512


def _digest(card: Path, number: int) -> str:
    offset, size = _partition(card, number)
    digest = hashlib.sha256()
    with card.open("rb") as disk:
        disk.seek(offset)
        while size:
            chunk = disk.read(min(size, 1 << 22))
            digest.update(chunk)
            size -= len(chunk)
    return digest.hexdigest()


def _data_file(card: Path, tmp_path: Path, name: str) -> str:
    """A file from the card's data partition (debugfs reads the file system offline)."""
    offset, size = _partition(card, 3)
    data = tmp_path / "data.ext4"
    with card.open("rb") as disk, data.open("wb") as out:
        disk.seek(offset)
        out.write(disk.read(size))
    # The booth was switched off, not shut down: replay the journal first (on the copy).
    fsck = subprocess.run(["e2fsck", "-fy", str(data)], capture_output=True, text=True)
    assert fsck.returncode in (0, 1), fsck.stdout + fsck.stderr  # 1: the journal was replayed
    done = subprocess.run(
        ["debugfs", "-R", f"cat {name}", str(data)], capture_output=True, text=True, check=True
    )
    return done.stdout


def _screenshot(qmp: Path, ppm: Path, seconds: float = 60) -> int:
    """The panel as QEMU shows it, saved as SCREEN; the number of colours in it. Polls until
    the booth has drawn (a black or one-colour screen is not a booth screen)."""
    import pygame

    def ask(stream: Any, command: dict[str, Any]) -> dict[str, Any]:
        stream.write(json.dumps(command) + "\n")
        stream.flush()
        while True:  # QEMU's events may come first
            reply: dict[str, Any] = json.loads(stream.readline())
            if "return" in reply or "error" in reply:
                return reply

    colours = 0
    deadline = time.monotonic() + seconds
    with socket.socket(socket.AF_UNIX) as control:
        control.connect(str(qmp))
        stream = control.makefile("rw")
        stream.readline()  # the greeting
        ask(stream, {"execute": "qmp_capabilities"})
        while True:
            ppm.unlink(missing_ok=True)
            reply = ask(stream, {"execute": "screendump", "arguments": {"filename": str(ppm)}})
            assert "return" in reply, reply
            picture = pygame.image.load(str(ppm))
            width, height = picture.get_size()
            every = [(x, y) for x in range(0, width, 4) for y in range(0, height, 4)]
            colours = len({tuple(picture.get_at(point)) for point in every})
            if colours >= MIN_COLOURS or time.monotonic() > deadline:
                break
            time.sleep(2)
    SCREEN.parent.mkdir(parents=True, exist_ok=True)
    pygame.image.save(picture, str(SCREEN))
    print(f"the panel: {width}x{height}, {colours} colours, saved as {SCREEN}")
    return colours


def _device_tree(qemu: str, machine: list[str], tmp_path: Path) -> Path:
    """QEMU's own device tree for ``machine``, with a Raspberry Pi 4 B's board revision."""
    dtb, dts = tmp_path / "virt.dtb", tmp_path / "virt.dts"
    dump = [qemu, machine[0], f"{machine[1]},dumpdtb={dtb}", *machine[2:], "-net", "none"]
    subprocess.run(dump, check=True, capture_output=True)
    text = subprocess.run(
        ["dtc", "-q", "-I", "dtb", "-O", "dts", str(dtb)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    dts.write_text(text + f"\n/ {{ system {{ linux,revision = <{PI4_REVISION:#x}>; }}; }};\n")
    patched = tmp_path / "booth-pi4.dtb"
    subprocess.run(
        ["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", str(patched), str(dts)], check=True
    )
    return patched


def test_boot(image: Path, tmp_path: Path) -> None:
    qemu = require("qemu-system-aarch64", "boots the image (qemu-system-arm)")
    require("dtc", TOOLS["dtc"])
    card = tmp_path / "card.img"
    os.replace(image / "booth.img", card)
    _provision(image, card)
    root_before = _digest(card, 2)
    # A card larger than the image: the first boot grows /data into the rest.
    os.truncate(card, card.stat().st_size + 256 * 1024 * 1024)
    cmdline = (image / "booth-cmdline.txt").read_text().split()
    # Show systemd's progress on the console (the image's own command line is quiet).
    quiet = ("quiet", "loglevel=3")
    cmdline = [arg for arg in cmdline if arg not in quiet] + ["systemd.show_status=1"]
    machine = ["-M", "virt", "-cpu", "cortex-a72", "-smp", "2", "-m", "1536"]
    command = [qemu, *machine, "-dtb", str(_device_tree(qemu, machine, tmp_path))]
    command += ["-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot"]
    command += ["-kernel", str(image / "booth-vmlinuz"), "-initrd", str(image / "booth-initrd.img")]
    command += ["-append", " ".join(cmdline)]
    command += ["-drive", f"file={card},format=raw,if=virtio"]
    # A network for DHCP, DNS and the firewall's look-ups (no option ROM: none is needed).
    command += ["-netdev", "user,id=net", "-device", "virtio-net-pci,netdev=net,romfile="]
    command += ["-device", "i6300esb"]  # a watchdog for systemd's RuntimeWatchdogSec
    # A panel (virtio GPU, KMS/DRM) and a sound card with a microphone and a speaker.
    command += ["-device", "virtio-gpu-pci,xres=1024,yres=600"]
    command += ["-audiodev", "none,id=sound", "-device", "intel-hda"]
    command += ["-device", "hda-duplex,audiodev=sound"]
    qmp = tmp_path / "qmp.sock"  # QEMU's control socket: screenshots of the panel
    command += ["-qmp", f"unix:{qmp},server=on,wait=off"]
    print("booting:", shlex.join(command))
    console: list[str] = []
    started = time.monotonic()
    found = threading.Event()
    health: dict[str, str] = {}

    def read(vm: subprocess.Popen[bytes]) -> None:
        assert vm.stdout is not None
        for raw in vm.stdout:
            line = ANSI.sub("", raw.decode(errors="replace")).rstrip()
            console.append(line)
            match = HEALTH.search(line)
            if match and not found.is_set():
                for item in match.group(1).split():
                    key, _, value = item.partition("=")
                    health[key] = value
                found.set()

    with subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as vm:
        reader = threading.Thread(target=read, args=(vm,), daemon=True)
        reader.start()
        try:
            found.wait(BOOT_SECONDS)
            colours = _screenshot(qmp, tmp_path / "screen.ppm") if found.is_set() else 0
        finally:
            vm.terminate()
            try:
                vm.wait(10)
            except subprocess.TimeoutExpired:
                vm.kill()
                vm.wait()
            reader.join(10)
    (tmp_path / "console.log").write_text("\n".join(console) + "\n")
    tail = "\n".join(console[-80:])
    assert found.is_set(), f"no health report within {BOOT_SECONDS} s; console:\n{tail}"
    print(f"health report after {time.monotonic() - started:.0f} s: {health}")
    facts = {key: health.get(key) for key in EXPECTED}
    assert facts == EXPECTED, f"console:\n{tail}"
    # The panel shows the booth's own screen (here: not connected, as no server answers).
    assert colours >= MIN_COLOURS, f"the panel shows {colours} colours: see {SCREEN}"
    text = "\n".join(console)
    assert "Started videobooth.service" in text, tail
    assert "videobooth-firstboot: data partition" in text, tail
    assert "enrolment token" in text, tail
    # The root partition is never written; what the first boot did stays on /data.
    assert _digest(card, 2) == root_before, "the booth wrote to its root partition"
    assert _data_file(card, tmp_path, "/.videobooth-firstboot").startswith("20")
