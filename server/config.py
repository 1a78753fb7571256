"""Server configuration: a frozen dataclass read once from a TOML file and command-line flags."""

from __future__ import annotations

import ipaddress
import logging
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from protocol import IceTransportPolicy

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which setting and why."""


@dataclass(frozen=True)
class TurnConfig:
    """The organisation's TURN relay (coturn with ``use-auth-secret``)."""

    urls: tuple[str, ...]
    secret: str = field(repr=False)
    ttl_seconds: int = 2 * 3600

    def __post_init__(self) -> None:
        if not self.urls:
            raise ConfigError("turn.urls: at least one turn: or turns: URL is required")
        for url in self.urls:
            if not url.startswith(("turn:", "turns:", "stun:")):
                raise ConfigError(f"turn.urls: {url!r} is not a turn:, turns: or stun: URL")
        if len(self.secret) < 16:
            raise ConfigError("turn.secret: use at least 16 characters (coturn static-auth-secret)")
        if not 60 <= self.ttl_seconds <= 24 * 3600:
            raise ConfigError("turn.ttl_seconds: must be between 60 and 86400")


@dataclass(frozen=True)
class ServerConfig:
    """Everything the server needs to start; see ``docs/server-config.md``."""

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("data")
    database_url: str | None = None
    #: Set the ``Secure`` flag on the session cookie (required behind HTTPS; always on when
    #: public_url is https).
    cookie_secure: bool = False
    session_hours: float = 12.0
    heartbeat_seconds: float = 15.0
    turn: TurnConfig | None = None
    #: ICE policy handed to booths; relay-only is the default whenever a relay exists.
    booth_ice_policy: IceTransportPolicy | None = None
    #: ICE policy handed to browsers (advisors); "relay" hides addresses on both sides.
    browser_ice_policy: IceTransportPolicy = IceTransportPolicy.ALL
    #: The address citizens reach the server at, for join links (default: as requested).
    public_url: str | None = None
    #: The organisation's time zone, for invitation texts.
    timezone: str = "Europe/Berlin"
    #: Audit events older than this are deleted (metadata only; data protection).
    audit_retention_days: int = 90
    #: Citizens may ask for an advisor now from their own browser (the page at /now/).
    walk_in_web: bool = True
    #: How long a booth's one-time enrolment token is valid.
    enrolment_token_hours: float = 72.0
    #: The server's secret key (made on first start; default: server.key in data_dir).
    secret_key_file: Path | None = None
    #: Serve Prometheus figures at /metrics to requests bearing this token (None: no /metrics).
    metrics_token: str | None = field(default=None, repr=False)
    #: How long a call waits for a participant whose connection was lost before it ends
    #: (0: a lost connection ends its call at once).
    resume_grace_seconds: float = 60.0
    #: Citizens who may wait for an advisor now from their own browsers at once: in all, and
    #: from one address (a family or an office behind one router).
    walk_in_queue_limit: int = 300
    walk_ins_per_address: int = 3
    #: The reverse proxies (addresses or networks) whose X-Forwarded-For, -Proto and -Host
    #: headers name the client; from anyone else those headers are ignored.
    trusted_proxies: tuple[str, ...] = ()

    @property
    def https(self) -> bool:
        """Whether clients reach the server over HTTPS (its public_url says so)."""
        return (self.public_url or "").startswith("https://")

    @property
    def effective_cookie_secure(self) -> bool:
        return self.cookie_secure or self.https

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'videobooth.db').resolve()}"

    @property
    def effective_secret_key_file(self) -> Path:
        return self.secret_key_file or self.data_dir / "server.key"

    @property
    def effective_booth_ice_policy(self) -> IceTransportPolicy:
        if self.booth_ice_policy is not None:
            return self.booth_ice_policy
        return IceTransportPolicy.RELAY if self.turn else IceTransportPolicy.ALL

    def with_overrides(self, **changes: Any) -> ServerConfig:
        """A copy with the given settings replaced (None values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


_TOP_KEYS = {
    "host",
    "port",
    "data_dir",
    "database_url",
    "cookie_secure",
    "session_hours",
    "heartbeat_seconds",
    "resume_grace_seconds",
    "turn",
    "booth_ice_policy",
    "browser_ice_policy",
    "public_url",
    "timezone",
    "audit_retention_days",
    "walk_in_web",
    "walk_in_queue_limit",
    "walk_ins_per_address",
    "trusted_proxies",
    "secret_key_file",
    "enrolment_token_hours",
    "metrics_token",
}

#: Shortest metrics token: it guards figures about the service, so no guessable word.
MIN_METRICS_TOKEN_CHARS = 16


def _policy(value: Any, key: str) -> IceTransportPolicy:
    try:
        return IceTransportPolicy(value)
    except ValueError:
        raise ConfigError(f"{key}: must be 'all' or 'relay', not {value!r}") from None


def _typed(data: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = data[key]
    if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(f"{key}: expected {names}, got {value!r}")
    return value


def config_from_mapping(data: dict[str, Any]) -> ServerConfig:
    """Build a configuration from parsed TOML; unknown keys are errors (typos must not pass)."""
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    if "host" in data:
        kwargs["host"] = _typed(data, "host", str)
    if "port" in data:
        port = _typed(data, "port", int)
        if not 0 <= port <= 65535:
            raise ConfigError(f"port: {port} is not a TCP port")
        kwargs["port"] = port
    if "data_dir" in data:
        kwargs["data_dir"] = Path(_typed(data, "data_dir", str))
    if "database_url" in data:
        kwargs["database_url"] = _typed(data, "database_url", str)
    if "cookie_secure" in data:
        kwargs["cookie_secure"] = _typed(data, "cookie_secure", bool)
    if "session_hours" in data:
        kwargs["session_hours"] = float(_typed(data, "session_hours", (int, float)))
    if "heartbeat_seconds" in data:
        kwargs["heartbeat_seconds"] = float(_typed(data, "heartbeat_seconds", (int, float)))
    if "resume_grace_seconds" in data:
        grace = _typed(data, "resume_grace_seconds", (int, float))
        if not 0 <= grace <= 3600:
            raise ConfigError("resume_grace_seconds: must be between 0 and 3600")
        kwargs["resume_grace_seconds"] = float(grace)
    if "booth_ice_policy" in data:
        kwargs["booth_ice_policy"] = _policy(data["booth_ice_policy"], "booth_ice_policy")
    if "browser_ice_policy" in data:
        kwargs["browser_ice_policy"] = _policy(data["browser_ice_policy"], "browser_ice_policy")
    if "public_url" in data:
        url = _typed(data, "public_url", str)
        if not url.startswith(("https://", "http://")):
            raise ConfigError(f"public_url: {url!r} must start with https:// or http://")
        kwargs["public_url"] = url.rstrip("/")
    if "timezone" in data:
        zone = _typed(data, "timezone", str)
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"timezone: {zone!r} is not a known time zone") from None
        kwargs["timezone"] = zone
    if "audit_retention_days" in data:
        days = _typed(data, "audit_retention_days", int)
        if not 1 <= days <= 3650:
            raise ConfigError("audit_retention_days: must be between 1 and 3650")
        kwargs["audit_retention_days"] = days
    if "enrolment_token_hours" in data:
        hours = _typed(data, "enrolment_token_hours", (int, float))
        if not 0.1 <= hours <= 24 * 30:
            raise ConfigError("enrolment_token_hours: must be between 0.1 and 720")
        kwargs["enrolment_token_hours"] = float(hours)
    if "secret_key_file" in data:
        kwargs["secret_key_file"] = Path(_typed(data, "secret_key_file", str))
    if "metrics_token" in data:
        token = _typed(data, "metrics_token", str)
        # It travels in an Authorization header: visible ASCII, no spaces.
        if len(token) < MIN_METRICS_TOKEN_CHARS or not all("!" <= c <= "~" for c in token):
            raise ConfigError(
                f"metrics_token: use at least {MIN_METRICS_TOKEN_CHARS} ASCII characters "
                "without spaces (e.g. from `openssl rand -hex 24`)"
            )
        kwargs["metrics_token"] = token
    if "walk_in_web" in data:
        kwargs["walk_in_web"] = _typed(data, "walk_in_web", bool)
    for key, low, high in (("walk_in_queue_limit", 1, 100_000), ("walk_ins_per_address", 1, 100)):
        if key in data:
            value = _typed(data, key, int)
            if not low <= value <= high:
                raise ConfigError(f"{key}: must be between {low} and {high}")
            kwargs[key] = value
    if "trusted_proxies" in data:
        proxies = _typed(data, "trusted_proxies", list)
        for entry in proxies:
            try:
                ipaddress.ip_network(entry, strict=False)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"trusted_proxies: {entry!r} is not an IP address or network "
                    "(e.g. 10.0.2.10 or 10.0.2.0/24)"
                ) from None
        kwargs["trusted_proxies"] = tuple(str(entry) for entry in proxies)
    if "turn" in data:
        turn = _typed(data, "turn", dict)
        extra = sorted(set(turn) - {"urls", "secret", "ttl_seconds"})
        if extra:
            raise ConfigError(f"unknown setting(s) in [turn]: {', '.join(extra)}")
        if "urls" not in turn or "secret" not in turn:
            raise ConfigError("[turn] needs both urls and secret")
        urls = turn["urls"]
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise ConfigError("turn.urls: expected a list of URLs")
        kwargs["turn"] = TurnConfig(
            urls=tuple(urls),
            secret=str(turn["secret"]),
            ttl_seconds=int(turn.get("ttl_seconds", 2 * 3600)),
        )
    return ServerConfig(**kwargs)


def load_config(path: Path | None) -> ServerConfig:
    """Read ``path`` (TOML) or return the defaults when no file is given."""
    if path is None:
        return ServerConfig()
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return config_from_mapping(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
