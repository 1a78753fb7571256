"""The booth's health report: real readings where the machine has them, None where it does
not, and never an exception — on a fake /sys as on this machine."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from kiosk.health import collect_health, cpu_temperature, disk_free_mb, package_version
from protocol import Heartbeat, decode_client, encode


def _zone(root: Path, number: int, kind: str, temp: str) -> None:
    zone = root / f"thermal_zone{number}"
    zone.mkdir(parents=True)
    (zone / "type").write_text(kind + "\n")
    (zone / "temp").write_text(temp + "\n")


def test_a_full_report_goes_through_the_protocol(tmp_path: Path) -> None:
    thermal = tmp_path / "thermal"
    _zone(thermal, 0, "cpu-thermal", "48312")
    started = time.monotonic() - 120.0
    health = collect_health(
        "idle",
        started,
        {"camera": True, "microphone": False, "speaker": None},
        12.5,
        data_dir=tmp_path,
        thermal_dir=thermal,
    )
    assert health.cpu_temperature_c == 48.312
    assert 120.0 <= health.uptime_seconds < 180.0
    assert (health.camera_ok, health.microphone_ok, health.speaker_ok) == (True, False, None)
    assert (health.server_rtt_ms, health.state) == (12.5, "idle")
    assert health.disk_free_mb is not None
    assert health.disk_free_mb > 0
    assert health.version  # installed in development mode, or "unknown"
    # The booth sends it in a heartbeat; the server reads it back unchanged.
    beat = decode_client(encode(Heartbeat(state="idle", health=health)))
    assert isinstance(beat, Heartbeat)
    assert beat.health == health


def test_the_cpu_zone_wins_and_bad_zones_are_skipped(tmp_path: Path) -> None:
    _zone(tmp_path, 0, "acpitz", "30000")
    _zone(tmp_path, 2, "broken", "not a number")
    _zone(tmp_path, 10, "x86_pkg_temp", "71000")
    _zone(tmp_path, 3, "soc-thermal", "55500")
    assert cpu_temperature(tmp_path) == 55.5
    (tmp_path / "thermal_zone3" / "type").write_text("gpu\n")
    assert cpu_temperature(tmp_path) == 30.0  # no CPU zone: the first that reads


def test_a_machine_without_any_reading_still_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_load_average() -> tuple[float, float, float]:
        raise OSError("load average unobtainable")

    monkeypatch.setattr(os, "getloadavg", no_load_average)
    health = collect_health(
        "",
        time.monotonic() + 60,  # a clock that went backwards: uptime 0, not negative
        {},
        None,
        data_dir=tmp_path / "missing",
        thermal_dir=tmp_path / "no-thermal",
        package="no-such-distribution-installed",
    )
    assert health.model_dump() == {
        "version": "unknown",
        "uptime_seconds": 0.0,
        "cpu_temperature_c": None,
        "load_1m": None,
        "disk_free_mb": None,
        "camera_ok": None,
        "microphone_ok": None,
        "speaker_ok": None,
        "server_rtt_ms": None,
        "state": "unknown",
        "pin_driver": None,
        "lights_ok": None,
        "clock_synchronised": None,
        "audio_problem": None,
        "slot": None,
        "slot_good": None,
    }


def test_implausible_readings_are_dropped_not_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _zone(tmp_path, 0, "cpu-thermal", "-273150")
    monkeypatch.setattr(os, "getloadavg", lambda: (float("nan"), 0.0, 0.0))
    health = collect_health(
        "in_call" * 10, time.monotonic(), {}, float("inf"), data_dir=tmp_path, thermal_dir=tmp_path
    )
    assert (health.cpu_temperature_c, health.load_1m, health.server_rtt_ms) == (None, None, None)
    assert health.state == ("in_call" * 10)[:32]


def test_readers_on_this_machine_do_not_raise(tmp_path: Path) -> None:
    temperature = cpu_temperature()
    assert temperature is None or -60 <= temperature <= 150
    assert disk_free_mb(tmp_path) is not None
    assert package_version("no-such-distribution-installed") == "unknown"


def test_a_booth_image_reports_its_release(tmp_path: Path) -> None:
    release = tmp_path / "release"
    release.write_text("2.0.0+a1b2c3\n")
    assert package_version(release_file=release) == "2.0.0+a1b2c3"
    release.write_text("not a version; rm -rf /\n")  # not one: the package's own
    assert package_version("no-such-distribution-installed", release_file=release) == "unknown"
