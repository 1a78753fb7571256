"""Regression tests for holes found in a security review, one module per hole: each shows
the abuse and that it fails. The in-process server and its helpers come from tests/server."""

from tests.server.conftest import Harness, MakeHarness, Peer, harness, make_harness

__all__ = ["Harness", "MakeHarness", "Peer", "harness", "make_harness"]
