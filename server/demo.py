"""``videobooth-demo``: the whole system on one machine (server, relay if present, one booth).

It first checks that the ports it needs on 127.0.0.1 are free (a second demo on a busy port
would otherwise talk to the first one's server), then prepares a data folder (SQLite database,
a demo advisor, a demo booth), starts coturn on 127.0.0.1 when it is installed, the server, and
a booth showing the test pattern, and prints the advisor's address once its own server answers.
Ctrl-C stops everything it started, in reverse order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from server.config import ServerConfig
from server.relay import RelaySettings, coturn_config
from server.storage import (
    Database,
    create_booth,
    create_user,
    get_booth_by_name,
    get_user_by_username,
    revoke_booth,
    set_password,
)

log = logging.getLogger("demo")

ADVISOR = "advisor"
BOOTH = "Demo booth"
#: The demo's processes listen on this address only.
HOST = "127.0.0.1"


class DemoError(Exception):
    """The demo cannot start; the message says why and what to do."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def port_taken(port: int, kind: socket.SocketKind = socket.SOCK_STREAM) -> bool:
    """Whether something already uses ``port`` of 127.0.0.1 (TCP, or UDP with ``kind``).

    TCP is bound like the server binds (address reuse on), so a port left in TIME_WAIT by a
    demo that just stopped counts as free, as it is for the server.
    """
    with socket.socket(socket.AF_INET, kind) as sock:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def check_ports(server_port: int, relay_port: int | None) -> None:
    """Raise :class:`DemoError` naming the first port the demo needs that is taken."""
    if port_taken(server_port):
        raise DemoError(
            f"TCP port {server_port} on {HOST} is taken, so the server cannot start there (is "
            f"another Videobooth demo or server running?); stop it, or choose another port "
            f"with --port {server_port + 1}"
        )
    if relay_port is not None:
        for kind, name in ((socket.SOCK_DGRAM, "UDP"), (socket.SOCK_STREAM, "TCP")):
            if port_taken(relay_port, kind):
                raise DemoError(
                    f"{name} port {relay_port} on {HOST} is taken, so the relay cannot start "
                    "there; start the demo again (it picks a free relay port each time), or "
                    "leave the relay out with --relay off"
                )


async def _prepare(data_dir: Path, reset_password: bool) -> tuple[str | None, str]:
    """Ensure the demo advisor and booth exist; return (new password or None, credential)."""
    config = ServerConfig(data_dir=data_dir)
    db = await Database.open(config.effective_database_url)
    credential_file = data_dir / "booth-credential"
    try:
        password: str | None = None
        user = await get_user_by_username(db, ADVISOR)
        if user is None:
            password = secrets.token_urlsafe(12)
            await create_user(
                db, username=ADVISOR, password=password, role="advisor", display_name="Demo Advisor"
            )
        elif reset_password:
            password = secrets.token_urlsafe(12)
            await set_password(db, user.id, password)
        booth = await get_booth_by_name(db, BOOTH)
        if booth is None or booth.revoked_at is not None or not credential_file.exists():
            if booth is not None and booth.revoked_at is None:
                await revoke_booth(db, booth.id)
            name = BOOTH if booth is None else f"{BOOTH} {secrets.token_hex(2)}"
            _, credential = await create_booth(db, name)
            credential_file.write_text(credential)
            credential_file.chmod(0o600)
        return password, credential_file.read_text().strip()
    finally:
        await db.close()


