"""The booth's health report, sent with its heartbeat for the server's fleet view.

Every reading is optional: a machine without a thermal sensor, load average or the data
directory reports None for it, and nothing here raises — a missing figure must never cost the
booth its heartbeat. Readings outside what the protocol accepts (a broken sensor saying
-273 °C) are dropped too, for the same reason.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import time
from importlib import metadata
from pathlib import Path

from protocol import BoothHealth

log = logging.getLogger(__name__)

#: Where Linux lists its thermal zones (``thermal_zone0/temp`` in millidegrees Celsius).
THERMAL_DIR = Path("/sys/class/thermal")
#: The distribution whose version the booth reports.
PACKAGE = "videobooth"
#: Self-test names and the report's fields for them.
SELF_TESTS = {
    "camera": "camera_ok",
    "microphone": "microphone_ok",
    "speaker": "speaker_ok",
    "lights": "lights_ok",
}

# The protocol's bounds (protocol.messages.BoothHealth); a reading outside is no reading.
_TEMPERATURE_C = (-60.0, 150.0)
_LOAD = (0.0, 1000.0)
_DISK_MB = (0.0, 1e9)
_RTT_MS = (0.0, 600_000.0)
_MAX_UPTIME = 10 * 365 * 86_400.0


def collect_health(
    state: str,
    started_at: float,
    self_test: dict[str, bool | None],
    server_rtt_ms: float | None,
    *,
    data_dir: Path,
    thermal_dir: Path = THERMAL_DIR,
    package: str = PACKAGE,
    pin_driver: str | None = None,
    clock_synchronised: bool | None = None,
    audio_problem: str | None = None,
    slot: str | None = None,
    slot_good: bool | None = None,
) -> BoothHealth:
    """The booth's health now.

    ``state`` is the flow's state, ``started_at`` the :func:`time.monotonic` reading taken when
    the booth started, ``self_test`` the last self-test's results by device (``camera``,
    ``microphone``, ``speaker``, ``lights``; None or absent: not tested), ``server_rtt_ms`` the
    last measured round trip to the server, and ``data_dir`` the directory whose free space
    counts. ``pin_driver``, ``clock_synchronised`` and ``audio_problem`` are the platform's
    state (:mod:`kiosk.platform`); None: not known yet. ``slot`` and ``slot_good``: the root
    slot it runs from and whether it is marked good (None: no A/B slots).
    """
    results = {field: self_test.get(name) for name, field in SELF_TESTS.items()}
    return BoothHealth(
        version=package_version(package),
        uptime_seconds=min(max(time.monotonic() - started_at, 0.0), _MAX_UPTIME),
        cpu_temperature_c=_within(cpu_temperature(thermal_dir), _TEMPERATURE_C),
        load_1m=_within(load_1m(), _LOAD),
        disk_free_mb=_within(disk_free_mb(data_dir), _DISK_MB),
        camera_ok=results["camera_ok"],
        microphone_ok=results["microphone_ok"],
        speaker_ok=results["speaker_ok"],
        server_rtt_ms=_within(server_rtt_ms, _RTT_MS),
        state=state[:32] or "unknown",
        pin_driver=re.sub(r"[^a-z0-9]", "", (pin_driver or "").lower())[:16] or None,
        lights_ok=results["lights_ok"],
        clock_synchronised=clock_synchronised,
        audio_problem=audio_problem[:500] if audio_problem else None,
        slot=slot if slot in ("A", "B") else None,  # type: ignore[arg-type]
        slot_good=slot_good if slot in ("A", "B") else None,
    )


#: The booth image's release (``images/build --release``): the version an update bundle of the
#: image carries, so what a booth on an image reports is the release it runs.
RELEASE_FILE = Path("/usr/lib/videobooth/release")


def package_version(package: str = PACKAGE, *, release_file: Path = RELEASE_FILE) -> str:
    """The booth image's release where there is one, else the installed version of
    ``package``; "unknown" when neither is known."""
    try:
        release = release_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        release = ""
    if release and re.fullmatch(r"[0-9A-Za-z.+~_-]{1,64}", release):
        return release
    try:
        version = metadata.version(package)
    except (metadata.PackageNotFoundError, ValueError):
        return "unknown"
    return version[:64] or "unknown"


def cpu_temperature(thermal_dir: Path = THERMAL_DIR) -> float | None:
    """The CPU's temperature in °C: the first zone whose type names the CPU (or the SoC),
    else the first zone that reads at all; None without any."""
    try:
        zones = sorted(
            thermal_dir.glob("thermal_zone*"),
            key=lambda p: (len(p.name), p.name),  # thermal_zone2 before thermal_zone10
        )
    except OSError:
        return None
    first: float | None = None
    for zone in zones:
        celsius = _read_millidegrees(zone / "temp")
        if celsius is None:
            continue
        try:
            kind = (zone / "type").read_text(encoding="ascii", errors="replace").strip().lower()
        except OSError:
            kind = ""
        if "cpu" in kind or "soc" in kind:
            return celsius
        if first is None:
            first = celsius
    return first


def _read_millidegrees(path: Path) -> float | None:
    try:
        return int(path.read_text(encoding="ascii").strip()) / 1000.0
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def load_1m() -> float | None:
    """The one-minute load average; None where the system has none."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):  # AttributeError: no getloadavg on this platform
        return None


def disk_free_mb(data_dir: Path) -> float | None:
    """Free space for the booth's data in MiB; None when the directory cannot be examined."""
    try:
        return shutil.disk_usage(data_dir).free / (1024 * 1024)
    except (OSError, ValueError):
        return None


def _within(value: float | None, bounds: tuple[float, float]) -> float | None:
    if value is None or not math.isfinite(value) or not bounds[0] <= value <= bounds[1]:
        if value is not None:
            log.debug("dropped a reading of %r: outside %s", value, bounds)
        return None
    return float(value)
