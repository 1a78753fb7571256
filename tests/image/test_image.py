"""The booth image's smoke boot: build the generic variant, boot it under QEMU, read its health.

``images/build`` makes the image (see ``conftest.py``); the test provisions it with
``videobooth-provision`` as a technician would, starts it on QEMU's arm64 ``virt`` machine
with Debian's U-Boot as the firmware (which runs the card's boot script: slot A, its own
kernel and initramfs), and reads the line ``videobooth-health`` prints on the serial console
once the booth service is up. This proves the boot path, the units, the lockdown, the
read-only root, the booth's screen on KMS/DRM (QEMU's virtio GPU) and PipeWire's echo
canceller as the default audio devices; not the Pi's firmware, camera or GPIO.

It takes minutes, so it runs in CI (``CI=true``, where a missing tool fails it) or when
``VIDEOBOOTH_IMAGE_TEST=1``; otherwise it is skipped.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.image.conftest import BUILD_SECONDS, CACHE, PREBUILDS, RELEASE, build
from tests.image.machine import SLOT_A, SLOT_B, Machine, Qmp, data_file, digest, provision

pytestmark = [pytest.mark.image, pytest.mark.timeout(25 * 60)]

REPO = Path(__file__).resolve().parents[2]
#: What the booth's panel showed in the smoke boot (look at it).
SCREEN = REPO / "test-output" / "image" / "booth-screen.png"
BOOT_SECONDS = 10 * 60
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
    # the image's release, from root slot A (the boot script chose it)
    "version": RELEASE,
    "slot": "A",
    "result": "ok",
}
#: Fewer colours than this on the panel is not a booth screen (black, or one colour).
MIN_COLOURS = 16
HEALTH = re.compile(r"videobooth-health:((?: [a-z_]+=\S*)+)")


def test_outputs(image: Path) -> None:
    bundle = f"booth-{RELEASE}.raucb"
    for name in ("booth.img.zst", "booth.img.bmap", bundle, "SHA256SUMS", "manifest.txt"):
        assert (image / name).stat().st_size > 0, name
    subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=image, check=True)
    manifest = (image / "manifest.txt").read_text()
    for line in ("pip aiortc==1.16.0", "pip pygame-ce==2.5.8", "pip videobooth==0.1.0"):
        assert line in manifest.splitlines(), line
    assert re.search(r"^deb systemd:arm64 252\.", manifest, re.MULTILINE)
    assert re.search(r"^deb pipewire:arm64 ", manifest, re.MULTILINE)
    assert re.search(r"^deb rauc:arm64 ", manifest, re.MULTILINE)
    assert re.search(r"^deb espeak-ng:arm64 ", manifest, re.MULTILINE)  # spoken prompts
    table = json.loads(
        subprocess.run(
            ["sfdisk", "--json", str(image / "booth.img")], capture_output=True, check=True
        ).stdout
    )["partitiontable"]
    assert table["id"] == "0xb007ab1e", table
    parts = table["partitions"]
    # boot FAT (bootable: U-Boot runs its boot.scr), root slots A and B of one size, data
    assert [p["type"] for p in parts] == ["c", "83", "83", "83"], table
    assert parts[0].get("bootable") is True, table
    assert parts[1]["size"] == parts[2]["size"], table
    # The bundle: this build's root, compatible with the variant, signed by the key the
    # image trusts (the development key here), in the verity format.
    info = _bundle_info(image / bundle)
    assert "Compatible: \t'videobooth-generic-arm64'" in info, info
    assert f"Version:    \t'{RELEASE}'" in info, info
    assert "Bundle Format: \tverity" in info, info


def _bundle_info(bundle: Path) -> str:
    """``rauc info`` of a bundle, checked against the development certificate the build
    signed with (and the image trusts)."""
    keyring = CACHE / "development-signing" / "cert.pem"
    return subprocess.run(
        ["rauc", "info", "--keyring", str(keyring), str(bundle)],
        capture_output=True, check=True, text=True,
    ).stdout  # fmt: skip


def _squashfs(bundle: Path) -> bytes:
    """A RAUC bundle's file system: without the signature (the last 8 bytes give its size)
    and the verity hash tree before it (whose salt is new for every bundle)."""
    data = bundle.read_bytes()
    signature = int.from_bytes(data[-8:], "big")
    match = re.search(r"Verity Size: \t(\d+)", _bundle_info(bundle))
    assert match is not None
    return data[: len(data) - 8 - signature - int(match[1])]


def test_same_inputs_give_the_same_bytes(image: Path, tmp_path: Path) -> None:
    """A second build of this tree (same SOURCE_DATE_EPOCH, same cached base root) makes the
    same card image, block map and manifest byte for byte, and the same bundle but for its
    signature (which records when it was made) and its hash tree's salt."""
    again = tmp_path / "again"
    started = time.monotonic()
    build(again, *PREBUILDS["again"])
    print(f"second image build: {time.monotonic() - started:.0f} s (at most {BUILD_SECONDS})")
    # The commit names the build (file system ids, version): both builds must see the same one.
    heads = [(out / "manifest.txt").read_text().splitlines()[0] for out in (image, again)]
    assert heads[0] == heads[1], f"the repository moved on between the two builds: {heads}"
    bundle = f"booth-{RELEASE}.raucb"

    def sums(out: Path) -> list[str]:
        lines = (out / "SHA256SUMS").read_text().splitlines()
        return sorted(line for line in lines if not line.endswith(bundle))

    first, second = sums(image), sums(again)
    assert len(first) >= 3, first
    assert first == second, "\n".join(sorted(set(first) ^ set(second)))
    assert _squashfs(image / bundle) == _squashfs(again / bundle)


