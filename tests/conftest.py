"""Fixtures shared across the test packages."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.image.machine import PAUSE_FILE

# The throwaway PostgreSQL (a session fixture) for the storage tests.
pytest_plugins = ["tests.server.postgres"]


@pytest.fixture(autouse=True)
def _solo(request: pytest.FixtureRequest) -> Iterator[None]:
    """While a ``solo`` test runs, the file ``$VIDEOBOOTH_PAUSE_FILE`` names (set by scripts/test
    when the update test runs beside the others) exists, and the update test's emulated booth
    is paused (tests/image/machine.py: QEMU's ``stop``, its clocks stop with it), so the test
    measuring frames a second has the two cores to itself."""
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
