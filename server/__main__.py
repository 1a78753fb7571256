"""``videobooth-server``: run the server and manage its accounts and booths."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import ipaddress
import logging
import os
import re
import secrets
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from protocol.systemd import configure_logging
from server import heap
from server.app import create_app
from server.backup import BackupError, check_backup, create_backup, restore_backup
from server.config import ConfigError, ServerConfig, load_config
from server.keyfile import KeyFileError, load_or_create_key
from server.proxy import (
    DEFAULT_BUNDLE_MIB,
    BalancerSettings,
    Node,
    ProxySettings,
    haproxy_config,
    nginx_site,
)
from server.relay import RelaySettings, coturn_config
from server.storage import (
    Database,
    StorageError,
    create_booth,
    create_user,
    list_booths,
    migrate,
    revoke_booth,
)
from server.systemd import SystemdNotifier

log = logging.getLogger("server")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="videobooth-server",
        description="The Videobooth server: signalling, accounts and booths, on-premises.",
    )
    parser.add_argument("--config", type=Path, help="TOML configuration file (default: none)")
    parser.add_argument("--data-dir", type=Path, help="folder for the SQLite database")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port (default 8080)")

    commands.add_parser("migrate", help="bring the database schema up to date")

    turn = commands.add_parser(
        "turn-config",
        help="print a coturn configuration that matches this server's [turn] settings",
        description="Prints a turnserver.conf for one relay, with the server's turn.secret as "
        "coturn's static-auth-secret. With a pool of relays ([[turn.relays]]), run it once for "
        "each relay with that relay's own addresses: every relay shares the secret.",
    )
    turn.add_argument("--listening-ip", default="127.0.0.1", help="the relay's own address")
    turn.add_argument("--relay-ip", help="address relayed media leaves from (default: listening)")
    turn.add_argument("--port", type=int, default=3478, help="TURN port (default 3478)")
    turn.add_argument("--realm", default="videobooth", help="TURN realm (default videobooth)")
    turn.add_argument("--tls-cert", type=Path, help="certificate chain (PEM) for TURN over TLS")
    turn.add_argument("--tls-key", type=Path, help="its private key (PEM)")
    turn.add_argument("--tls-port", type=int, default=443, help="TURN over TLS port (443)")
    turn.add_argument(
        "--allow-peer",
        action="append",
        default=[],
        metavar="NETWORK",
        help="a private network the relay may reach (e.g. the advisors' office, 10.20.0.0/16); "
        "repeatable. Every private, loopback, link-local and CGNAT range is denied otherwise",
    )

    proxy = commands.add_parser(
        "proxy-config",
        help="print an nginx site or an HAProxy configuration: the TLS proxy in front of this "
        "server and its nodes",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=PROXY_HELP,
    )
    proxy.add_argument(
        "--kind",
        choices=["nginx", "haproxy"],
        default="nginx",
        help="nginx: a site for /etc/nginx/sites-available/ (default); haproxy: "
        "/etc/haproxy/haproxy.cfg, with active health checks of every node",
    )
    proxy.add_argument(
        "--server-name", help="nginx: the name clients use (default: the host of public_url)"
    )
    proxy.add_argument(
        "--certificate",
        type=Path,
        required=True,
        help="certificate chain (PEM); for haproxy the chain followed by its private key",
    )
    proxy.add_argument("--key", type=Path, help="nginx: the certificate's private key (PEM)")
    proxy.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="[NAME=]HOST:PORT",
        help="where the proxy reaches a server node; repeat it for each node (default: host and "
        "port of the config). NAME names the node in HAProxy's statistics (default node1, ...)",
    )
    proxy.add_argument(
        "--listen", help="what the proxy listens on (default: 443 for nginx, :443 for haproxy)"
    )

    user = commands.add_parser("user", help="advisor and administrator accounts")
    user_cmds = user.add_subparsers(dest="action", required=True, metavar="ACTION")
    add_user = user_cmds.add_parser("add", help="create an account")
    add_user.add_argument("username")
    add_user.add_argument("--name", help="display name shown to citizens")
    add_user.add_argument("--role", choices=["advisor", "admin"], default="advisor")
    add_user.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (else: ask, or generate with --generate)",
    )
    add_user.add_argument(
        "--generate", action="store_true", help="generate a password and print it once"
    )

    booth = commands.add_parser("booth", help="booths and their credentials")
    booth_cmds = booth.add_subparsers(dest="action", required=True, metavar="ACTION")
    add_booth = booth_cmds.add_parser("add", help="register a booth and print its credential once")
    add_booth.add_argument("name")
    booth_cmds.add_parser("list", help="list booths")
    revoke = booth_cmds.add_parser("revoke", help="revoke a booth's credential")
    revoke.add_argument("booth_id")

    backup = commands.add_parser(
        "backup",
        help="write the database and the server key into one archive (the server may run)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=BACKUP_HELP,
    )
    backup.add_argument(
        "-o",
        "--output",
        default=".",
        metavar="PATH",
        help="the archive file, or a folder for videobooth-backup-<UTC time>.tar "
        "(default: the current folder)",
    )
    backup.add_argument("--force", action="store_true", help="replace an archive of that name")

    restore = commands.add_parser(
        "restore",
        help="restore a backup archive into this configuration's database and key file",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=RESTORE_HELP,
    )
    restore.add_argument("archive", type=Path, help="the archive 'backup' wrote")
    restore.add_argument(
        "--force",
        action="store_true",
        help="replace the database and server key that are there (PostgreSQL: drop its tables)",
    )
    restore.add_argument(
        "--check", action="store_true", help="only read and check the archive; change nothing"
    )
    return parser


BACKUP_HELP = """\
Write one archive (a tar file, mode 0600) with everything this server cannot lose:
  - the database: SQLite copied with its online backup API, PostgreSQL with pg_dump
    (the password goes to pg_dump in a private file, never on its command line);
    branding (logo, colours, texts) is in the database and comes with it;
  - the server key (server.key), without which join codes already sent stop working;
  - a manifest: format, server version, schema revision, time, SHA-256 of every file.
