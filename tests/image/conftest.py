"""The image test's marker (registered here so the test package is self-contained)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "image: builds the booth image and boots it under QEMU (minutes)"
    )