def _screenshot(qmp: Path, ppm: Path, seconds: float = 60) -> int:
    """The panel as QEMU shows it, saved as SCREEN; the number of colours in it. Polls until
    the booth has drawn (a black or one-colour screen is not a booth screen)."""
    import pygame

    colours = 0
    deadline = time.monotonic() + seconds
    with Qmp(qmp) as control:
        while True:
            ppm.unlink(missing_ok=True)
            reply = control.ask("screendump", filename=str(ppm))
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


def copy_card(image: Path, card: Path) -> None:
    """The card as flashed: a copy of booth.img (sparse: the empty slot B costs nothing)."""
    subprocess.run(["cp", "--sparse=always", str(image / "booth.img"), str(card)], check=True)


def test_boot(image: Path, tmp_path: Path) -> None:
    card = tmp_path / "card.img"
    copy_card(image, card)
    provision(
        card,
        *("--server-url", "http://127.0.0.1:8080", "--branch", "CI smoke boot"),
        *("--fingerprint", "sha256:" + ":".join(["AB"] * 32), "--token", "vbe_" + "x" * 40),
        devices=tmp_path / "devices.toml",
    )
    slots_before = digest(card, SLOT_A), digest(card, SLOT_B)
    # A card larger than the image: the first boot grows /data into the rest.
    with card.open("r+b") as grown:
        grown.truncate(card.stat().st_size + 256 * 1024 * 1024)
    machine = Machine(card, tmp_path)
    machine.start()
    try:
        match = machine.wait_for(HEALTH, BOOT_SECONDS)
        colours = _screenshot(machine.qmp, tmp_path / "screen.ppm")
    finally:
        machine.stop()
    health = dict(item.partition("=")[::2] for item in match.group(1).split())
    tail = "\n".join(machine.console[-80:])
    print(f"health report after {time.monotonic() - machine.started:.0f} s: {health}")
    facts = {key: health.get(key) for key in EXPECTED}
    assert facts == EXPECTED, f"console:\n{tail}"
    # The panel shows the booth's own screen (here: not connected, as no server answers).
    assert colours >= MIN_COLOURS, f"the panel shows {colours} colours: see {SCREEN}"
    text = "\n".join(machine.console)
    # U-Boot ran the card's boot script, which chose slot A (three tries, one taken).
    assert "videobooth: slot A (starts left: A 2, B 3)" in text, tail
    assert "Started videobooth.service" in text, tail
    assert "videobooth-firstboot: data partition" in text, tail
    assert "enrolment token" in text, tail
    # The root slots are never written; what the first boot did stays on /data.
    assert (digest(card, SLOT_A), digest(card, SLOT_B)) == slots_before, "a root slot was written"
    assert data_file(card, tmp_path, "/.videobooth-firstboot").startswith("20")
