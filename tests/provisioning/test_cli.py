"""``videobooth-provision`` on real card images (an MBR partition table by sfdisk, a FAT boot
partition by mformat, the image's booth.toml.template put on it by mcopy) and on a mounted
folder: prepare, check, and every bad input is one clear line, a non-zero exit and a target
left byte for byte as it was."""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import segno
import zxingcpp

from provisioning.bootconfig import CA_NAME, parse_boot_config
from provisioning.cli import main
from tests.components import require
from tests.provisioning.test_bootconfig import make_certificate

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame

PROG = "videobooth-provision"
TOKEN = "vbe_Q7xK2mP9wL4rT8vN1cB6hJ3fD5sA0gZeYuIoKjHq"
SERVER = "https://video.example.org"
MIB = 1024 * 1024
TEMPLATE = b"# booth.toml.template: videobooth-provision writes booth.toml beside it\n"
DEVICES = """\
[camera]
kind = "v4l2"
device = "/dev/v4l/by-id/usb-cam"
[hardware]
call_button = 17
call_button_led = 27
presence = "pir"
presence_pin = 5
"""


def _tool(name: str, why: str) -> str:
    # sfdisk lives in /usr/sbin, which an ordinary user's PATH may lack.
    if shutil.which(name) is None and os.path.exists(f"/usr/sbin/{name}"):
        return require(f"/usr/sbin/{name}", why)
    return require(name, why)


def _mtools_env() -> dict[str, str]:
    return {**os.environ, "MTOOLS_SKIP_CHECK": "1"}


def _mtools(*args: str) -> bytes:
    return subprocess.run(list(args), check=True, capture_output=True, env=_mtools_env()).stdout


@dataclass(frozen=True)
class Partition:
    start_mib: int
    size_mib: int
    kind: str  # sfdisk's type: c (FAT32 LBA), e (FAT16 LBA), 6 (FAT16), 83 (Linux)


def build_image(
    path: Path,
    partitions: list[Partition] | None = None,
    *,
    template: bool = True,
    size_mib: int = 40,
) -> Path:
    """A card image like the booth image's: an MBR, a FAT boot partition, the template.
    ``partitions=[]``: a bare FAT file system with no partition table."""
    mformat = _tool("mformat", "formats the test image's boot partition (Debian: mtools)")
    mcopy = _tool("mcopy", "copies onto the test image's boot partition (Debian: mtools)")
    if partitions is None:
        partitions = [Partition(1, size_mib - 2, "c")]
    with path.open("wb") as fh:
        fh.truncate(size_mib * MIB)
    if partitions:
        sfdisk = _tool("sfdisk", "writes the test image's partition table (Debian: fdisk)")
        script = "label: dos\n" + "".join(
            f"start={p.start_mib * 2048}, size={p.size_mib * 2048}, type={p.kind}\n"
            for p in partitions
        )
        subprocess.run(
            [sfdisk, "--quiet", str(path)], input=script.encode(), check=True, capture_output=True
        )
        boot = next(p for p in partitions if p.kind in ("c", "e", "6", "b"))
        drive = f"{path}@@{boot.start_mib}M"
        sectors = boot.size_mib * 2048
        fat = ["-F"] if boot.kind in ("c", "b") else []
    else:
        drive, sectors, fat = str(path), size_mib * 2048, []
    _mtools(mformat, "-i", drive, *fat, "-T", str(sectors), "-v", "BOOTFS", "::")
    if template:
        local = path.parent / "booth.toml.template"
        local.write_bytes(TEMPLATE)
        _mtools(mcopy, "-i", drive, str(local), "::/booth.toml.template")
        local.unlink()
    return path


def read_from_image(image: Path, name: str, offset: str = "1M") -> bytes:
    return _mtools("mtype", "-i", f"{image}@@{offset}", f"::/{name}")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def card(tmp_path: Path) -> Path:
    return build_image(tmp_path / "booth.img")


