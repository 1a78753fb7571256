"""Server configuration: a frozen, strict pydantic model read once from a TOML file and
command-line flags. Unknown keys are errors (a typo must not pass unnoticed), and every refusal
names the setting and why (:func:`config_from_mapping` turns pydantic's errors into one
:class:`ConfigError` line)."""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from protocol import IceTransportPolicy

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which setting and why."""


#: A number of seconds or hours: an integer or a float from TOML, never a boolean or a string.
Number = Annotated[float, Field(strict=True)]


def _one_or_many(value: Any) -> Any:
    """A single URL may be written without a list."""
    return [value] if isinstance(value, str) else value


def _ice_policy(value: Any) -> Any:
    if isinstance(value, IceTransportPolicy):
        return value
    try:
        return IceTransportPolicy(value)
    except ValueError:
        raise ValueError(f"must be 'all' or 'relay', not {value!r}") from None


Policy = Annotated[IceTransportPolicy, BeforeValidator(_ice_policy)]


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _relay_urls(urls: tuple[str, ...]) -> tuple[str, ...]:
    if not urls:
        raise ValueError("at least one turn: or turns: URL is required")
    for url in urls:
        if not url.startswith(("turn:", "turns:", "stun:")):
            raise ValueError(f"{url!r} is not a turn:, turns: or stun: URL")
    return urls


def _relay_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", value):
        raise ValueError(
            f"{value!r} is not a relay name: 1 to 64 letters, digits, '.', '_' or '-' "
            "(e.g. the relay's host name)"
        )
    return value


#: A relay's addresses: turn:, turns: or stun: URLs (one may be written without a list).
RelayUrls = Annotated[
    tuple[StrictStr, ...], BeforeValidator(_one_or_many), AfterValidator(_relay_urls)
]

#: The name of the one relay of a ``[turn]`` section that gives ``urls`` (logs, /metrics).
SINGLE_RELAY = "turn"


class RelayConfig(_Settings):
    """One coturn of the relay pool (a ``[[turn.relays]]`` table); the pool shares the
    secret."""

    #: Unique in the pool: the logs and /metrics name the relay by it.
    name: Annotated[StrictStr, AfterValidator(_relay_name)]
    urls: RelayUrls


class TurnConfig(_Settings):
    """The organisation's TURN relays (coturn with ``use-auth-secret``): one relay (``urls``)
    or a pool of several (``[[turn.relays]]``) sharing one secret. Each participant gets
    credentials for up to two healthy relays of the pool."""

    #: The one relay's addresses (a pool of one, named :data:`SINGLE_RELAY`) ...
    urls: RelayUrls | None = None
    #: ... or several relays, each with its name and addresses.
    relays: tuple[RelayConfig, ...] = ()
    secret: StrictStr = Field(repr=False)
    ttl_seconds: StrictInt = 2 * 3600
    #: How often the server tries an allocation on each relay.
    probe_seconds: Number = 5.0
    #: Failed probes in a row before a relay counts as down (one success brings it back).
    down_after_failures: StrictInt = 3

    @field_validator("secret")
    @classmethod
    def _long_secret(cls, secret: str) -> str:
        if len(secret) < 16:
            raise ValueError("use at least 16 characters (coturn static-auth-secret)")
        return secret

    @field_validator("ttl_seconds")
    @classmethod
    def _ttl(cls, seconds: int) -> int:
        if not 60 <= seconds <= 24 * 3600:
            raise ValueError("must be between 60 and 86400")
        return seconds

    @field_validator("probe_seconds")
    @classmethod
    def _probe_interval(cls, seconds: float) -> float:
        if not 0.5 <= seconds <= 300:
            raise ValueError("must be between 0.5 and 300")
        return seconds

    @field_validator("down_after_failures")
    @classmethod
    def _failures(cls, count: int) -> int:
        if not 1 <= count <= 100:
            raise ValueError("must be between 1 and 100")
        return count

    @model_validator(mode="after")
    def _one_relay_or_a_pool(self) -> TurnConfig:
        if self.urls is not None and self.relays:
            raise ValueError(
                "give either urls (one relay) or [[turn.relays]] tables (several), not both"
            )
        if self.urls is None and not self.relays:
            raise ValueError("give urls (one relay) or [[turn.relays]] tables (several)")
        names = [relay.name for relay in self.relays]
        for name in dict.fromkeys(n for n in names if names.count(n) > 1):
            raise ValueError(f"relays: the name {name!r} is given to more than one relay")
        return self

    @property
    def pool(self) -> tuple[RelayConfig, ...]:
        """The relays, in the order of the file: ``urls`` alone is a pool of one."""
        if self.urls is not None:
            return (RelayConfig(name=SINGLE_RELAY, urls=self.urls),)
        return self.relays

    @property
    def all_urls(self) -> tuple[str, ...]:
        """Every relay's addresses, in the order of the pool."""
        return tuple(url for relay in self.pool for url in relay.urls)


