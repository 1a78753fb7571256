"""TURN REST credentials as coturn computes them; which relays of the pool a participant gets;
the relays' health as the probes find it."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from server.__main__ import main
from server.config import RelayConfig, TurnConfig
from server.relay_pool import (
    RELAY_POOL,
    FakeProbe,
    RelayHealth,
    RelayPool,
    RelayProbeError,
    RelayState,
    TurnAllocateProbe,
    parse_relay_url,
    probe_target,
)
from server.turn import ice_servers_for, relay_order, turn_credential
from tests.server.conftest import MakeHarness

SECRET = "s" * 16
METRICS_TOKEN = "metrics-token-0123456789abcdef"


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nothing listens on (the kernel answers port unreachable)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pool_of(*names: str, **settings: object) -> TurnConfig:
    relays = tuple(RelayConfig(name=n, urls=(f"turn:{n}.example:3478",)) for n in names)
    return TurnConfig.model_validate({"relays": relays, "secret": SECRET, **settings})


def test_credential_matches_coturn_reference_value() -> None:
    # Reference computed independently: printf '%s' '1700000000:alice' |
    #   openssl dgst -sha1 -hmac 'north' -binary | base64
    assert turn_credential("north", "1700000000:alice") == "Cd/49soE35ICqcJF/bCTn8Z4OyE="


def test_each_participant_gets_an_expiring_credential() -> None:
    turn = TurnConfig(urls=("turn:127.0.0.1:3478",), secret="s" * 16, ttl_seconds=600)
    (server,) = ice_servers_for(turn, "session-1", now=1_000)
    assert server.username == "1600:session-1"
    assert server.credential == turn_credential("s" * 16, "1600:session-1")
    assert server.urls == ["turn:127.0.0.1:3478"]
    assert ice_servers_for(None, "session-1") == []


def test_a_participant_gets_two_relays_of_a_pool_with_one_credential() -> None:
    turn = pool_of("a", "b", "c", ttl_seconds=600)
    servers = ice_servers_for(turn, "s1-p1", now=1_000, spread_by="s1")
    assert len(servers) == 2
    assert {s.urls[0] for s in servers} < {"turn:a.example:3478", "turn:b.example:3478",
                                          "turn:c.example:3478"}  # fmt: skip
    assert {(s.username, s.credential) for s in servers} == {
        ("1600:s1-p1", turn_credential(SECRET, "1600:s1-p1"))
    }


def test_both_ends_of_a_call_get_the_same_order_and_calls_spread() -> None:
    turn = pool_of("a", "b", "c")
    first = [ice_servers_for(turn, f"s{i}-booth", spread_by=f"s{i}") for i in range(300)]
    other = [ice_servers_for(turn, f"s{i}-advisor", spread_by=f"s{i}") for i in range(300)]
    assert [[s.urls for s in one] for one in first] == [[s.urls for s in o] for o in other]
    preferred = Counter(servers[0].urls[0] for servers in first)
    assert set(preferred) == {"turn:a.example:3478", "turn:b.example:3478", "turn:c.example:3478"}
    assert min(preferred.values()) > 60  # about 100 each


def test_a_relay_down_is_left_out_and_moves_only_its_calls() -> None:
    turn = pool_of("a", "b", "c")
    before = {f"s{i}": relay_order(turn.pool, f"s{i}") for i in range(200)}
    for key, order in before.items():
        after = relay_order(turn.pool, key, down={"b"})
        assert [r.name for r in after] == [r.name for r in order if r.name != "b"]
        servers = ice_servers_for(turn, f"{key}-p", spread_by=key, down={"b"})
        assert [s.urls[0] for s in servers] == [r.urls[0] for r in after]


def test_one_relay_up_is_all_a_participant_gets() -> None:
    turn = pool_of("a", "b", "c")
    servers = ice_servers_for(turn, "s1-p", spread_by="s1", down={"a", "c"})
    assert [s.urls for s in servers] == [["turn:b.example:3478"]]


def test_every_relay_down_hands_out_all_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    turn = pool_of("a", "b")
    with caplog.at_level(logging.WARNING, logger="server.turn"):
        servers = ice_servers_for(turn, "s1-p", spread_by="s1", down={"a", "b"})
    assert sorted(s.urls[0] for s in servers) == ["turn:a.example:3478", "turn:b.example:3478"]
    assert "every relay is down (a, b): handing out all of them" in caplog.messages


def test_a_relay_goes_down_after_n_failures_and_up_after_one_success(
    caplog: pytest.LogCaptureFixture,
) -> None:
    health = RelayHealth("a", down_after=3)
    with caplog.at_level(logging.INFO, logger="server.relay_pool.health"):
        health.failed("no answer")
        health.failed("no answer")
        assert (health.state, health.failures) == (RelayState.UP, 2)
        health.succeeded()  # a success resets the count
        for _ in range(3):
            health.failed("refused (401 Unauthorized)")
        assert health.state is RelayState.DOWN
        health.failed("refused (401 Unauthorized)")
        health.succeeded()
        health.succeeded()
    assert health.state is RelayState.UP
    assert caplog.messages == [
        "relay a: up -> down (refused (401 Unauthorized))",
        "relay a: down -> up (an allocation succeeded)",
    ]


async def test_probes_use_short_lived_credentials_and_mark_relays() -> None:
    probe = FakeProbe()
    pool = RelayPool(pool_of("a", "b", down_after_failures=2), probe=probe, clock=lambda: 1_000)
    probe.fail("b", "turn:b.example:3478 (udp): Connection refused")
    await pool.probe_all()
    assert pool.states() == {"a": RelayState.UP, "b": RelayState.UP}
    await pool.probe_all()
    assert pool.states() == {"a": RelayState.UP, "b": RelayState.DOWN}
    assert pool.down() == {"b"}
    assert pool.health("b").reason == "turn:b.example:3478 (udp): Connection refused"
    assert [s.urls for s in pool.ice_servers_for("s1-p", spread_by="s1")] == [
        ["turn:a.example:3478"]
    ]
    name, username, password = probe.tried[0]
    assert (name, username) == ("a", "1060:probe-a")
    assert password == turn_credential(SECRET, "1060:probe-a")
    probe.heal("b")
    await pool.probe_all()
    assert pool.down() == frozenset()
    assert len(pool.ice_servers_for("s1-p", spread_by="s1")) == 2


async def test_a_relay_that_does_not_answer_fails_its_probe_in_time() -> None:
    probe = FakeProbe()
    pool = RelayPool(pool_of("a", "b", probe_seconds=0.5, down_after_failures=1), probe=probe)
    probe.hang("a")
    await asyncio.wait_for(pool.probe_all(), 2)  # the timeout is the interval here: 0.5 s
    assert pool.states() == {"a": RelayState.DOWN, "b": RelayState.UP}
    assert pool.health("a").reason == "no allocation within 0.5 s"


async def test_the_pool_probes_until_cancelled() -> None:
    probe = FakeProbe()
    pool = RelayPool(pool_of("a", probe_seconds=0.5), probe=probe)
    task = asyncio.create_task(pool.run())
    await asyncio.wait_for(probe.wait_for_tries(2), 5)  # the second half a second later
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("turn:10.0.0.1:3478?transport=udp", "turn:10.0.0.1:3478 (udp)"),
        ("turn:relay.example?transport=tcp", "turn:relay.example:3478 (tcp)"),
        ("turns:relay.example:443?transport=tcp", "turns:relay.example:443 (tcp)"),
        ("turns:relay.example", "turns:relay.example:5349 (tcp)"),
        ("stun:[2001:db8::1]:3479", "stun:[2001:db8::1]:3479 (udp)"),
        ("turn:", None),
        ("turn:host:port", None),
        ("http://relay.example", None),
    ],
)
def test_relay_urls_are_read_as_rfc_7065_says(url: str, target: str | None) -> None:
    parsed = parse_relay_url(url)
    assert (str(parsed) if parsed else None) == target


def test_a_probe_tries_turn_over_udp_first() -> None:
    urls = ("stun:r:3478", "turns:r:443?transport=tcp", "turn:r:3478?transport=udp")
    assert str(probe_target(urls)) == "turn:r:3478 (udp)"
    assert str(probe_target(urls[:2])) == "turns:r:443 (tcp)"
    assert str(probe_target(urls[:1])) == "stun:r:3478 (udp)"


async def test_a_closed_relay_port_fails_the_real_probe_at_once() -> None:
    port = free_udp_port()
    relay = RelayConfig(name="gone", urls=(f"turn:127.0.0.1:{port}?transport=udp",))
    with pytest.raises(RelayProbeError, match=rf"^turn:127.0.0.1:{port} \(udp\): .*refused"):
        await asyncio.wait_for(TurnAllocateProbe().check(relay, "1:probe", "x"), 2)


async def test_metrics_show_each_relay_up_or_down(make_harness: MakeHarness) -> None:
    port = free_udp_port()
    turn = TurnConfig(
        relays=(
            RelayConfig(name="gone", urls=(f"turn:127.0.0.1:{port}?transport=udp",)),
            RelayConfig(name="spare", urls=(f"turn:127.0.0.1:{port}?transport=tcp",)),
        ),
        secret=SECRET,
        probe_seconds=0.5,
        down_after_failures=2,
    )
    harness = await make_harness(turn=turn, metrics_token=METRICS_TOKEN)
    expected = {
        'videobooth_relays{relay="gone",state="up"} 0.0',
        'videobooth_relays{relay="gone",state="down"} 1.0',
        'videobooth_relays{relay="spare",state="up"} 0.0',
        'videobooth_relays{relay="spare",state="down"} 1.0',
    }
    async with aiohttp.ClientSession() as http:
        lines: set[str] = set()
        async with asyncio.timeout(10):
            while not expected <= lines:
                async with http.get(
                    harness.url("/metrics"), headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
                ) as response:
                    lines = set((await response.text()).splitlines())
                await asyncio.sleep(0.1)
        async with http.get(harness.url("/api/v1/health")) as response:
            assert response.status == 200
    pool = harness.app[RELAY_POOL]
    assert pool.health("gone").failures >= 2
    assert pool.health("spare").reason == f"turn:127.0.0.1:{port} (tcp): Connection refused"


def test_turn_config_prints_one_relay_of_a_pool(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "server.toml"
    config.write_text(
        f'[turn]\nsecret = "{SECRET}"\n'
        '[[turn.relays]]\nname = "turn1"\nurls = "turn:192.0.2.30:3478"\n'
        '[[turn.relays]]\nname = "turn2"\nurls = "turn:192.0.2.31:3478"\n'
    )
    argv = ["--config", str(config), "turn-config", "--listening-ip", "192.0.2.31"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"static-auth-secret={SECRET}" in lines
    assert "listening-ip=192.0.2.31" in lines
    assert "use-auth-secret" in lines
