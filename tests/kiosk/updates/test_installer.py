"""The installer's side of RAUC: its status read (the document ``rauc status --detailed
--output-format=json`` writes), ``rauc install``'s progress lines and refusals handled, and
the fake that stands in for it. (RAUC itself installs for real in the image's update test.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kiosk.updates import FakeInstaller, InstallError, RaucInstaller, UpdateError, parse_status


def _status(booted: str = "B", good: str = "good", version: str | None = "2.0.0") -> str:
    def slot(name: str, boot: str) -> dict[str, object]:
        facts: dict[str, object] = {
            "class": "rootfs",
            "device": f"/dev/vda{2 if boot == 'A' else 3}",
            "type": "ext4",
            "bootname": boot,
            "state": "booted" if boot == booted else "inactive",
            "parent": None,
            "mountpoint": "/" if boot == booted else None,
            "boot_status": good if boot == booted else "good",
        }
        if boot == booted and version is not None:
            facts["slot_status"] = {
                "bundle": {"compatible": "videobooth-generic-arm64", "version": version},
                "status": "ok",
            }
        return {name: facts}

    return json.dumps(
        {
            "compatible": "videobooth-generic-arm64",
            "variant": None,
            "booted": booted,
            "boot_primary": "rootfs.1" if booted == "B" else "rootfs.0",
            "slots": [slot("rootfs.0", "A"), slot("rootfs.1", "B")],
        }
    )


def test_status_of_an_updated_booth() -> None:
    slots = parse_status(_status())
    assert (slots.booted, slots.booted_good, slots.booted_version, slots.primary) == (
        "B",
        True,
        "2.0.0",
        "B",
    )


def test_status_of_a_slot_on_trial_and_of_a_flashed_one() -> None:
    assert not parse_status(_status(good="bad")).booted_good
    assert parse_status(_status(booted="A", version=None)).booted_version is None


@pytest.mark.parametrize("text", ["", "{}", '{"booted": "C", "slots": []}', "[1]"])
def test_a_status_that_is_not_one_is_a_clear_error(text: str) -> None:
    with pytest.raises(UpdateError, match="RAUC"):
        parse_status(text)


def _rauc(tmp_path: Path, script: str) -> str:
    """A stand-in ``rauc`` command that behaves as the script says."""
    path = tmp_path / "rauc"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return str(path)


async def test_install_reports_rauc_progress(tmp_path: Path) -> None:
    rauc = _rauc(
        tmp_path,
        'echo installing\necho "  0% Installing"\necho " 40% Copying image to rootfs.1"\n'
        'echo "100% Installing done."\necho "Installing `$2` succeeded"\n',
    )
    seen: list[tuple[int, str]] = []
    await RaucInstaller(rauc=rauc).install(tmp_path / "b.raucb", lambda p, w: seen.append((p, w)))
    assert seen == [(0, "Installing"), (40, "Copying image to rootfs.1"), (100, "Installing done.")]


async def test_a_refused_install_says_rauc_reason(tmp_path: Path) -> None:
    rauc = _rauc(
        tmp_path,
        'echo "  0% Installing"\n'
        'echo "rauc-Message: 10:00:00.000: Verifying bundle signature..." >&2\n'
        'echo "Installing `$2` failed: signature verification failed: Verify error" >&2\n'
        "exit 1\n",
    )
    with pytest.raises(InstallError, match="signature verification failed: Verify error"):
        await RaucInstaller(rauc=rauc).install(tmp_path / "b.raucb", lambda p, w: None)


async def test_the_reason_is_found_among_the_services_state_words(tmp_path: Path) -> None:
    """Through RAUC's service the client prints the service's state as it changes, so its last
    line is "idle": the reason is the line before that reads like one."""
    rauc = _rauc(
        tmp_path,
        'echo "installing"\necho "  0% Installing"\necho " 20% Checking bundle"\n'
        'echo "LastError: Failed to check bundle: signature verification failed" >&2\n'
        'echo "idle"\nexit 1\n',
    )
    with pytest.raises(InstallError, match="LastError: Failed to check bundle: signature ver"):
        await RaucInstaller(rauc=rauc).install(tmp_path / "b.raucb", lambda p, w: None)


async def test_slots_and_mark_good_through_the_command(tmp_path: Path) -> None:
    log = tmp_path / "calls"
    status = tmp_path / "status.json"
    status.write_text(_status(good="bad"))
    rauc = _rauc(tmp_path, f'echo "$@" >> {log}\n[ "$2" = mark-good ] || cat {status}\n')
    installer = RaucInstaller(rauc=rauc)
    assert not (await installer.slots()).booted_good
    await installer.mark_good()
    assert log.read_text().splitlines() == [
        "status --detailed --output-format=json",
        "status mark-good",
    ]


async def test_the_fake_switches_the_next_slot_and_refuses_as_rauc_does(tmp_path: Path) -> None:
    fake = FakeInstaller(version="1.0.0")
    await fake.install(tmp_path / "booth-2.0.0.raucb", lambda p, w: None)
    assert (await fake.slots()).primary == "B"
    with pytest.raises(InstallError, match="signature verification failed"):
        await fake.install(tmp_path / "refuse.raucb", lambda p, w: None)


async def test_without_rauc_installed_it_says_so(tmp_path: Path) -> None:
    installer = RaucInstaller(rauc=str(tmp_path / "no-such-rauc"))
    with pytest.raises(InstallError, match="is rauc installed"):
        await installer.slots()
    with pytest.raises(InstallError, match="is rauc installed"):
        await installer.install(tmp_path / "b.raucb", lambda p, w: None)


async def test_a_slot_is_on_trial_from_its_installation_until_it_is_marked_good(
    tmp_path: Path,
) -> None:
    """RAUC's U-Boot backend calls every slot with tries left good: the installer remembers
    which slot an installation made the next to start, and that slot is on trial until it is
    marked good (after a fall back, the old slot's marking gives the trial up)."""
    status = tmp_path / "status.json"
    status.write_text(_status(booted="A", version=None).replace('"rootfs.0"', '"rootfs.1"', 1))
    rauc = _rauc(tmp_path, f'[ "$1" = install ] && exit 0\n[ "$2" = mark-good ] || cat {status}\n')
    trial = tmp_path / "updates" / "trial"
    installer = RaucInstaller(rauc=rauc, trial=trial)
    await installer.install(tmp_path / "booth-2.0.0.raucb", lambda p, w: None)
    assert trial.read_text().split() == ["B", "booth-2.0.0.raucb"]
    assert (await installer.slots()).booted_good  # still on A: A is not on trial
    status.write_text(_status(booted="B"))
    assert not (await installer.slots()).booted_good  # started B: on trial
    await installer.mark_good()
    assert not trial.exists()
    assert (await installer.slots()).booted_good