def _node_id(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", value):
        raise ValueError(
            f"{value!r} is not a node name: 1 to 64 letters, digits, '_' or '-' "
            "(it names the node's subjects on the bus; e.g. node1)"
        )
    return value


def _host_name() -> str:
    """This host's short name as a node name: the default node_id."""
    name = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname().split(".")[0])[:64]
    return name if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name) else "node"


class ClusterConfig(_Settings):
    """Several server nodes behind a load balancer: they share PostgreSQL and exchange live
    events over NATS. Without this section the server is one process with an in-process bus."""

    #: This node's name, unique in the cluster (logs, /metrics, who holds which connection).
    node_id: Annotated[StrictStr, AfterValidator(_node_id)] = Field(default_factory=_host_name)
    #: The NATS servers (nats:// or tls://); the client reconnects to any of them.
    nats_urls: Annotated[tuple[StrictStr, ...], BeforeValidator(_one_or_many)]
    #: A file holding the NATS authorisation token (kept out of this file and of the logs).
    nats_token_file: Path | None = None
    #: The CA that signed the NATS servers' certificates, for tls:// URLs.
    nats_ca_file: Path | None = None

    @field_validator("nats_urls")
    @classmethod
    def _nats_urls(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        if not urls:
            raise ValueError("at least one nats:// or tls:// URL is required")
        for url in urls:
            if not url.startswith(("nats://", "tls://")):
                raise ValueError(f"{url!r} is not a nats:// or tls:// URL")
        return urls


def _window(text: str) -> str:
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", text)
    if match is None or int(match[1]) > 23 or int(match[3]) > 23:
        raise ValueError(
            f"{text!r} is not a maintenance window: write HH:MM-HH:MM, e.g. 22:00-05:00"
        )
    if int(match[2]) > 59 or int(match[4]) > 59:
        raise ValueError(f"{text!r} is not a maintenance window: minutes 0-59")
    return text.strip()


class UpdatesConfig(_Settings):
    """Booth updates over the air: the certificate bundles must be signed with, and when
    booths may install them. Without this section bundles cannot be uploaded."""

    #: The organisation's signing certificate (PEM; the booth image trusts the same one).
    keyring: Path
    #: Where checked bundles are kept (default: updates/ in data_dir).
    folder: Path | None = None
    #: When a branch's booths may install, unless the branch says otherwise.
    maintenance_window: Annotated[StrictStr, AfterValidator(_window)] = "22:00-05:00"
    #: The largest bundle accepted, in MiB.
    max_bundle_mib: Annotated[StrictInt, _between(1, 65_536)] = 2048
    #: How often rollouts look at the fleet.
    tick_seconds: Annotated[Number, _between(0.05, 600)] = 10.0
    #: The rauc command that checks bundles (Debian's rauc package).
    rauc: StrictStr = "rauc"


def _claim_path(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_:/-]+(\.[A-Za-z0-9_:/-]+)*", value):
        raise ValueError(
            f"{value!r} is not a claim name (letters, digits, '_', ':', '/', '-'; a dotted "
            "path such as realm_access.roles reaches into an object)"
        )
    return value


ClaimPath = Annotated[StrictStr, AfterValidator(_claim_path)]


class OidcConfig(_Settings):
    """Single sign-on for staff with OpenID Connect (authorization code with PKCE): the
    organisation's identity provider says who an advisor or administrator is, and in which
    groups. Without this section staff log in with local passwords only."""

    #: The provider's issuer URL (its discovery document is under
    #: ``<issuer>/.well-known/openid-configuration``).
    issuer: StrictStr
    client_id: Annotated[StrictStr, Field(min_length=1, max_length=255)]
    #: A file holding the client secret (kept out of this file and of the logs).
    client_secret_file: Path
    #: The button on the login pages ("Sign in with ...").
    label: Annotated[StrictStr, Field(min_length=1, max_length=60)] = "the agency's login"
    scopes: tuple[StrictStr, ...] = ("openid", "profile", "email", "groups")
    #: The claim listing the person's groups or roles (a dotted path reaches into an object:
    #: ``realm_access.roles``), from the ID token or, if not there, the userinfo endpoint.
    groups_claim: ClaimPath = "groups"
    #: Members of these groups are administrators; of these, advisors. Someone in neither is
    #: refused, and an account made at an earlier login is disabled.
    admin_groups: tuple[StrictStr, ...] = ()
    advisor_groups: tuple[StrictStr, ...] = ()
    #: Topics from the same claim: a group ``<topic_prefix><topic name>`` gives that topic
    #: (None: topics are set on the admin pages, not at login).
    topic_prefix: StrictStr | None = None
    username_claim: ClaimPath = "preferred_username"
    name_claim: ClaimPath = "name"
    #: Whether local accounts may still log in with a password. With False only the accounts
    #: in ``break_glass`` may (an administrator for when the provider is down).
    local_passwords: StrictBool = True
    break_glass: tuple[StrictStr, ...] = ()
    #: The CA that signed the provider's certificate (the system's CAs otherwise).
    ca_file: Path | None = None

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, url: str) -> str:
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"{url!r} must be an https:// URL (http:// for tests only)")
        return url.rstrip("/")

    @field_validator("scopes")
    @classmethod
    def _openid_scope(cls, scopes: tuple[str, ...]) -> tuple[str, ...]:
        if "openid" not in scopes:
            raise ValueError("must include 'openid'")
        return scopes

    @model_validator(mode="after")
    def _some_group(self) -> OidcConfig:
        if not self.admin_groups and not self.advisor_groups:
            raise ValueError(
                "set admin_groups and/or advisor_groups: who may log in is decided by groups"
            )
        return self


