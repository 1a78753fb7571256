"""Deployment tests: the server as an agency runs it (behind its TLS proxy, in separate networks,
installed from its Debian package, backed up and restored). They start real programs (nginx,
coturn, PostgreSQL, Chromium, systemd in a guest) and need root; each module says what."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "deployment: the server as deployed (proxy, networks, package, backups)"
    )
