"""TURN REST credentials as coturn computes them."""

from __future__ import annotations

from server.config import TurnConfig
from server.turn import ice_servers_for, turn_credential


def test_credential_matches_coturn_reference_value() -> None:
    # Reference computed independently: printf '%s' '1700000000:alice' |
    #   openssl dgst -sha1 -hmac 'north' -binary | base64
    assert turn_credential("north", "1700000000:alice") == "Cd/49soE35ICqcJF/bCTn8Z4OyE="


def test_each_participant_gets_an_expiring_credential() -> None:
    turn = TurnConfig(urls=("turn:127.0.0.1:3478",), secret="s" * 16, ttl_seconds=600)
    (server,) = ice_servers_for(turn, "session-1", now=1_000)
    assert server.username == "1600:session-1"
    assert server.credential == turn_credential("s" * 16, "1600:session-1")
    assert ice_servers_for(None, "session-1") == []