The server may keep running. The archive holds personal data and the key: keep it where
only operators can read it, e.g.
  videobooth-server --config /etc/videobooth/server.toml backup -o /var/backups/videobooth/
"""

PROXY_HELP = """\
Print the proxy in front of the server, to be put in place by you:
  nginx (default): a site for Debian's nginx (/etc/nginx/sites-available/videobooth);
  haproxy: /etc/haproxy/haproxy.cfg for Debian's HAProxy, which checks every node's
    /api/v1/health every 2 s and takes a failing node out after three failed checks.
Either terminates HTTPS with the organisation's certificate (BSI TR-02102-2 settings), passes
the WebSocket upgrade, keeps idle signalling sockets open for an hour and replaces
X-Forwarded-For with the client's address. List the proxy's address in the server's
trusted_proxies. Several nodes: one --upstream for each, e.g.
  videobooth-server proxy-config --kind haproxy --certificate /etc/haproxy/video.pem \\
      --upstream vb1=10.0.1.10:8080 --upstream vb2=10.0.1.11:8080 > /etc/haproxy/haproxy.cfg
"""

RESTORE_HELP = """\
Restore an archive made by 'backup' into the database and key file that the configuration
names (--config, --data-dir). First the whole archive is checked (manifest, SHA-256 of every
file, a schema this server knows); a damaged archive changes nothing. An archive from an
older version is migrated. Stop the server first.

Without --force an existing database (PostgreSQL: one with tables) or server key is left
alone and the restore refused. PostgreSQL: create the empty database first (createdb -O
<role> <name>); the backup is loaded in one transaction, as the role in database_url.
Check a backup without restoring it: videobooth-server restore --check ARCHIVE
"""


async def _with_db(config: ServerConfig, work: Callable[[Database], Awaitable[int]]) -> int:
    config.data_dir.mkdir(parents=True, exist_ok=True)
    db = await Database.open(config.effective_database_url)
    try:
        return await work(db)
    finally:
        await db.close()


def _networks(values: list[str]) -> list[str]:
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ConfigError(
                f"--allow-peer: {value!r} is not a network (e.g. 10.20.0.0/16)"
            ) from None
    return values


def _upstreams(config: ServerConfig, args: argparse.Namespace) -> tuple[Node, ...]:
    """The nodes of ``--upstream [NAME=]HOST:PORT`` (default: this configuration's address)."""
    given = args.upstream or [f"{config.host}:{config.port}"]
    nodes = []
    for number, value in enumerate(given, start=1):
        name, _, address = value.rpartition("=")
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"--upstream: {value!r} is not HOST:PORT (e.g. 10.0.1.10:8080)")
        nodes.append(Node(name=name or f"node{number}", address=address))
    names = [node.name for node in nodes]
    if len(set(names)) != len(names) or not all(_NODE_NAME.fullmatch(n) for n in names):
        raise ConfigError(
            f"--upstream: node names must be distinct letters, digits, '.', '_' or '-': {names}"
        )
    return tuple(nodes)


_NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _proxy_config(config: ServerConfig, args: argparse.Namespace) -> str:
    nodes = _upstreams(config, args)
    bundle_mib = config.updates.max_bundle_mib if config.updates else DEFAULT_BUNDLE_MIB
    if args.kind == "haproxy":
        if args.key is not None:
            raise ConfigError(
                "proxy-config --kind haproxy: HAProxy reads the key from the certificate file; "
                "give --certificate a file with the chain followed by the key (cat chain.pem "
                "key.pem > video.pem; chmod 600 video.pem) and no --key"
            )
        return haproxy_config(
            BalancerSettings(
                nodes=nodes,
                certificate=args.certificate.resolve(),
                listen=args.listen or ":443",
                max_bundle_mib=bundle_mib,
            )
        )
    name = args.server_name or urlsplit(config.public_url or "").hostname
    if not name:
        raise ConfigError("proxy-config: give --server-name, or set public_url in the config")
    if args.key is None:
        raise ConfigError("proxy-config: nginx needs the certificate's private key: give --key")
    return nginx_site(
        ProxySettings(
            server_name=name,
            certificate=args.certificate.resolve(),
            key=args.key.resolve(),
            upstreams=tuple(node.address for node in nodes),
            listen=args.listen or "443",
            max_bundle_mib=bundle_mib,
        )
    )


