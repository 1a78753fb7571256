"""``bench/from_advisor.py`` runs: the advisor's stamped canvas reaches the booth's screen (read
off it by the booth's glass log) with either receiver, and a bare aiortc receiver; each path
reports frames with readable stamps.

The figures are printed, not asserted: tests never assert wall-clock speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.components import CHROMIUM, require

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(250)]

REPO = Path(__file__).resolve().parents[2]


def test_each_path_shows_the_advisor_s_frames() -> None:
    require("turnserver", "the TURN relay (Debian package coturn)")
    require(CHROMIUM, "the advisor's browser (Debian package chromium)")
    result = subprocess.run(
        [sys.executable, "bench/from_advisor.py", "--seconds", "2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    print(result.stdout)
    assert result.returncode == 0, result.stderr[-2000:]
    details = json.loads(result.stdout[result.stdout.index("\n{") :])
    assert set(details) == {"marker", "aiortc", "bare"}
    for path in details.values():
        assert path["frames"] > 10, details
        assert path["unreadable"] < path["frames"] // 2, details
        assert path["sender"]["codec"] in ("video/H264", "video/VP8")
    assert "advisor -> booth screen p99 ms" in result.stdout  # the table is printed
