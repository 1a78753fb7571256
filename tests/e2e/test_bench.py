"""``make bench`` still runs: a shortened ``./scripts/bench --quick`` (one booth call, one
citizen call, a three-second soak) writes its table and JSON.

The figures are printed, not asserted: tests never assert wall-clock speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.components import CHROMIUM, require

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(210)]

REPO = Path(__file__).resolve().parents[2]


def test_quick_bench_writes_every_figure(tmp_path: Path) -> None:
    require("turnserver", "the TURN relay (Debian package coturn)")
    require(CHROMIUM, "the advisor's browser (Debian package chromium)")
    output = tmp_path / "results.json"
    # bench/load/, bench/cluster/ and bench/relay.py have their own tests (tests/server/
    # test_load.py, tests/cluster/test_cluster_load.py, tests/server/test_relay_capacity.py);
    # the aiortc-only runs (CPU, latency) are bench/peer.py, which the set-up calls do not need;
    # bench/from_advisor.py has tests/e2e/test_from_advisor.py; bench/recovery.py's outages are
    # tests/e2e/test_faults.py's.
    args = ["--quick", "--skip", "cpu", "latency", "from-advisor", "load", "cluster", "relay"]
    args += ["recovery"]
    args += ["--calls", "1", "--hold-seconds", "1"]
    args += ["--soak-minutes", "0.05", "--soak-interval", "1"]
    result = subprocess.run(
        [sys.executable, "bench/run.py", *args, "--output", str(output)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )
    print(result.stdout)
    assert result.returncode == 0, result.stderr[-2000:]

    saved = json.loads(output.read_text())
    assert saved["command"].startswith("./scripts/bench --quick --skip cpu latency from-advisor")
    figures = [row["figure"] for row in saved["rows"]]
    for start in (
        "call set-up p50 s (1 calls), booth request -> 1st frame at advisor",
        "call set-up p95 s (1 calls), booth request -> 1st frame at booth",
        "relay CPU s/call-s, coturn, booth <-> Chromium",
        "soak 0.05 min: RSS growth MB, booth",
        "soak 0.05 min: RSS growth MB, chromium",
        "booth -> advisor (Chromium, audio on) glass-to-glass p99 ms",
        "booth -> advisor frames/s displayed",
    ):
        assert any(figure.startswith(start) for figure in figures), (start, figures)
    for row in saved["rows"]:
        assert set(row) == {"figure", "value", "reference", "reference_is", "ratio", "goal"}
    setup = saved["setup_seconds"]
    assert 0 < setup["booth"]["at_advisor"][0] < 30
    assert 0 < setup["citizen"]["at_caller"][0] < 30
    assert "call set-up p50" in result.stdout  # the table is printed


def test_glass_at_the_advisor_is_timed_by_the_presented_frame_s_rtp_timestamp() -> None:
    """bench/to_advisor.py: a picture read in a frame's callback that is another frame (a
    stamp one frame interval off) is counted, and the frame's own capture time is taken from
    its RTP timestamp; the 32-bit wraps of the stamp and of RTP cost nothing."""
    from bench.to_advisor import presented_latencies

    samples: list[list[int | None]] = []
    for n in range(11):
        captured = 2**32 - 100 + 33 * n  # the stamp's wall clock wraps in the middle
        rtp = (2**32 - 900 + 90 * 33 * n) % 2**32  # and so does RTP's
        shown = 7 * 2**32 + captured + 40 + (16 if n == 5 else 0)  # one frame a vsync later
        read = captured + (33 if n in (2, 8) else 0)  # two pictures of the next frame
        samples.append([shown, read % 2**32, rtp])
    latencies, mismatched = presented_latencies(samples)
    assert mismatched == 2
    assert latencies == [40] * 5 + [56] + [40] * 5
    # Without RTP timestamps (not every browser gives them) the stamps are taken as read.
    unstamped = [[shown, read, None] for shown, read, _ in samples]
    latencies, mismatched = presented_latencies(unstamped)
    assert mismatched == 0
    assert latencies[2] == 7 and latencies[5] == 56
