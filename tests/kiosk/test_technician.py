"""Technician mode's network check against a real server and a real coturn."""

from __future__ import annotations

import socket

from kiosk.identity import ServerAccess
from kiosk.technician import network_checks, relay_address, software_version
from server.config import TurnConfig
from tests.e2e.conftest import Coturn, coturn  # noqa: F401
from tests.server.conftest import MakeHarness, make_harness  # noqa: F401


def test_relay_addresses_from_turn_urls() -> None:
    assert relay_address("turn:turn.example.org:3478?transport=udp") == (
        "turn.example.org",
        3478,
        "udp",
    )
    assert relay_address("turns:turn.example.org:443?transport=tcp") == (
        "turn.example.org",
        443,
        "tcp",
    )
    assert relay_address("turn:10.0.0.5") == ("10.0.0.5", 3478, "udp")
    assert relay_address("https://example.org") is None


def test_software_version_is_the_package_version() -> None:
    assert software_version()[0].isdigit()


async def test_network_check_reaches_server_and_relay(
    make_harness: MakeHarness,  # noqa: F811
    coturn: Coturn,  # noqa: F811
) -> None:
    harness = await make_harness(turn=TurnConfig(urls=(coturn.url,), secret=coturn.secret))
    credential = await harness.add_booth("Technician booth")
    base = harness.url("/").rstrip("/")

    checks = await network_checks(ServerAccess(base, credential=credential))
    assert [(c.name, c.ok) for c in checks] == [
        ("server", True),
        ("credential", True),
        ("relay", True),
    ], checks
    assert "answers in" in checks[2].detail

    refused = await network_checks(ServerAccess(base, credential="not.valid"))
    assert [(c.name, c.ok) for c in refused] == [("server", True), ("credential", False)]

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    away = await network_checks(ServerAccess(f"http://127.0.0.1:{port}", credential=credential))
    assert [(c.name, c.ok) for c in away] == [("server", False)]
    assert "cannot be reached" in away[0].detail
