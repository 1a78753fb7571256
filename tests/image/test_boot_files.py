"""The Raspberry Pi boot partition's check (``images/check-boot-files``), which ``images/build``
runs on the pi variant's boot partition before it makes the image: every file a Pi 4 and a
Pi 5 boot from must be there, config.txt must carry the booth's settings, and the Pi 5's kernel
must mount the root without an initramfs. A partition missing any of them fails the build.

Fast and without root: the check runs on a folder made here like the build's."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.image.boot_files import REQUIRED

REPO = Path(__file__).resolve().parents[2]
CHECK = REPO / "images" / "check-boot-files"
CONFIG_TXT = REPO / "images" / "boot" / "config.txt"
KERNEL_CONFIG = "CONFIG_MMC_SDHCI_BRCMSTB=y\nCONFIG_EXT4_FS=y\n"


def _boot(tmp_path: Path) -> tuple[Path, Path]:
    """A boot partition as the build assembles it, and the Pi 5 kernel's configuration."""
    boot = tmp_path / "boot"
    for name in REQUIRED:
        path = boot / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x7fnot empty")
    (boot / "config.txt").write_text(CONFIG_TXT.read_text())
    config = tmp_path / "config-6.6.51+rpt-rpi-2712"
    config.write_text(KERNEL_CONFIG)
    return boot, config


def _check(boot: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK), str(boot), str(config)], capture_output=True, text=True, check=False
    )


def test_hardware_a_complete_boot_partition_passes(tmp_path: Path) -> None:
    done = _check(*_boot(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "has everything a Pi 4 and a Pi 5 boot from" in done.stdout


@pytest.mark.parametrize("missing", REQUIRED)
def test_hardware_a_missing_boot_file_fails_the_build(tmp_path: Path, missing: str) -> None:
    boot, config = _boot(tmp_path)
    (boot / missing).unlink()
    done = _check(boot, config)
    assert done.returncode == 1
    assert f"{missing} is missing from the boot partition" in done.stderr


@pytest.mark.parametrize(
    "setting", ["arm_boost=1", "disable_fw_kms_setup=1", "dtparam=watchdog=on", "arm_64bit=1"]
)
def test_hardware_config_txt_carries_the_booths_settings(tmp_path: Path, setting: str) -> None:
    boot, config = _boot(tmp_path)
    text = (boot / "config.txt").read_text()
    assert setting in text.splitlines(), f"images/boot/config.txt lacks {setting}"
    (boot / "config.txt").write_text(text.replace(setting + "\n", ""))
    done = _check(boot, config)
    assert done.returncode == 1
    assert f"config.txt lacks {setting}" in done.stderr


def test_hardware_a_pi5_kernel_that_needs_an_initramfs_fails(tmp_path: Path) -> None:
    boot, config = _boot(tmp_path)
    config.write_text("CONFIG_MMC_SDHCI_BRCMSTB=m\nCONFIG_EXT4_FS=y\n")
    done = _check(boot, config)
    assert done.returncode == 1
    assert "no built-in CONFIG_MMC_SDHCI_BRCMSTB" in done.stderr