@pytest.fixture
def mounted(tmp_path: Path) -> Path:
    """A mounted boot partition as the image ships it (the firmware files stand in)."""
    folder = tmp_path / "bootfs"
    folder.mkdir()
    (folder / "booth.toml.template").write_bytes(TEMPLATE)
    (folder / "config.txt").write_text("dtoverlay=vc4-kms-v3d\n")
    return folder


@pytest.fixture
def ca(tmp_path: Path) -> tuple[Path, str]:
    pem, fingerprint, _ = make_certificate()
    path = tmp_path / "organisation-ca.pem"
    path.write_bytes(pem)
    return path, fingerprint


@pytest.fixture
def devices(tmp_path: Path) -> Path:
    path = tmp_path / "devices.toml"
    path.write_text(DEVICES)
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def prepare_args(target: Path, *extra: str) -> list[str]:
    return ["prepare", str(target), "--server-url", SERVER, "--branch", "Branch 12", *extra]


def test_prepare_then_check_an_image(
    capsys: pytest.CaptureFixture[str], card: Path, ca: tuple[Path, str], devices: Path
) -> None:
    ca_file, fingerprint = ca
    code, out, err = run(
        capsys,
        *prepare_args(card, "--ca-file", str(ca_file), "--token", TOKEN),
        "--device-config",
        str(devices),
    )
    assert code == 0, err
    # A line per step with percent on stderr, rising to 100.
    steps = err.splitlines()
    assert steps == [
        f"[  0%] writing videobooth-ca.pem into {card} (FAT partition 1 at 1 MiB)",
        f"[ 35%] writing booth.toml into {card} (FAT partition 1 at 1 MiB)",
        "[ 70%] reading it back",
        "[100%] done",
    ]
    assert out.splitlines()[0] == f"prepared {card} (FAT partition 1 at 1 MiB) for Branch 12"
    assert out.splitlines()[-1] == (
        f"before flashing, make a new block map: bmaptool create -o {card}.bmap {card} (or "
        "flash it with Raspberry Pi Imager)"
    )

    assert read_from_image(card, CA_NAME) == ca_file.read_bytes()
    written = parse_boot_config(read_from_image(card, "booth.toml").decode())
    assert written.server_url == SERVER
    assert written.server_ca_file == CA_NAME
    assert written.branch == "Branch 12"
    assert written.enrolment_token == TOKEN
    assert written.hardware is not None and written.hardware.pins == {
        "call_button": 17,
        "call_button_led": 27,
        "presence_pin": 5,
    }
    assert written.camera is not None and written.camera.device == "/dev/v4l/by-id/usb-cam"
    assert read_from_image(card, "booth.toml.template") == TEMPLATE

    code, out, err = run(capsys, "check", card)
    assert (code, err) == (0, "")
    assert out == (
        f"{card} (FAT partition 1 at 1 MiB): booth.toml is fine\n"
        f"  server:          {SERVER}\n"
        f"  server check:    CA certificate videobooth-ca.pem, {fingerprint}\n"
        "  branch:          Branch 12\n"
        "  enrolment token: yes (vbe_Q7xK…): the booth enrols at first boot\n"
        "  devices:         camera, hardware (the rest: defaults)\n"
    )


def test_the_token_is_never_shown_in_full(
    capsys: pytest.CaptureFixture[str], card: Path, tmp_path: Path
) -> None:
    token_file = tmp_path / "token.txt"
    token_file.write_text(TOKEN + "\n")
    fingerprint = "sha256:" + ":".join(["5A"] * 32)
    outputs = []
    for args in (
        prepare_args(card, "--fingerprint", fingerprint, "--token-file", str(token_file)),
        ["check", str(card)],
        ["qr", TOKEN, "--out", str(tmp_path / "enrol.svg")],
        ["-v", *prepare_args(card, "--fingerprint", fingerprint, "--token", TOKEN)],
    ):
        code, out, err = run(capsys, *args)
        assert code == 0, err
        outputs.append(out + err)
    assert all(TOKEN[:9] not in text for text in outputs)
    assert all(TOKEN[:8] in text for text in outputs)


