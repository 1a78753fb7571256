"""Finding the real components end-to-end tests need (Chromium, coturn).

Where one is missing the test is skipped with the reason, except in CI (``CI=true``), where a
missing component is a failure: CI must never pass by skipping what it was meant to prove.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream=fps=30",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require(path_or_name: str, why: str) -> str:
    """The component's path; skip (fail in CI) with a clear reason when it is missing."""
    found = path_or_name if os.path.isabs(path_or_name) else shutil.which(path_or_name)
    if found and os.access(found, os.X_OK):
        return found
    unavailable(f"{path_or_name} is not installed ({why}); install it with apt-get")


def unavailable(reason: str) -> NoReturn:
    """Skip with ``reason``; in CI fail instead: CI must not pass by skipping what it proves."""
    if in_ci():
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)
