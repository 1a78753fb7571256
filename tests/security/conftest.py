"""Regression tests for holes found in a security review, one module per hole: each shows
the abuse and that it fails. The in-process server and its helpers come from tests/server, the
real processes (coturn, the server, booths, Chromium) from tests/e2e."""

from tests.e2e.conftest import browser, coturn, relayed_server, start_booth
from tests.server.conftest import Harness, MakeHarness, Peer, harness, make_harness

__all__ = [
    "Harness",
    "MakeHarness",
    "Peer",
    "browser",
    "coturn",
    "harness",
    "make_harness",
    "relayed_server",
    "start_booth",
]
