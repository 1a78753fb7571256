"""Checking a booth update bundle (``booth-<version>.raucb``) before the server offers it.

A bundle is RAUC's: a SquashFS payload followed by a CMS signature over its manifest, which in
the ``verity`` format carries the root hash of the payload's hash tree. The checks are RAUC's
own, run with the certificate the server is configured to trust (``[updates] keyring``):

1. ``rauc info --keyring``: the signature verifies against the keyring (a bundle signed with
   another key is refused), and the manifest's compatible string and version are read;
2. its format is ``verity`` (the booth then checks every block it installs against the signed
   hash tree, so a partly written or altered bundle is never installed);
3. ``rauc extract --keyring``: the whole payload matches the signed hash tree (one flipped byte
   anywhere is refused here, at upload, not on a booth).

The SHA-256 of the whole file is what booths check their download against.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import BundleError

__all__ = ["BundleFacts", "check_bundle", "sha256_of"]

log = logging.getLogger(__name__)

#: How long one RAUC step may take (the payload check reads the whole bundle).
RAUC_TIMEOUT_SECONDS = 600.0
_SIGNER = re.compile(r"Verified (?:inline|detached) signature by '(?P<subject>[^']*)'")
_FIELD = re.compile(r"^(?P<key>[A-Za-z ]+):\s*'?(?P<value>[^'\n]*)'?\s*$", re.MULTILINE)
#: What a compatible string and a version may look like (they are shown on pages and compared).
_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~:-]{0,63}$")


@dataclass(frozen=True)
class BundleFacts:
    """What a checked bundle is: for the pages, the rollout and the booths."""

    compatible: str
    version: str
    #: The subject of the certificate that signed it.
    signer: str
    sha256: str
    size: int


async def _rauc(rauc: str, *args: str) -> tuple[int, str, str]:
    try:
        process = await asyncio.create_subprocess_exec(
            rauc,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError:
        raise BundleError(
            f"cannot check bundles: {rauc!r} is not installed (the server needs the rauc package)"
        ) from None
    try:
        out, err = await asyncio.wait_for(process.communicate(), RAUC_TIMEOUT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise BundleError(
            f"checking the bundle took longer than {RAUC_TIMEOUT_SECONDS:g} s"
        ) from None
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def _reason(stderr: str) -> str:
    """RAUC's own reason: the last line that is not one of its progress messages."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if not line.startswith("rauc-Message:"):
            return line[:300]
    return lines[-1][:300] if lines else "no reason given"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def check_bundle(
    path: Path, keyring: Path, *, rauc: str = "rauc", scratch: Path | None = None
) -> BundleFacts:
    """Check the bundle at ``path`` against ``keyring`` (PEM certificates); its facts, or
    :class:`BundleError` saying what is wrong. ``scratch`` is where the payload is unpacked
    for its check (removed afterwards; default: beside the bundle)."""
    if not await asyncio.to_thread(keyring.is_file):
        raise BundleError(f"the trusted certificate {str(keyring)!r} does not exist")
    size = (await asyncio.to_thread(path.stat)).st_size
    status, out, err = await _rauc(
        rauc, "info", f"--keyring={keyring}", "--output-format=readable", str(path)
    )
    if status != 0:
        raise BundleError(f"not a bundle signed with the trusted key: {_reason(err)}")
    fields: dict[str, str] = {}
    for match in _FIELD.finditer(out):
        fields.setdefault(match["key"].strip(), match["value"].strip())
    compatible, version = fields.get("Compatible", ""), fields.get("Version", "")
    for name, value in (("compatible string", compatible), ("version", version)):
        if not _TOKEN.match(value):
            raise BundleError(f"the bundle's {name} {value!r} is missing or not a plain name")
    if fields.get("Bundle Format") != "verity":
        raise BundleError(
            f"the bundle's format is {fields.get('Bundle Format', 'unknown')!r}: only 'verity' "
            "bundles are accepted (build it with images/build, which makes them)"
        )
    signer = _SIGNER.search(err)
    # The payload against the signed hash tree: RAUC unpacks it to check every block.
    parent = scratch if scratch is not None else path.parent
    folder = Path(tempfile.mkdtemp(prefix=".bundle-check-", dir=parent))
    try:
        status, _, err = await _rauc(
            rauc, "extract", f"--keyring={keyring}", str(path), str(folder / "payload")
        )
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)
    if status != 0:
        raise BundleError(f"the bundle's contents do not match its signature: {_reason(err)}")
    sha256 = await asyncio.to_thread(sha256_of, path)
    facts = BundleFacts(
        compatible=compatible,
        version=version,
        signer=signer["subject"] if signer else "",
        sha256=sha256,
        size=size,
    )
    log.info(
        "bundle %s (%s, %s) checked: signed by %r", sha256[:12], compatible, version, facts.signer
    )
    return facts