def _address(value: str) -> str:
    if not re.fullmatch(r"[^@\s<>]{1,64}@[^@\s<>]{1,190}", value):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value


class MailConfig(_Settings):
    """Invitations by e-mail through the organisation's SMTP relay: the invitation with a
    calendar entry, a reminder before the appointment, and a message when it is moved or
    cancelled. Sent from a durable outbox in the database: an outage of the relay delays mail
    and loses none. Without this section advisors copy the invitation text by hand."""

    host: Annotated[StrictStr, Field(min_length=1)]
    port: StrictInt = 587
    #: "starttls" (port 587), "tls" (implicit TLS, port 465), or "none" (a relay on the same
    #: host or network that offers no TLS).
    security: Annotated[StrictStr, AfterValidator(_one_of("starttls", "tls", "none"))] = "starttls"
    username: StrictStr | None = None
    #: A file holding the relay password (kept out of this file and of the logs).
    password_file: Path | None = None
    #: The sender citizens see (and reply to, unless reply_to says otherwise).
    from_address: Annotated[StrictStr, AfterValidator(_address)]
    reply_to: Annotated[StrictStr, AfterValidator(_address)] | None = None
    #: Minutes before an appointment the reminder goes out (0: no reminder).
    reminder_minutes: Annotated[StrictInt, _between(0, 10_080)] = 60
    #: The CA that signed the relay's certificate (the system's CAs otherwise).
    ca_file: Path | None = None
    timeout_seconds: Annotated[Number, _between(1, 300)] = 30.0

    @model_validator(mode="after")
    def _login_complete(self) -> MailConfig:
        if (self.username is None) != (self.password_file is None):
            raise ValueError("username and password_file go together (or neither)")
        return self


#: Shortest metrics token: it guards figures about the service, so no guessable word.
MIN_METRICS_TOKEN_CHARS = 16


def _one_of(*choices: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(repr(c) for c in choices)}")
        return value

    return check


def _between(low: float, high: float) -> AfterValidator:
    """A range check, after the type's own."""

    def check(value: float) -> float:
        if not low <= value <= high:
            raise ValueError(f"must be between {low:g} and {high:g}")
        return value

    return AfterValidator(check)