def test_prepare_again_replaces_the_configuration(
    capsys: pytest.CaptureFixture[str], card: Path, ca: tuple[Path, str]
) -> None:
    assert main([*prepare_args(card, "--ca-file", str(ca[0]), "--token", TOKEN, "--quiet")]) == 0
    capsys.readouterr()
    fingerprint = "sha256:" + ":".join(["0a"] * 32)
    code, out, err = run(capsys, *prepare_args(card, "--fingerprint", fingerprint, "--quiet"))
    assert (code, err) == (0, "")  # --quiet: no progress
    assert out.startswith(f"replaced booth.toml on {card} (FAT partition 1 at 1 MiB) for Branch")
    written = parse_boot_config(read_from_image(card, "booth.toml").decode())
    assert written.server_fingerprint == "sha256:" + ":".join(["0A"] * 32)
    assert written.server_ca_file is None
    assert written.enrolment_token is None
    code, out, _ = run(capsys, "check", card)
    assert code == 0
    assert f"certificate fingerprint {written.server_fingerprint}" in out
    assert "enrolment token: no: the booth asks for the enrolment QR code" in out


BAD_TOKEN = "vbe_tooShort"
BAD_INPUTS = [
    pytest.param(
        ["--server-url", "http://video.example.org"],
        2,
        "--server-url: 'http://video.example.org' must use https:// (plain http only to "
        "127.0.0.1 or localhost, for development)",
        id="http-to-a-remote-host",
    ),
    pytest.param(
        ["--fingerprint", "sha256:AB:CD:EF"],
        2,
        "--fingerprint: has 3 bytes, a SHA-256 fingerprint has 32",
        id="short-fingerprint",
    ),
    pytest.param(
        ["--fingerprint", "md5:AB:CD"],
        2,
        "--fingerprint: 'md5' is not a hex byte; expected sha256: and 32 colon-separated hex "
        "bytes (sha256:AB:CD:...)",
        id="not-a-fingerprint",
    ),
    pytest.param(
        ["--fingerprint", "sha256:" + ":".join(["AB"] * 32), "--ca-file", "{ca}"],
        2,
        "argument --ca-file: not allowed with argument --fingerprint "
        "(see 'videobooth-provision prepare --help')",
        id="both-ca-and-fingerprint",
    ),
    pytest.param(
        ["--no-trust"],
        2,
        "one of the arguments --ca-file --fingerprint is required "
        "(see 'videobooth-provision prepare --help')",
        id="neither-ca-nor-fingerprint",
    ),
    pytest.param(
        ["--token", BAD_TOKEN],
        2,
        "--token: not an enrolment token: it has 8 characters after vbe_, not 32 to 64 (copy "
        "the whole token from the administration page)",
        id="malformed-token",
    ),
    pytest.param(
        ["--token-file", "{token_file}"],
        2,
        "--token-file: not an enrolment token: it does not start with vbe_ (copy the whole "
        "token from the administration page)",
        id="malformed-token-file",
    ),
    pytest.param(["--branch", " "], 2, "--branch: must not be empty", id="empty-branch"),
    pytest.param(
        ["--device-config", "{device:[camera]\nzoom = 2\n}"],
        1,
        "{device}: unknown setting(s) in [camera]: zoom",
        id="unknown-device-setting",
    ),
    pytest.param(
        ["--device-config", "{device:[hardware]\ncall_button = 28\n}"],
        1,
        "{device}: hardware.call_button: expected a BCM GPIO number from 0 to 27, got 28",
        id="wrong-pin",
    ),
    pytest.param(
        ["--device-config", "{device:[hardware]\ncall_button = 17\nend_button = 17\n}"],
        1,
        "{device}: hardware: GPIO17 is set for more than one part: call_button and end_button",
        id="pin-used-twice",
    ),
    pytest.param(
        ["--device-config", "{device:display = 'window'\n}"],
        1,
        "{device}: unknown section(s) or setting(s): display; a device file holds only "
        "[camera], [audio], [hardware] and [video]",
        id="not-a-device-setting",
    ),
    pytest.param(
        ["--ca-file", "{missing}"],
        1,
        "--ca-file: {missing} does not exist",
        id="missing-ca-file",
    ),
    pytest.param(
        ["--ca-file", "{key}"],
        1,
        "{key}: holds a private key; give the CA certificate only (a key never goes onto a card)",
        id="ca-file-with-a-key",
    ),
    pytest.param(
        ["--ca-file", "{devices}"],
        1,
        "{devices}: holds no certificate (no -----BEGIN CERTIFICATE----- line)",
        id="ca-file-not-pem",
    ),
]