def _wait_http(url: str, server: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait until ``server`` answers at ``url``; :class:`DemoError` when it stopped or stays
    silent (an answer while it is not running would come from someone else's server)."""
    deadline = time.monotonic() + timeout
    while True:
        code = server.poll()
        if code is not None:
            raise DemoError(f"the server stopped before it answered (exit code {code}); see above")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback
                if response.status == 200 and server.poll() is None:
                    return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise DemoError(f"the server does not answer at {url}: {exc}") from exc
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="videobooth-demo", description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path("data/demo"))
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--relay",
        choices=["auto", "off"],
        default="auto",
        help="start coturn on 127.0.0.1 when installed (default auto)",
    )
    parser.add_argument("--display", choices=["auto", "window", "headless"], default="auto")
    parser.add_argument(
        "--reset-password",
        action="store_true",
        help="give the demo advisor a new password and print it",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return _run(args)
    except DemoError as exc:
        print(f"videobooth-demo: {exc}", file=sys.stderr, flush=True)
        return 1


def _run(args: argparse.Namespace) -> int:
    turnserver = shutil.which("turnserver") if args.relay == "auto" else None
    turn_port = free_port() if turnserver else 0
    # Before anything is prepared or started: say which port is taken, and stop.
    check_ports(args.port, turn_port if turnserver else None)

    data_dir: Path = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    password, credential = asyncio.run(_prepare(data_dir, args.reset_password))

    server_toml = [f'data_dir = "{data_dir}"', f"port = {args.port}"]
    processes: list[tuple[str, subprocess.Popen[bytes]]] = []
    if turnserver:
        secret = secrets.token_hex(24)
        turn_conf = data_dir / "turnserver.conf"
        turn_conf.write_text(
            coturn_config(
                RelaySettings(
                    secret=secret,
                    port=turn_port,
                    min_port=49160,
                    max_port=49400,
                    allow_loopback=True,
                    log_file=data_dir / "turnserver.log",
                    pid_file=data_dir / "turnserver.pid",
                )
            )
        )
        turn_conf.chmod(0o600)
        server_toml += [
            'browser_ice_policy = "relay"',
            "[turn]",
            f'urls = ["turn:127.0.0.1:{turn_port}?transport=udp"]',
            f'secret = "{secret}"',
        ]
        processes.append(("relay", subprocess.Popen([turnserver, "-c", str(turn_conf)])))
        relay_text = f"coturn on 127.0.0.1:{turn_port} (booth relay-only)"
    else:
        relay_text = "none (install coturn for the production topology)"
    config_file = data_dir / "server.toml"
    config_file.write_text("\n".join(server_toml) + "\n")
    config_file.chmod(0o600)

    booth_file = data_dir / "booth.toml"
    booth_file.write_text(
        f'server_url = "http://{HOST}:{args.port}"\ncredential = "{credential}"\n'
        '[camera]\nkind = "test-pattern"\n'
    )
    booth_file.chmod(0o600)

    python = sys.executable
    try:
        server = subprocess.Popen([python, "-m", "server", "--config", str(config_file), "serve"])
        processes.append(("server", server))
        _wait_http(f"http://{HOST}:{args.port}/api/v1/health", server, timeout=30)
        processes.append(
            (
                "booth",
                subprocess.Popen(
                    [
                        python,
                        "-m",
                        "kiosk",
                        "--config",
                        str(booth_file),
                        "--repeat-call",
                        "--display",
                        args.display,
                    ]
                ),
            )
        )
        lines = [
            "",
            "Videobooth demo is running.",
            f"  Advisor page:  http://127.0.0.1:{args.port}/advisor/",
            f"  Username:      {ADVISOR}",
            f"  Password:      {password}  (shown once)"
            if password
            else "  Password:      as printed when the account was made "
            "(new one: videobooth-demo --reset-password)",
            f"  Relay:         {relay_text}",
            "  The demo booth waits for an advisor; accept it on the advisor page.",
            "  Press Ctrl-C to stop.",
            "",
        ]
        print("\n".join(lines), flush=True)
        return _supervise(processes)
    finally:
        _stop_all(processes)


def _supervise(processes: list[tuple[str, subprocess.Popen[bytes]]]) -> int:
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stop:
        for name, process in processes:
            code = process.poll()
            if code is not None:
                print(f"videobooth-demo: the {name} stopped (exit code {code})", file=sys.stderr)
                return 1
        time.sleep(0.3)
    print("stopping...", flush=True)
    return 0


def _stop_all(processes: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    for _name, process in reversed(processes):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        if process.poll() is None:
            process.kill()
            process.wait()


if __name__ == "__main__":
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    sys.exit(main())