class ServerConfig(_Settings):
    """Everything the server needs to start; the README's "Server configuration" lists each
    setting."""

    host: StrictStr = "127.0.0.1"
    port: StrictInt = 8080
    data_dir: Path = Path("data")
    database_url: StrictStr | None = None
    #: Set the ``Secure`` flag on the session cookie (required behind HTTPS; always on when
    #: public_url is https).
    cookie_secure: StrictBool = False
    session_hours: Number = 12.0
    heartbeat_seconds: Number = 15.0
    turn: TurnConfig | None = None
    #: ICE policy handed to booths; relay-only is the default whenever a relay exists.
    booth_ice_policy: Policy | None = None
    #: ICE policy handed to browsers (advisors); "relay" hides addresses on both sides.
    browser_ice_policy: Policy = IceTransportPolicy.ALL
    #: The address citizens reach the server at, for join links (default: as requested).
    public_url: StrictStr | None = None
    #: The organisation's time zone, for invitation texts.
    timezone: StrictStr = "Europe/Berlin"
    #: Audit events older than this are deleted (metadata only; data protection).
    audit_retention_days: Annotated[StrictInt, _between(1, 3650)] = 90
    #: Citizens may ask for an advisor now from their own browser (the page at /now/).
    walk_in_web: StrictBool = True
    #: How long a booth's one-time enrolment token is valid.
    enrolment_token_hours: Annotated[Number, _between(0.1, 720)] = 72.0
    #: The server's secret key (made on first start; default: server.key in data_dir).
    secret_key_file: Path | None = None
    #: Serve Prometheus figures at /metrics to requests bearing this token (None: no /metrics).
    metrics_token: StrictStr | None = Field(default=None, repr=False)
    #: How long a call waits for a participant whose connection was lost before it ends
    #: (0: a lost connection ends its call at once).
    resume_grace_seconds: Annotated[Number, _between(0, 3600)] = 60.0
    #: Citizens who may wait for an advisor now from their own browsers at once: in all, and
    #: from one address (a family or an office behind one router).
    walk_in_queue_limit: Annotated[StrictInt, _between(1, 100_000)] = 300
    walk_ins_per_address: Annotated[StrictInt, _between(1, 100)] = 3
    #: The reverse proxies (addresses or networks) whose X-Forwarded-For, -Proto and -Host
    #: headers name the client; from anyone else those headers are ignored.
    trusted_proxies: tuple[StrictStr, ...] = ()
    #: Several nodes sharing PostgreSQL and NATS (None: one process, the embedded default).
    cluster: ClusterConfig | None = None
    #: Booth updates (None: bundles cannot be uploaded).
    updates: UpdatesConfig | None = None
    #: Single sign-on for staff (None: local passwords only).
    oidc: OidcConfig | None = None
    #: Invitations by e-mail (None: advisors copy the invitation text).
    mail: MailConfig | None = None

    @model_validator(mode="after")
    def _cluster_shares_postgresql(self) -> ServerConfig:
        if self.cluster is not None and not (self.database_url or "").startswith("postgresql"):
            raise ValueError(
                "cluster: the nodes share one PostgreSQL database; set database_url to a "
                "postgresql+asyncpg:// URL"
            )
        return self

    @field_validator("port")
    @classmethod
    def _tcp_port(cls, port: int) -> int:
        if not 0 <= port <= 65535:
            raise ValueError(f"{port} is not a TCP port")
        return port

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("https://", "http://")):
            raise ValueError(f"{url!r} must start with https:// or http://")
        return None if url is None else url.rstrip("/")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{zone!r} is not a known time zone") from None
        return zone

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token(cls, token: str | None) -> str | None:
        # It travels in an Authorization header: visible ASCII, no spaces.
        if token is not None and (
            len(token) < MIN_METRICS_TOKEN_CHARS or not all("!" <= c <= "~" for c in token)
        ):
            raise ValueError(
                f"use at least {MIN_METRICS_TOKEN_CHARS} ASCII characters without spaces "
                "(e.g. from `openssl rand -hex 24`)"
            )
        return token

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, proxies: tuple[str, ...]) -> tuple[str, ...]:
        for entry in proxies:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or network (e.g. 10.0.2.10 or 10.0.2.0/24)"
                ) from None
        return proxies

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
        """A copy with the given settings replaced (None values are ignored), checked as the
        file's settings are."""
        update = {key: value for key, value in changes.items() if value is not None}
        try:
            return ServerConfig.model_validate(dict(self) | update)
        except ValidationError as exc:
            raise ConfigError(_message(exc)) from None


_TYPE_NAMES = {
    "int_type": "int",
    "bool_type": "bool",
    "string_type": "str",
    "float_type": "int or float",
    "dict_type": "a table",
    "model_type": "a table",
    "tuple_type": "a list",
    "path_type": "a path",
}


def _describe(error: ErrorDetails) -> str:
    """One pydantic error in this file's words: ``setting: what is wrong``."""
    loc = [str(part) for part in error["loc"] if not isinstance(part, int)]
    key = ".".join(loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        table = f" in [{'.'.join(loc[:-1])}]" if len(loc) > 1 else ""
        return f"unknown setting(s){table}: {loc[-1]}"
    if kind == "missing" and loc == ["turn", "secret"]:
        return "[turn] needs both urls and secret"
    if kind == "missing":
        return f"{key}: required"
    if kind in _TYPE_NAMES:
        return f"{key}: expected {_TYPE_NAMES[kind]}, got {error['input']!r}"
    if kind == "value_error":
        return f"{key}: {error['ctx']['error']}" if key else str(error["ctx"]["error"])
    return f"{key}: {error['msg']}"


def _message(exc: ValidationError) -> str:
    errors = exc.errors()
    unknown = [e for e in errors if e["type"] == "extra_forbidden" and len(e["loc"]) == 1]
    if unknown:  # every misspelt key at once, in the order of the alphabet
        return f"unknown setting(s): {', '.join(sorted(str(e['loc'][0]) for e in unknown))}"
    return "; ".join(dict.fromkeys(_describe(error) for error in errors))


def config_from_mapping(data: dict[str, Any]) -> ServerConfig:
    """Build a configuration from parsed TOML; unknown keys are errors (typos must not pass)."""
    try:
        return ServerConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_message(exc)) from None


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