@pytest.mark.parametrize(("options", "code", "message"), BAD_INPUTS)
@pytest.mark.parametrize("target_kind", ["image", "folder"])
def test_bad_input_is_one_line_and_changes_nothing(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    ca: tuple[Path, str],
    options: list[str],
    code: int,
    message: str,
    target_kind: str,
) -> None:
    target = build_image(tmp_path / "booth.img") if target_kind == "image" else None
    if target is None:
        target = tmp_path / "bootfs"
        target.mkdir()
        (target / "booth.toml.template").write_bytes(TEMPLATE)
    before = digest(target) if target.is_file() else snapshot(target)
    _, _, key = make_certificate()
    names = {
        "ca": str(ca[0]),
        "missing": str(tmp_path / "missing.pem"),
        "key": str(tmp_path / "key.pem"),
        "token_file": str(tmp_path / "token.txt"),
        "devices": str(tmp_path / "not-a-cert.pem"),
        "device": str(tmp_path / "devices.toml"),
    }
    (tmp_path / "key.pem").write_bytes(ca[0].read_bytes() + key)
    (tmp_path / "token.txt").write_text("Bearer " + TOKEN + "\n")
    (tmp_path / "not-a-cert.pem").write_text("hello\n")
    args = ["--server-url", SERVER, "--branch", "Branch 12", "--token", TOKEN]
    if not {"--no-trust", "--fingerprint", "--ca-file"} & set(options):
        args += ["--ca-file", str(ca[0])]
    for option in options:
        if option == "--no-trust":
            continue
        if option.startswith("{device:"):
            (tmp_path / "devices.toml").write_text(option[len("{device:") : -1])
            option = names["device"]
        args.append(option.format(**names))
    if "--token-file" in options:
        args.remove("--token")
        args.remove(TOKEN)

    # The later of two same options wins in argparse: put the bad ones last.
    result, out, err = run(capsys, "prepare", str(target), *args)
    assert (result, out) == (code, "")
    assert err == f"{PROG}: {message.format(**names)}\n"
    assert TOKEN not in err
    assert (digest(target) if target.is_file() else snapshot(target)) == before


def test_a_target_that_is_not_a_boot_partition(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    image = build_image(tmp_path / "other.img", template=False)
    before = digest(image)
    args = prepare_args(image, "--fingerprint", "sha256:" + ":".join(["AB"] * 32))
    code, out, err = run(capsys, *args)
    assert (code, out) == (1, "")
    assert err == (
        f"{PROG}: {image} (FAT partition 1 at 1 MiB) is not a Videobooth boot partition: it "
        "has no booth.toml.template (the wrong partition or drive? --force writes anyway)\n"
    )
    assert digest(image) == before
    code, out, err = run(capsys, *args, "--force", "--quiet")
    assert (code, err) == (0, "")
    assert run(capsys, "check", image)[0] == 0

    folder = tmp_path / "home"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n")
    code, out, err = run(
        capsys, *prepare_args(folder, "--fingerprint", "sha256:" + "AB:" * 31 + "AB")
    )
    assert code == 1
    assert err == (
        f"{PROG}: {folder} is not a Videobooth boot partition: it has no booth.toml.template "
        "(the wrong partition or drive? --force writes anyway)\n"
    )
    assert snapshot(folder) == {"notes.txt": b"mine\n"}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(
            lambda image: image.write_bytes(image.read_bytes()[: 20 * MIB]),
            "{image} is cut short: partition 1 ends at byte 40894464 but the file has 20971520 "
            "bytes (an incomplete download or copy?)",
            id="truncated-image",
        ),
        pytest.param(
            lambda image: image.write_bytes(image.read_bytes()[:300]),
            "{image} is too small to be a card image (300 bytes)",
            id="truncated-to-nothing",
        ),
        pytest.param(
            lambda image: image.write_text("just some text\n" * 100),
            "{image} is not a card image: it has no partition table and no FAT file system",
            id="not-an-image",
        ),
    ],
)
def test_a_damaged_image_is_refused_and_left_alone(
    capsys: pytest.CaptureFixture[str], card: Path, make: Callable[[Path], object], message: str
) -> None:
    make(card)
    before = digest(card)
    code, out, err = run(
        capsys, *prepare_args(card, "--fingerprint", "sha256:" + "AB:" * 31 + "AB")
    )
    assert (code, out) == (1, "")
    assert err == f"{PROG}: {message.format(image=card)}\n"
    assert digest(card) == before
    code, _, err = run(capsys, "check", card)
    assert (code, err) == (1, f"{PROG}: {message.format(image=card)}\n")