def _read_password(args: argparse.Namespace) -> tuple[str, bool]:
    if args.generate:
        return secrets.token_urlsafe(15), True
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n"), False
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise SystemExit("videobooth-server: the passwords do not match")
    return first, False


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(args.log_level)
    # The relay probes allocate and release every few seconds: aioice's notes of each are not
    # news (a relay's change of state is logged once by server.relay_pool).
    logging.getLogger("aioice").setLevel(max(logging.WARNING, logging.root.level))
    try:
        config = load_config(args.config).with_overrides(data_dir=args.data_dir)
        if args.command == "serve":
            config = config.with_overrides(host=args.host, port=args.port)
    except ConfigError as exc:
        print(f"videobooth-server: {exc}", file=sys.stderr)
        return 2

    try:
        if args.command == "serve":
            return _serve(config, SystemdNotifier.from_environ(os.environ))
        if args.command == "turn-config":
            if config.turn is None:
                print("videobooth-server: the configuration has no [turn] section", file=sys.stderr)
                return 2
            print(
                coturn_config(
                    RelaySettings(
                        secret=config.turn.secret,
                        listening_ip=args.listening_ip,
                        relay_ip=args.relay_ip,
                        port=args.port,
                        realm=args.realm,
                        tls_cert=args.tls_cert,
                        tls_key=args.tls_key,
                        tls_port=args.tls_port,
                        allowed_peers=tuple(_networks(args.allow_peer)),
                    )
                ),
                end="",
            )
            return 0
        if args.command == "proxy-config":
            print(_proxy_config(config, args), end="")
            return 0
        if args.command == "migrate":
            asyncio.run(migrate(config.effective_database_url))
            print("database schema is up to date")
            return 0
        if args.command == "user":
            password, generated = _read_password(args)

            async def add_user(db: Database) -> int:
                user = await create_user(
                    db,
                    username=args.username,
                    password=password,
                    role=args.role,
                    display_name=args.name,
                )
                print(f"created {args.role} {user.username}")
                if generated:
                    print(f"password (shown once): {password}")
                return 0

            return asyncio.run(_with_db(config, add_user))
        if args.command == "booth":
            return asyncio.run(_with_db(config, lambda db: _booth(db, args)))
        if args.command == "backup":
            asyncio.run(create_backup(config, args.output, replace=args.force, progress=_say))
            return 0
        if args.command == "restore":
            if args.check:
                asyncio.run(check_backup(args.archive, progress=_say))
            else:
                asyncio.run(restore_backup(config, args.archive, replace=args.force, progress=_say))
            return 0
    except ConfigError as exc:
        print(f"videobooth-server: {exc}", file=sys.stderr)
        return 2
    except (StorageError, KeyFileError, BackupError) as exc:
        print(f"videobooth-server: {exc}", file=sys.stderr)
        return 1
    return 2


def _say(line: str) -> None:
    print(line, flush=True)


async def _booth(db: Database, args: argparse.Namespace) -> int:
    if args.action == "add":
        booth, credential = await create_booth(db, args.name)
        print(f"created booth {booth.name} ({booth.id})")
        print("credential for the booth's configuration (shown once):")
        print(credential)
        return 0
    if args.action == "list":
        for booth in await list_booths(db):
            status = "revoked" if booth.revoked_at else "active"
            print(f"{booth.id}  {booth.name}  {status}")
        return 0
    if args.action == "revoke":
        await revoke_booth(db, args.booth_id)
        print(f"revoked booth {args.booth_id}")
        return 0
    return 2


def _serve(config: ServerConfig, systemd: SystemdNotifier) -> int:
    systemd.status("starting: opening the database")
    # A missing or damaged key is said in one line before anything listens.
    config.data_dir.mkdir(parents=True, exist_ok=True)
    load_or_create_key(config.effective_secret_key_file)
    log.info(
        "relay: %s; booth ICE policy: %s",
        ", ".join(config.turn.all_urls) if config.turn else "none (direct ICE only)",
        config.effective_booth_ice_policy,
    )
    app = create_app(config)
    systemd.attach(app)
    url = f"http://{config.host}:{config.port}/"

    def listening(_: object) -> None:
        # run_app prints once every site listens: the moment a Type=notify unit is started.
        heap.settle()
        print(f"Videobooth server on {url}", flush=True)
        systemd.ready(f"listening on {url}")

    web.run_app(app, host=config.host, port=config.port, print=listening, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
