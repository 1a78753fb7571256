"""The relay capacity benchmark still measures (``bench/relay.py``, the ``relay`` part of
``make bench``): three calls through a real coturn (two TURN allocations each, media both ways
from two worker processes), and coturn's CPU over the window.

Asserted: media arrives both ways through the relay, the figures are there and positive, and
the table rows have ``bench/run.py``'s shape. The figures are printed, not compared with a
goal: tests never assert wall-clock speed. With ``CI=true`` a missing coturn fails the test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.relay import CapacitySettings, measure
from tests.components import require

pytestmark = pytest.mark.timeout(60)

#: Apart from the benchmark's relay ports, so that ``make bench`` and the tests can share a host.
SETTINGS = CapacitySettings(
    loads=(3,), seconds=3.0, warmup=0.5, workers=2, min_port=50500, max_port=50599
)


def test_calls_are_relayed_both_ways_and_coturn_cpu_is_measured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require("turnserver", "the TURN relay (Debian package coturn)")
    result = measure(SETTINGS, workdir=tmp_path)
    with capsys.disabled():
        print(f"\n--- relay capacity: {SETTINGS.media.describe()}")
        print(result.table())

    (point,) = result.points
    assert point.calls == 3
    assert point.workers == 2
    assert len(point.worker_cpu) == 2
    for sent, received in zip(point.sent, point.received, strict=True):
        assert sent > 0, result.table()
        # Both ways: a relay that passed one way only would show here. Not "all": a coturn
        # kept off the CPU by a busy CI machine for a moment drops what overflows its buffers.
        assert received >= 0.5 * sent, result.table()
    assert point.coturn_cpu > 0
    assert point.cores_per_call > 0
    assert point.delays_ms

    rows = result.rows()
    assert rows[0]["figure"] == "relay 3 calls: coturn CPU s/call-s (cores/call), A+V both ways"
    for row in rows:
        assert set(row) == {"figure", "value", "reference", "reference_is", "ratio", "goal"}
    (saved,) = result.details()["loads"]
    assert saved["sent"] == point.sent
    assert saved["cores_per_call"] == point.cores_per_call