def test_the_first_fat_partition_is_found_behind_another(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    image = build_image(
        tmp_path / "two.img", [Partition(1, 8, "83"), Partition(9, 30, "e")], size_mib=40
    )
    code, out, err = run(
        capsys, *prepare_args(image, "--fingerprint", "sha256:" + "AB:" * 31 + "AB", "--quiet")
    )
    assert code == 0, err
    assert out.startswith(f"prepared {image} (FAT partition 2 at 9 MiB) for Branch 12")
    assert parse_boot_config(read_from_image(image, "booth.toml", "9M").decode()).branch == (
        "Branch 12"
    )


def test_a_bare_fat_image_without_a_partition_table(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    image = build_image(tmp_path / "bootfs.img", [], size_mib=16)
    code, out, err = run(
        capsys, *prepare_args(image, "--fingerprint", "sha256:" + "AB:" * 31 + "AB", "--quiet")
    )
    assert code == 0, err
    assert out.startswith(f"prepared {image} (FAT file system without a partition table)")
    assert b"branch = " in read_from_image(image, "booth.toml", "0")

    image.write_bytes(image.read_bytes()[: 8 * MIB])
    code, out, err = run(capsys, "check", image)
    assert (code, out) == (1, "")
    assert err == (
        f"{PROG}: {image} is cut short: its FAT file system ends at byte {16 * MIB} but the "
        f"file has {8 * MIB} bytes (an incomplete download or copy?)\n"
    )


def test_a_mounted_boot_partition(
    capsys: pytest.CaptureFixture[str], mounted: Path, ca: tuple[Path, str], devices: Path
) -> None:
    code, out, err = run(
        capsys,
        *prepare_args(mounted, "--ca-file", str(ca[0]), "--token", TOKEN),
        "--device-config",
        str(devices),
    )
    assert code == 0, err
    assert err.splitlines()[-1] == "[100%] done"
    assert "bmaptool" not in out  # a card is flashed already
    assert sorted(p.name for p in mounted.iterdir()) == [
        "booth.toml",
        "booth.toml.template",
        "config.txt",
        "videobooth-ca.pem",
    ]  # no temporary files left behind
    assert (mounted / CA_NAME).read_bytes() == ca[0].read_bytes()
    code, out, err = run(capsys, "check", mounted)
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == f"{mounted}: booth.toml is fine"
    assert f"CA certificate videobooth-ca.pem, {ca[1]}" in out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(
            lambda d: (d / "booth.toml").unlink(),
            "{d} has no booth.toml: prepare the card first ('videobooth-provision prepare')",
            id="no-booth-toml",
        ),
        pytest.param(
            lambda d: (d / "videobooth-ca.pem").unlink(),
            "{d}: booth.toml names server_ca_file = 'videobooth-ca.pem' but there is no such "
            "file next to it",
            id="no-ca-file",
        ),
        pytest.param(
            lambda d: (d / "videobooth-ca.pem").write_text("-----BEGIN CERTIFICATE-----\nMIIB"),
            "{d}: videobooth-ca.pem: certificate 1 has no -----END CERTIFICATE----- line (is "
            "the file cut short?)",
            id="cut-ca-file",
        ),
        pytest.param(
            lambda d: (d / "booth.toml").write_text(
                (d / "booth.toml").read_text().replace("call_button = 17", "call_button = 31")
            ),
            "{d}: booth.toml: hardware.call_button: expected a BCM GPIO number from 0 to 27, "
            "got 31",
            id="wrong-pin-edited-by-hand",
        ),
        pytest.param(
            lambda d: (d / "booth.toml").write_text(
                (d / "booth.toml").read_text().replace("https://", "http://")
            ),
            "{d}: booth.toml: server_url: 'http://video.example.org' must use https:// (plain "
            "http only to 127.0.0.1 or localhost, for development)",
            id="http-edited-by-hand",
        ),
        pytest.param(
            lambda d: (d / "booth.toml").write_text(
                (d / "booth.toml")
                .read_text()
                .replace("https://video.example.org", "https://video.example.org/advisor/")
            ),
            "{d}: booth.toml: server_url: 'https://video.example.org/advisor/': give the "
            "server's address without a path, e.g. https://video.example.org",
            id="path-edited-by-hand",
        ),
        pytest.param(
            lambda d: (d / "booth.toml").write_bytes(b"\xff\xfe"),
            "{d}: booth.toml is not UTF-8 text",
            id="not-text",
        ),
    ],
)
def test_check_says_exactly_what_is_wrong(
    capsys: pytest.CaptureFixture[str],
    mounted: Path,
    ca: tuple[Path, str],
    devices: Path,
    change: Callable[[Path], object],
    message: str,
) -> None:
    args = prepare_args(mounted, "--ca-file", str(ca[0]), "--device-config", str(devices))
    assert main([*args, "--quiet"]) == 0
    change(mounted)
    capsys.readouterr()
    code, out, err = run(capsys, "check", mounted)
    assert (code, out) == (1, "")
    assert err == f"{PROG}: {message.format(d=mounted)}\n"


