"""Update bundles made for tests with the real RAUC: a signing key pair (openssl) and a
``verity`` bundle of a small root image (``rauc bundle``)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.components import require

COMPATIBLE = "videobooth-generic-arm64"


def key_pair(folder: Path, name: str) -> tuple[Path, Path]:
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


def make_bundle(
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
