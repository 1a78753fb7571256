"""The technician's tool on a real card image built here (MBR partition table by sfdisk, a FAT
boot partition by mtools), and on a mounted folder: prepare, check, and every bad input gives
one clear line, a non-zero exit and an image left byte for byte as it was."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import segno
import zxingcpp

from provisioning.cli import main
from tests.components import require

TOKEN = "vbe_" + "Q" * 43
SERVER = "https://video.example.org"
# A structurally valid certificate body (a DER SEQUENCE) is enough for the tool's check.
DER = bytes([0x30, 0x82, 0x01, 0x00]) + bytes(range(256))
PEM = (
    "-----BEGIN CERTIFICATE-----\n"
    + "\n".join(
        base64.b64encode(DER).decode()[i : i + 64] for i in range(0, len(base64.b64encode(DER)), 64)
    )
    + "\n-----END CERTIFICATE-----\n"
)


def _mtools_env() -> dict[str, str]:
    return {**os.environ, "MTOOLS_SKIP_CHECK": "1"}


@pytest.fixture
def card(tmp_path: Path) -> Path:
    """A 40 MiB card image: MBR, one FAT partition from 1 MiB, the image's template on it."""
    sfdisk = require("sfdisk", "builds the test image's partition table (Debian package fdisk)")
    mformat = require("mformat", "formats the test image's boot partition (Debian package mtools)")
    image = tmp_path / "booth.img"
    with image.open("wb") as fh:
        fh.truncate(40 * 1024 * 1024)
    subprocess.run(
        [sfdisk, "--quiet", str(image)],
        input=b"label: dos\nstart=2048, size=61440, type=c\n",
        check=True,
        capture_output=True,
    )
    drive = f"{image}@@{2048 * 512}"
    subprocess.run(
        [mformat, "-i", drive, "-T", "61440", "-h", "64", "-s", "32", "-v", "BOOTFS", "::"],
        check=True,
        capture_output=True,
        env=_mtools_env(),
    )
    template = tmp_path / "booth.toml.template"
    template.write_text("# server_url = ...  (written by videobooth-provision)\n")
    subprocess.run(
        ["mcopy", "-i", drive, str(template), "::/booth.toml.template"],
        check=True,
        capture_output=True,
        env=_mtools_env(),
    )
    return image


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _prepare(target: Path, *extra: str) -> int:
    return main(
        ["prepare", str(target), "--server-url", SERVER, "--branch", "Branch 12", "--quiet", *extra]
    )


def test_prepare_and_check_an_image(
    card: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = tmp_path / "org-ca.pem"
    ca.write_text(PEM)
    devices = tmp_path / "devices.toml"
    devices.write_text('[camera]\nkind = "picamera2"\n[hardware]\ncall_button = 17\n')
    token_file = tmp_path / "token.txt"
    token_file.write_text(TOKEN + "\n")
    assert (
        _prepare(
            card,
            "--ca-file",
            str(ca),
            "--token-file",
            str(token_file),
            "--device-config",
            str(devices),
        )
        == 0
    )
    assert main(["check", str(card)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "Branch 12" in out and SERVER in out
    assert "vbe_QQQQ" in out and TOKEN not in out  # the token is never printed in full
    assert "camera, hardware" in out
    # What the booth will read: its own parser accepts it, token included.
    from kiosk.config import load_config

    local = tmp_path / "readback"
    local.mkdir()
    drive = f"{card}@@{2048 * 512}"
    for name in ("booth.toml", "videobooth-ca.pem"):
        subprocess.run(
            ["mcopy", "-i", drive, f"::/{name}", str(local / name)],
            check=True,
            env=_mtools_env(),
        )
    config = load_config(local / "booth.toml")
    assert config.enrolment_token == TOKEN
    assert config.server_ca_file == local / "videobooth-ca.pem"
    assert config.hardware.call_button == 17


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fingerprint", "sha256:AB"], "fingerprint: expected sha256:"),
        (["--fingerprint", "sha256:" + ":".join(["AB"] * 32), "--token", "abc"], "enrolment_token"),
        (["--ca-file", "/nonexistent/ca.pem"], "the CA file /nonexistent/ca.pem does not exist"),
        (["--ca-file", "{bad_ca}"], "exactly one PEM certificate"),
        (
            ["--fingerprint", "sha256:" + ":".join(["AB"] * 32), "--device-config", "{bad_pin}"],
            "hardware.call_button",
        ),
        (
            ["--fingerprint", "sha256:" + ":".join(["AB"] * 32), "--device-config", "{unknown}"],
            "unknown section(s): screen",
        ),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(
    card: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    (tmp_path / "bad_ca.pem").write_text("not a certificate")
    (tmp_path / "bad_pin.toml").write_text("[hardware]\ncall_button = 99\n")
    (tmp_path / "unknown.toml").write_text("[screen]\nsize = 7\n")
    args = [
        a.format(
            bad_ca=tmp_path / "bad_ca.pem",
            bad_pin=tmp_path / "bad_pin.toml",
            unknown=tmp_path / "unknown.toml",
        )
        for a in args
    ]
    before = _digest(card)
    assert _prepare(card, *args) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("videobooth-provision: ")
    assert "\n" not in err
    assert message in err
    assert _digest(card) == before


def test_http_to_a_remote_server_is_refused(card: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _digest(card)
    code = main(
        [
            "prepare",
            str(card),
            "--server-url",
            "http://video.example.org",
            "--branch",
            "B",
            "--fingerprint",
            "sha256:" + ":".join(["AB"] * 32),
        ]
    )
    assert code == 1
    assert "must be https://" in capsys.readouterr().err
    assert _digest(card) == before


def test_a_card_that_is_not_a_boot_partition(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "usb-stick"
    folder.mkdir()
    fingerprint = ["--fingerprint", "sha256:" + ":".join(["AB"] * 32)]
    assert _prepare(folder, *fingerprint) == 1
    assert "not a Videobooth boot partition" in capsys.readouterr().err
    assert list(folder.iterdir()) == []
    assert _prepare(folder, *fingerprint, "--force") == 0  # a mounted folder works too
    assert main(["check", str(folder)]) == 0


def test_truncated_and_foreign_images(
    card: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    short = tmp_path / "short.img"
    short.write_bytes(card.read_bytes()[: 4 * 1024 * 1024])
    assert main(["check", str(short)]) == 1
    assert "cut short" in capsys.readouterr().err
    foreign = tmp_path / "photo.jpg"
    foreign.write_bytes(b"\xff\xd8" + b"\x00" * 2000)
    assert main(["check", str(foreign)]) == 1
    assert "neither a card image nor a FAT file system" in capsys.readouterr().err
    assert main(["check", str(card)]) == 1  # only the template: nothing to check yet
    assert "has no booth.toml" in capsys.readouterr().err


def test_qr_code_decodes_back_to_the_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "enrol.svg"
    assert main(["qr", TOKEN, "--out", str(out)]) == 0
    assert out.read_text().startswith("<?xml") or "<svg" in out.read_text()
    assert TOKEN not in capsys.readouterr().out
    matrix = np.array(segno.make(TOKEN, error="m").matrix, dtype=np.uint8)
    picture = np.pad(
        (1 - np.kron(matrix, np.ones((6, 6), dtype=np.uint8))) * 255, 24, constant_values=255
    )
    decoded = zxingcpp.read_barcodes(picture)
    assert [d.text for d in decoded] == [TOKEN]
    assert main(["qr", "not-a-token"]) == 2
