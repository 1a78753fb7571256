"""Checking bundles with the real RAUC: bundles made here with ``rauc bundle`` (verity format,
signed with a key pair made for the test), then a good one, one signed by another key, one
with one flipped byte, a cut-off one and an old-format one."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from server.updates import BundleError, check_bundle
from tests.components import require

COMPATIBLE = "videobooth-generic-arm64"


def _key_pair(folder: Path, name: str) -> tuple[Path, Path]:
    key, cert = folder / f"{name}.key.pem", folder / f"{name}.cert.pem"
    subprocess.run(
        [
            require("openssl", "to make the test's signing keys"),
            *("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-nodes", "-days", "30", "-subj", f"/O=Videobooth tests/CN={name}"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return key, cert


def _bundle(
    folder: Path, key: Path, cert: Path, *, version: str = "2.0.0", fmt: str = "verity"
) -> Path:
    rauc = require("rauc", "to make and check update bundles")
    require("mksquashfs", "rauc bundle packs with it (squashfs-tools)")
    content = folder / f"content-{version}-{fmt}"
    content.mkdir()
    (content / "root.ext4").write_bytes(os.urandom(1 << 20))  # 1 MiB that does not compress
    (content / "manifest.raucm").write_text(
        f"[update]\ncompatible={COMPATIBLE}\nversion={version}\n\n"
        f"[bundle]\nformat={fmt}\n\n[image.rootfs]\nfilename=root.ext4\n"
    )
    out = folder / f"booth-{version}-{fmt}.raucb"
    subprocess.run(
        [rauc, "bundle", f"--cert={cert}", f"--key={key}", str(content), str(out)],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A bundle, the certificate it is signed with, and another key's certificate."""
    folder = tmp_path_factory.mktemp("bundles")
    key, cert = _key_pair(folder, "organisation")
    _, other = _key_pair(folder, "someone else")
    return _bundle(folder, key, cert), cert, other


async def test_a_good_bundle_and_its_facts(signed: tuple[Path, Path, Path]) -> None:
    bundle, cert, _ = signed
    facts = await check_bundle(bundle, cert)
    assert (facts.compatible, facts.version) == (COMPATIBLE, "2.0.0")
    assert facts.signer == "O = Videobooth tests, CN = organisation"
    assert facts.size == bundle.stat().st_size
    assert len(facts.sha256) == 64
    assert [p.name for p in bundle.parent.glob(".bundle-check-*")] == []  # cleaned up


async def test_signed_by_another_key_is_refused(signed: tuple[Path, Path, Path]) -> None:
    bundle, _, other = signed
    with pytest.raises(BundleError, match="not a bundle signed with the trusted key"):
        await check_bundle(bundle, other)


async def test_one_flipped_byte_is_refused(signed: tuple[Path, Path, Path], tmp_path: Path) -> None:
    bundle, cert, _ = signed
    data = bytearray(bundle.read_bytes())
    data[len(data) // 3] ^= 0x01  # inside the payload
    flipped = tmp_path / "flipped.raucb"
    flipped.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="contents do not match its signature"):
        await check_bundle(flipped, cert)


async def test_a_cut_off_bundle_is_refused(signed: tuple[Path, Path, Path], tmp_path: Path) -> None:
    bundle, cert, _ = signed
    cut = tmp_path / "cut.raucb"
    cut.write_bytes(bundle.read_bytes()[:200_000])
    with pytest.raises(BundleError, match="not a bundle signed with the trusted key"):
        await check_bundle(cut, cert)


async def test_not_a_bundle_at_all(signed: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, cert, _ = signed
    junk = tmp_path / "junk.raucb"
    junk.write_bytes(b"PK\x03\x04 not a bundle" * 100)
    with pytest.raises(BundleError, match="not a bundle signed with the trusted key"):
        await check_bundle(junk, cert)


async def test_a_plain_format_bundle_is_refused(
    signed: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    _, cert, _ = signed
    key = cert.with_name("organisation.key.pem")
    plain = _bundle(tmp_path, key, cert, version="2.0.1", fmt="plain")
    with pytest.raises(BundleError, match="only 'verity' bundles are accepted"):
        await check_bundle(plain, cert)


async def test_a_missing_certificate_is_a_clear_error(
    signed: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    bundle, _, _ = signed
    with pytest.raises(BundleError, match="does not exist"):
        await check_bundle(bundle, tmp_path / "nope.pem")
