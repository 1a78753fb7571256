"""The emulated booth pauses while a test measuring frames a second runs beside it (the update
test runs in a pytest of its own beside the others: scripts/test). A real QEMU with the booth's
firmware on an empty card (U-Boot finds nothing to start and waits at its prompt)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.image.machine import PAUSE_FILE, Machine, Qmp


def _status(machine: Machine) -> str:
    with Qmp(machine.qmp) as qmp:
        reply = qmp.ask("query-status")
    return str(reply["return"]["status"])


def _until(machine: Machine, status: str, seconds: float = 20) -> float:
    started = time.monotonic()
    while (now := _status(machine)) != status:
        assert time.monotonic() - started < seconds, f"still {now!r}, not {status!r}"
        time.sleep(0.1)
    return time.monotonic() - started


def test_the_machine_stops_while_the_pause_file_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pause = tmp_path / "pause"
    monkeypatch.setenv(PAUSE_FILE, str(pause))
    card = tmp_path / "card.img"
    card.write_bytes(b"")
    with card.open("r+b") as empty:
        empty.truncate(64 * 1024 * 1024)
    machine = Machine(card, tmp_path, "empty")
    machine.start()
    try:
        machine.wait_for("U-Boot", 60)
        assert _until(machine, "running") < 20
        for _ in range(2):  # and again: each solo test pauses it
            pause.write_text("tests/e2e/test_x.py::test_frames_a_second\n")
            print(f"paused after {_until(machine, 'paused'):.2f} s")
            pause.unlink()
            print(f"running again after {_until(machine, 'running'):.2f} s")
    finally:
        machine.stop()
    assert not machine.running