def test_an_image_needs_mtools(
    capsys: pytest.CaptureFixture[str],
    card: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    before = digest(card)
    code, out, err = run(
        capsys, *prepare_args(card, "--fingerprint", "sha256:" + "AB:" * 31 + "AB")
    )
    assert (code, out) == (1, "")
    assert err == (
        f"{PROG}: mcopy is not installed: writing into an image file needs mtools; install "
        "mtools (apt-get install mtools), or mount the card and give its folder\n"
    )
    assert digest(card) == before


def test_a_missing_target(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nothing.img"
    code, out, err = run(capsys, "check", missing)
    assert (code, out) == (1, "")
    assert err == (
        f"{PROG}: {missing} does not exist (give the mounted boot partition's folder or an "
        "image file)\n"
    )


def test_usage_errors_are_one_line_with_exit_status_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(
        capsys,
    ) == (
        2,
        "",
        f"{PROG}: the following arguments are required: COMMAND (see '{PROG} --help')\n",
    )
    assert run(capsys, "prepare", "x.img", "--fingerprint", "sha256:AB") == (
        2,
        "",
        f"{PROG}: the following arguments are required: --server-url, --branch "
        f"(see '{PROG} prepare --help')\n",
    )
    code, out, err = run(capsys, "prepare", "--help")
    assert (code, err) == (0, "")
    assert "TARGET is the card's boot partition" in out


def test_a_server_address_with_a_path_is_refused_before_anything_is_written(
    capsys: pytest.CaptureFixture[str], card: Path
) -> None:
    """An address copied from the browser (the advisor page) would leave the booth on 404s."""
    before = digest(card)
    args = prepare_args(card, "--fingerprint", "sha256:" + "AB:" * 31 + "AB")
    args[args.index(SERVER)] = "https://video.example.org/advisor/"
    assert run(capsys, *args) == (
        2,
        "",
        f"{PROG}: --server-url: 'https://video.example.org/advisor/': give the server's address "
        "without a path, e.g. https://video.example.org\n",
    )
    assert digest(card) == before
    # The server's address itself, with or without the last slash, is fine.
    for address in (SERVER, SERVER + "/"):
        args[args.index("--server-url") + 1] = address
        code, _, err = run(capsys, *args, "--quiet")
        assert code == 0, err


def test_a_real_process_prints_no_traceback(card: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "provisioning",
            "prepare",
            str(card),
            "--server-url",
            SERVER,
            "--branch",
            "B",
            "--ca-file",
            str(card.parent / "nothing.pem"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"{PROG}: --ca-file: {card.parent / 'nothing.pem'} does not exist\n"


# --- the enrolment QR code -----------------------------------------------------------------------


def _decode(pixels: np.ndarray) -> str:
    """The text of the one QR code in a grey image (dark modules 0, light 255)."""
    results = zxingcpp.read_barcodes(
        np.ascontiguousarray(pixels, dtype=np.uint8),
        formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode),
    )
    assert len(results) == 1
    return str(results[0].text)


def _svg_pixels(svg: str) -> np.ndarray:
    """Rasterise segno's SVG: one path of horizontal strokes, one module high each."""
    scale = float(re.search(r'transform="scale\(([\d.]+)\)"', svg).group(1))  # type: ignore[union-attr]
    size = round(float(re.search(r'width="([\d.]+)"', svg).group(1)) / scale)  # type: ignore[union-attr]
    path = re.search(r' d="([^"]+)"', svg).group(1)  # type: ignore[union-attr]
    modules = np.full((size, size), 255, dtype=np.uint8)
    x = y = 0.0
    for op, a, b in re.findall(r"([MmHhVv])\s*(-?[\d.]+)(?:[ ,](-?[\d.]+))?", path):
        if op == "M":
            x, y = float(a), float(b)
        elif op == "m":
            x, y = x + float(a), y + float(b)
        elif op == "h":
            start, x = x, x + float(a)
            modules[int(y), int(min(start, x)) : int(max(start, x))] = 0
        else:
            raise AssertionError(f"unexpected path command {op}")
    return np.kron(modules, np.ones((4, 4), dtype=np.uint8))


def test_the_svg_qr_code_decodes_to_the_token(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "enrol.svg"
    code, stdout, err = run(capsys, "qr", TOKEN, "--out", out)
    assert (code, err) == (0, "")
    assert stdout == f"wrote {out}: the enrolment QR code for vbe_Q7xK…\n"
    assert _decode(_svg_pixels(out.read_text())) == TOKEN


def test_the_png_qr_code_decodes_to_the_token(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "enrol.PNG"
    assert run(capsys, "qr", TOKEN, "--out", out)[0] == 0
    surface = pygame.image.load(io.BytesIO(out.read_bytes()), "enrol.png")
    pixels = pygame.surfarray.array3d(surface)[:, :, 0].T  # (x, y) -> rows
    assert _decode(pixels) == TOKEN


def test_the_terminal_qr_code_matches_the_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(TOKEN + "\n"))
    code, out, err = run(capsys, "qr", "-")
    assert (code, err) == (0, "")
    # Two modules a character: upper and lower half blocks, light modules drawn (dark screen).
    expected = io.StringIO()
    segno.make(TOKEN, error="m").terminal(out=expected, compact=True)
    assert out == expected.getvalue()
    assert TOKEN not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["qr", "vbe_short"],
            "TOKEN: not an enrolment token: it has 5 characters after vbe_, "
            "not 32 to 64 (copy the whole token from the administration page)",
        ),
        (
            ["qr", TOKEN, "--out", "enrol.pdf"],
            "--out: enrol.pdf must end in .svg or .png (or be - for the terminal)",
        ),
        (
            ["qr", TOKEN, "--out", "/nonexistent/enrol.svg"],
            "--out: cannot write /nonexistent/enrol.svg: No such file or directory",
        ),
    ],
)
def test_qr_refuses_bad_input_in_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = run(capsys, *args)
    assert code == (1 if "cannot write" in message else 2)
    assert (out, err) == ("", f"{PROG}: {message}\n")
