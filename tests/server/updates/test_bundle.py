"""Checking bundles with the real RAUC: bundles made here with ``rauc bundle`` (verity format,
signed with a key pair made for the test), then a good one, one signed by another key, one
with one flipped byte, a cut-off one and an old-format one."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.updates import BundleError, check_bundle
from tests.server.updates.bundles import COMPATIBLE, key_pair, make_bundle


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A bundle, the certificate it is signed with, and another key's certificate."""
    folder = tmp_path_factory.mktemp("bundles")
    key, cert = key_pair(folder, "organisation")
    _, other = key_pair(folder, "someone else")
    return make_bundle(folder, key, cert), cert, other


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
    data = bundle.read_bytes()
    cut.write_bytes(data[: len(data) // 2])  # an interrupted upload
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
    plain = make_bundle(tmp_path, key, cert, version="2.0.1", fmt="plain")
    with pytest.raises(BundleError, match="only 'verity' bundles are accepted"):
        await check_bundle(plain, cert)


async def test_a_missing_certificate_is_a_clear_error(
    signed: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    bundle, _, _ = signed
    with pytest.raises(BundleError, match="does not exist"):
        await check_bundle(bundle, tmp_path / "nope.pem")
