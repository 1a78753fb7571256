"""Server configuration: defaults, TOML, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocol import IceTransportPolicy
from server.config import ConfigError, ServerConfig, load_config


def test_defaults_are_loopback_sqlite_and_no_relay() -> None:
    config = load_config(None)
    assert (config.host, config.port, config.turn) == ("127.0.0.1", 8080, None)
    assert config.effective_database_url.startswith("sqlite+aiosqlite:///")
    assert config.effective_booth_ice_policy is IceTransportPolicy.ALL


def test_relay_makes_booths_relay_only(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text(
        'port = 9000\n[turn]\nurls = "turn:10.0.0.1:3478"\nsecret = "0123456789abcdef!"\n'
    )
    config = load_config(path)
    assert config.port == 9000
    assert config.turn is not None
    assert config.turn.urls == ("turn:10.0.0.1:3478",)
    assert config.effective_booth_ice_policy is IceTransportPolicy.RELAY
    assert "0123456789abcdef" not in repr(config)  # the secret stays out of logs


PG = 'database_url = "postgresql+asyncpg://videobooth@db.example.org/videobooth"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prot = 1\n", "unknown setting(s): prot"),
        ('port = "80"\n', "port: expected int"),
        ("port = 70000\n", "port: 70000 is not a TCP port"),
        ("cookie_secure = 1\n", "cookie_secure: expected bool"),
        ('booth_ice_policy = "sometimes"\n', "booth_ice_policy: must be 'all' or 'relay'"),
        ('[turn]\nurls = ["turn:x"]\n', "[turn] needs both urls and secret"),
        ('[turn]\nurls = ["http://x"]\nsecret = "0123456789abcdef"\n', "not a turn:"),
        ('[turn]\nurls = ["turn:x"]\nsecret = "short"\n', "at least 16 characters"),
        ("port = \n", "not valid TOML"),
        ('metrics_token = "short"\n', "metrics_token: use at least 16 ASCII characters"),
        ('metrics_token = "with spaces in the token"\n', "without spaces"),
        ("metrics_token = 1234567890123456\n", "metrics_token: expected str"),
        ('[turn]\nurls = "turn:x"\nsecret = "0123456789abcdef"\nttl = 5\n', "in [turn]: ttl"),
        ("audit_retention_days = 0\n", "audit_retention_days: must be between 1 and 3650"),
        ("walk_in_queue_limit = true\n", "walk_in_queue_limit: expected int, got True"),
        ('session_hours = "12"\n', "session_hours: expected int or float"),
        ('trusted_proxies = ["proxy"]\n', "trusted_proxies: 'proxy' is not an IP address"),
        ('timezone = "Mars/Olympus"\n', "timezone: 'Mars/Olympus' is not a known time zone"),
        ('[cluster]\nnats_urls = ["nats://10.0.1.5:4222"]\n', "share one PostgreSQL database"),
        (f'{PG}[cluster]\nnode_id = "a"\n', "cluster.nats_urls: required"),
        (f'{PG}[cluster]\nnats_urls = "http://x"\n', "'http://x' is not a nats:// or tls:// URL"),
        (f'{PG}[cluster]\nnats_urls = "nats://x"\nnode_id = "node 1"\n', "not a node name"),
    ],
)
def test_bad_settings_name_the_file_and_the_setting(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "server.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


SECRET = 'secret = "0123456789abcdef"\n'
RELAY_A = '[[turn.relays]]\nname = "a"\nurls = ["turn:10.0.0.1:3478"]\n'
RELAY_B = '[[turn.relays]]\nname = "b"\nurls = ["turn:10.0.0.2:3478", "turns:b.example:443"]\n'


def test_one_relay_is_a_pool_of_one(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text(f'[turn]\nurls = "turn:10.0.0.1:3478"\n{SECRET}')
    turn = load_config(path).turn
    assert turn is not None
    assert [(r.name, r.urls) for r in turn.pool] == [("turn", ("turn:10.0.0.1:3478",))]
    assert (turn.probe_seconds, turn.down_after_failures) == (5.0, 3)


def test_several_relays_share_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text(f"[turn]\n{SECRET}ttl_seconds = 600\nprobe_seconds = 2\n{RELAY_A}{RELAY_B}")
    config = load_config(path)
    assert config.turn is not None
    assert config.turn.urls is None
    assert [(r.name, r.urls) for r in config.turn.pool] == [
        ("a", ("turn:10.0.0.1:3478",)),
        ("b", ("turn:10.0.0.2:3478", "turns:b.example:443")),
    ]
    assert config.turn.all_urls == (
        "turn:10.0.0.1:3478",
        "turn:10.0.0.2:3478",
        "turns:b.example:443",
    )
    assert (config.turn.ttl_seconds, config.turn.probe_seconds) == (600, 2.0)
    assert config.effective_booth_ice_policy is IceTransportPolicy.RELAY
    assert "0123456789abcdef" not in repr(config)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"[turn]\n{SECRET}", "turn: give urls (one relay) or [[turn.relays]] tables (several)"),
        (
            f'[turn]\nurls = "turn:x"\n{SECRET}{RELAY_A}',
            "turn: give either urls (one relay) or [[turn.relays]] tables (several), not both",
        ),
        (
            f"[turn]\n{SECRET}{RELAY_A}{RELAY_A}",
            "turn: relays: the name 'a' is given to more than one relay",
        ),
        (f'[turn]\n{SECRET}[[turn.relays]]\nname = "a"\n', "turn.relays.urls: required"),
        (
            f'[turn]\n{SECRET}[[turn.relays]]\nname = "a"\nurls = []\n',
            "turn.relays.urls: at least one turn: or turns: URL is required",
        ),
        (
            f'[turn]\n{SECRET}[[turn.relays]]\nurls = "turn:x"\n',
            "turn.relays.name: required",
        ),
        (
            f'[turn]\n{SECRET}[[turn.relays]]\nname = "dc 1"\nurls = "turn:x"\n',
            "turn.relays.name: 'dc 1' is not a relay name",
        ),
        (
            f'[turn]\n{SECRET}[[turn.relays]]\nname = "a"\nurls = "http://x"\n',
            "turn.relays.urls: 'http://x' is not a turn:, turns: or stun: URL",
        ),
        (
            f'[turn]\n{SECRET}[[turn.relays]]\nname = "a"\nurls = "turn:x"\nport = 1\n',
            "unknown setting(s) in [turn.relays]: port",
        ),
        (
            f'[turn]\n{SECRET}[turn.relays]\nname = "a"\nurls = "turn:x"\n',
            "turn.relays: expected a list",
        ),
        (f"[turn]\n{SECRET}probe_seconds = 0\n{RELAY_A}", "turn.probe_seconds: must be between"),
        (
            f"[turn]\n{SECRET}down_after_failures = 0\n{RELAY_A}",
            "turn.down_after_failures: must be between 1 and 100",
        ),
        (f"[turn]\n{RELAY_A}", "[turn] needs both urls and secret"),
    ],
)
def test_bad_relay_pools_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "server.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"{path}: {message}" in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_overrides_ignore_unset_flags() -> None:
    config = ServerConfig().with_overrides(port=None, host="localhost")
    assert (config.host, config.port) == ("localhost", 8080)


def test_overrides_are_checked_as_the_file_is() -> None:
    with pytest.raises(ConfigError, match="port: 70000 is not a TCP port"):
        ServerConfig().with_overrides(port=70000)


def test_metrics_token_is_read_and_kept_out_of_logs(tmp_path: Path) -> None:
    assert load_config(None).metrics_token is None
    path = tmp_path / "server.toml"
    path.write_text('metrics_token = "0123456789abcdef0123"\n')
    config = load_config(path)
    assert config.metrics_token == "0123456789abcdef0123"
    assert "0123456789abcdef0123" not in repr(config)


def test_a_cluster_node_names_its_bus_and_itself(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text(
        f'{PG}[cluster]\nnode_id = "node-2"\nnats_urls = ["nats://10.0.1.5:4222", '
        '"nats://10.0.1.6:4222"]\nnats_token_file = "/etc/videobooth/nats.token"\n'
    )
    cluster = load_config(path).cluster
    assert cluster is not None
    assert cluster.node_id == "node-2"
    assert cluster.nats_urls == ("nats://10.0.1.5:4222", "nats://10.0.1.6:4222")
    assert cluster.nats_token_file == Path("/etc/videobooth/nats.token")
    assert load_config(None).cluster is None  # the embedded default: one process
