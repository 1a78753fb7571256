"""Fixtures shared across the test packages."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# The throwaway PostgreSQL (a session fixture) for the storage tests.
pytest_plugins = ["tests.server.postgres"]

#: Set by scripts/test when the update test runs beside the other tests: while a ``solo`` test
#: runs, this file exists, and the update test's emulated booth is paused (QEMU's ``stop``: its
#: clocks stop with it), so the test measuring frames a second has the two cores to itself.
PAUSE_FILE = "VIDEOBOOTH_PAUSE_FILE"


@pytest.fixture(autouse=True)
def _solo(request: pytest.FixtureRequest) -> Iterator[None]:
    path = os.environ.get(PAUSE_FILE)
    if not path or request.node.get_closest_marker("solo") is None:
        yield
        return
    pause = Path(path)
    pause.write_text(request.node.nodeid + "\n")
    try:
        yield
    finally:
        pause.unlink(missing_ok=True)
