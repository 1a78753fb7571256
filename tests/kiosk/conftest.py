"""Fixtures for booth tests: real aiortc peer connections on loopback."""

from __future__ import annotations

import aioice.ice
import pytest


@pytest.fixture
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice leaves 127.0.0.1 out of its host candidates; in-process peers need it."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
