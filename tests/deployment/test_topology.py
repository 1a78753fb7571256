"""An agency's deployment on one machine, in network namespaces the test makes:

- *dc* (10.81.1.0/24): the server and its PostgreSQL;
- *dmz* (10.81.2.0/24): nginx terminating HTTPS for ``video.test`` with a certificate from the
  organisation's CA (made here), and coturn with its relay address;
- *branch* (10.81.3.0/24): a headless booth whose firewall (nftables) lets it reach the proxy's
  443 and the relay's 3478 and nothing else;
- *office* (10.81.4.0/24): the advisor's Chromium;
- *internet* (198.51.100.0/24): a citizen's Chromium.

Browsers open ``https://video.test`` by name (host-resolver rules) and trust the CA from their
NSS database; no certificate error is ignored. Shown: the advisor logs in over HTTPS; a booth
call and a citizen's three-click join reach video both ways, relayed on both sides; the server's
log and rate limits see the clients' own addresses, not the proxy's; and the citizen's relay
credentials cannot reach the data centre (coturn refuses the permission).

Runs as root (namespaces, nftables); with ``CI=true`` a missing component fails the test.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from server.relay import RelaySettings, coturn_config
from tests.components import CHROMIUM, CHROMIUM_ARGS, require, unavailable
from tests.deployment.network import Network, Networks, run
from tests.e2e.conftest import REPO, BoothProcess, launch_booth, poll, stop_process, wait_until
from tests.e2e.journeys import PLAYING
from tests.pki import TestCA
from tests.server.postgres import _bindir

pytestmark = [pytest.mark.e2e, pytest.mark.deployment, pytest.mark.timeout(600)]

NAME = "video.test"
DC = Network("dc", "10.81.1", (10,))
DMZ = Network("dmz", "10.81.2", (10, 11))
BRANCH = Network("branch", "10.81.3", (10,))
OFFICE = Network("office", "10.81.4", (10,))
INTERNET = Network("internet", "198.51.100", (10,))
SERVER, PROXY, RELAY = DC.address(), DMZ.address(10), DMZ.address(11)
RELAY_PORTS = (49160, 49400)
PASSWORD = "advisor password 1234"

# The branch may reach the proxy's HTTPS and the relay's TURN port, and nothing else.
BRANCH_FIREWALL = f"""
table inet videobooth_branch {{
  chain output {{
    type filter hook output priority 0; policy drop;
    oif "lo" accept
    ct state established,related accept
    ip daddr {PROXY} tcp dport 443 accept
    ip daddr {RELAY} udp dport 3478 accept
  }}
}}
"""


@dataclass
class Deployment:
    networks: Networks
    ca: TestCA
    folder: Path
    server_log: Path
    config: Path
    turn_secret: str

    def cli(self, *args: str, stdin: str | None = None) -> str:
        """``videobooth-server`` in the data centre (it reaches the database there)."""
        command = [*self.networks.exec("dc"), sys.executable, "-m", "server"]
        return run([*command, "--config", str(self.config), *args], stdin=stdin)


def _postgres(networks: Networks, folder: Path) -> list[str]:
    """PostgreSQL on 127.0.0.1:5432 inside the data centre, its files in ``folder`` (one the
    postgres account can reach: not below pytest's root-only folders); the command that stops
    it."""
    bindir = _bindir()
    as_postgres = [*networks.exec("dc"), "runuser", "-u", "postgres", "--"]
    data = folder / "pg"
    shutil.chown(folder, user="postgres")
    run([*as_postgres, f"{bindir}/initdb", "-D", str(data), "-A", "trust", "-U", "postgres"])
    options = f"-p 5432 -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl = [*as_postgres, f"{bindir}/pg_ctl", "-D", str(data)]
    run([*pg_ctl, "-o", options, "-l", str(folder / "log"), "-w", "start"])
    run([*as_postgres, f"{bindir}/createdb", "-h", "127.0.0.1", "-p", "5432", "videobooth"])
    return [*pg_ctl, "-m", "immediate", "-w", "stop"]


def _nss(home: Path, ca: TestCA) -> None:
    """Chromium's own certificate database with the organisation's CA as a trusted root."""
    database = home / ".pki" / "nssdb"
    database.mkdir(parents=True)
    certutil = require("certutil", "Chromium's trust in the test CA (package libnss3-tools)")
    run([certutil, "-d", f"sql:{database}", "-N", "--empty-password"])
    run([certutil, "-d", f"sql:{database}", "-A", "-t", "C,,", "-n", "test CA", "-i", str(ca.path)])


def _in(networks: Networks, network: str, folder: Path) -> str:
    """A Chromium that runs in ``network`` (Playwright drives it over a pipe)."""
    script = folder / f"chromium-{network}"
    script.write_text(f'#!/bin/sh\nexec {" ".join(networks.exec(network))} {CHROMIUM} "$@"\n')
    script.chmod(0o755)
    return str(script)


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    if os.geteuid() != 0:
        unavailable("the deployment test makes network namespaces: run it as root")
    for tool, why in {
        "ip": "network namespaces (iproute2)",
        "nft": "the branch's firewall (nftables)",
        "nginx": "the TLS proxy (nginx)",
        "turnserver": "the relay (coturn)",
        "runuser": "PostgreSQL as its own account (util-linux)",
    }.items():
        require(tool, why)
    require(CHROMIUM, "the advisor's and the citizen's browser (chromium)")
    networks = Networks.make([DC, DMZ, BRANCH, OFFICE, INTERNET])
    processes: list[subprocess.Popen[bytes]] = []
    stop_postgres: list[str] = []
    postgres = Path(tempfile.mkdtemp(prefix="videobooth-dc-pg-"))
    try:
        ca = TestCA(tmp_path / "pki", name="Agency Test CA")
        stop_postgres = _postgres(networks, postgres)
        secret = secrets.token_hex(24)
        config = tmp_path / "server.toml"
        config.write_text(
            f'host = "{SERVER}"\nport = 8080\ndata_dir = "{tmp_path / "data"}"\n'
            'database_url = "postgresql+asyncpg://postgres@127.0.0.1:5432/videobooth"\n'
            f'public_url = "https://{NAME}"\ntrusted_proxies = ["{PROXY}"]\n'
            'browser_ice_policy = "relay"\n'
            f'[turn]\nurls = ["turn:{RELAY}:3478?transport=udp"]\nsecret = "{secret}"\n'
            "ttl_seconds = 600\n"
        )
        deployment = Deployment(networks, ca, tmp_path, tmp_path / "server.log", config, secret)
        deployment.cli(
            "user",
            "add",
            "advisor",
            "--name",
            "Alex Advisor",
            "--password-stdin",
            stdin=PASSWORD + "\n",
        )
        with deployment.server_log.open("wb") as log:
            processes.append(
                subprocess.Popen(
                    [
                        *networks.exec("dc"),
                        sys.executable,
                        "-m",
                        "server",
                        "--config",
                        str(config),
                        "serve",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=REPO,
                )
            )
        # The proxy: the site videobooth-server proxy-config writes, in a minimal nginx.
        issued = ca.issue(NAME)
        site = run(
            [
                sys.executable,
                "-m",
                "server",
                "--config",
                str(config),
                "proxy-config",
                "--certificate",
                str(issued.certificate),
                "--key",
                str(issued.key),
                "--upstream",
                f"{SERVER}:8080",
                "--listen",
                f"{PROXY}:443",
            ]
        )
        proxy = tmp_path / "nginx"
        proxy.mkdir()
        (proxy / "site.conf").write_text(site.replace("listen 80;", f"listen {PROXY}:80;"))
        (proxy / "nginx.conf").write_text(
            f"pid {proxy}/nginx.pid;\nerror_log {proxy}/error.log;\nevents {{}}\n"
            f"http {{\n  access_log {proxy}/access.log;\n  include {proxy}/site.conf;\n}}\n"
        )
        processes.append(
            subprocess.Popen(
                [
                    *networks.exec("dmz"),
                    "nginx",
                    "-p",
                    str(proxy),
                    "-c",
                    str(proxy / "nginx.conf"),
                    "-g",
                    "daemon off;",
                ],
                stderr=subprocess.DEVNULL,
            )
        )
        # The relay, with the configuration turn-config writes.
        relay_log = tmp_path / "turnserver.log"
        (tmp_path / "turnserver.conf").write_text(
            coturn_config(
                RelaySettings(
                    secret=secret,
                    listening_ip=RELAY,
                    relay_ip=RELAY,
                    port=3478,
                    realm=NAME,
                    min_port=RELAY_PORTS[0],
                    max_port=RELAY_PORTS[1],
                    log_file=relay_log,
                    pid_file=tmp_path / "turnserver.pid",
                    verbose=True,
                )
            )
        )
        processes.append(
            subprocess.Popen(
                [*networks.exec("dmz"), "turnserver", "-c", str(tmp_path / "turnserver.conf")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        wait_until(
            lambda: (
                relay_log.exists() and "listener opened on" in relay_log.read_text(errors="replace")
            ),
            15,
            "coturn to listen",
        )
        for network in ("branch", "office", "internet"):
            networks.hosts_file(network, {NAME: PROXY})
        wait_until(
            lambda: _answers(networks, "office", "/api/v1/health", ca),
            60,
            "the server to answer through the proxy",
        )
        networks.firewall("branch", BRANCH_FIREWALL)
        yield deployment
    finally:
        for process in reversed(processes):
            stop_process(process)
        if stop_postgres:
            subprocess.run(stop_postgres, capture_output=True, check=False)
        shutil.rmtree(postgres, ignore_errors=True)
        networks.close()


def _answers(networks: Networks, network: str, path: str, ca: TestCA) -> bool:
    done = subprocess.run(
        [*networks.exec(network), sys.executable, "-c", HTTPS_GET, path, str(ca.path)],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode == 0 and '"ok"' in done.stdout


# A client in its own network: HTTPS to video.test (its hosts file names the proxy), trusting
# the organisation's CA only.
HTTPS_GET = """
import ssl, sys, urllib.request
path, ca = sys.argv[1:3]
context = ssl.create_default_context(cafile=ca)
with urllib.request.urlopen("https://video.test" + path, context=context, timeout=5) as answer:
    print(answer.read().decode())
"""

# Logins from this network, each (username, password): the HTTP statuses.
LOGINS = """
import json, ssl, sys, urllib.error, urllib.request
ca, attempts = sys.argv[1], json.loads(sys.argv[2])
context = ssl.create_default_context(cafile=ca)
statuses = []
for username, password in attempts:
    request = urllib.request.Request("https://video.test/api/v1/auth/login", method="POST",
        data=json.dumps({"username": username, "password": password}).encode(),
        headers={"Content-Type": "application/json", "Origin": "https://video.test"})
    try:
        statuses.append(urllib.request.urlopen(request, context=context, timeout=10).status)
    except urllib.error.HTTPError as refused:
        statuses.append(refused.code)
print(json.dumps(statuses))
"""

# With a participant's relay credentials: a permission for a peer in the data centre, and one
# for the relay's own address (where participants meet).
TURN_ABUSE = """
import asyncio, json, sys
from aioice import stun
from aioice.turn import TurnClientUdpProtocol
relay, username, password, forbidden, allowed = sys.argv[1:6]

async def permission(protocol, address):
    request = stun.Message(message_method=stun.Method.CREATE_PERMISSION,
                           message_class=stun.Class.REQUEST)
    request.attributes["XOR-PEER-ADDRESS"] = (address, 9)
    try:
        await protocol.request_with_retry(request)
        return "granted"
    except stun.TransactionFailed as failed:
        return "refused %s %s" % failed.response.attributes["ERROR-CODE"]

async def main():
    loop = asyncio.get_running_loop()
    server = (relay, 3478)
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: TurnClientUdpProtocol(server, username, password, 600, 300), remote_addr=server)
    result = {"relayed": list(await protocol.connect())}
    result["forbidden"] = await permission(protocol, forbidden)
    result["allowed"] = await permission(protocol, allowed)
    transport.close()
    print(json.dumps(result))

asyncio.run(main())
"""


@pytest.fixture
async def browsers(deployment: Deployment, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    from playwright.async_api import async_playwright

    home = tmp_path / "home"
    _nss(home, deployment.ca)
    args = [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {NAME} {PROXY}"]
    async with async_playwright() as playwright:
        launched = {}
        for network in ("office", "internet"):
            launched[network] = await playwright.chromium.launch(
                executable_path=_in(deployment.networks, network, tmp_path),
                args=args,
                env={**os.environ, "HOME": str(home)},
            )
        try:
            yield launched
        finally:
            for browser in launched.values():
                await browser.close()


async def _page(browser: Any, who: str) -> Any:
    context = await browser.new_context(permissions=["camera", "microphone"])
    page = await context.new_page()
    page.on("console", lambda msg: print(f"[{who} console] {msg.type}: {msg.text}"))
    return page


async def _relayed_both_sides(advisor: Any, what: str) -> None:
    """The advisor's path to the caller: its own relay candidate to the caller's relay."""

    async def path() -> bool:
        types = await advisor.evaluate(
            "() => [document.getElementById('stat-path').dataset.localType,"
            " document.getElementById('stat-path').dataset.remoteType]"
        )
        return bool(types == ["relay", "relay"])

    await poll(path, 20, f"{what}: a relay-to-relay path")


async def _playing(page: Any, selector: str, what: str) -> None:
    await poll(lambda: page.evaluate(PLAYING, selector), 30, what)


async def test_deployment_behind_the_proxy_in_separate_networks(
    deployment: Deployment, browsers: dict[str, Any], tmp_path: Path
) -> None:
    networks = deployment.networks
    # The advisor logs in over HTTPS, by name, trusting the organisation's CA.
    advisor = await _page(browsers["office"], "advisor")
    await advisor.goto(f"https://{NAME}/advisor/")
    await advisor.get_by_label("Username").fill("advisor")
    await advisor.get_by_label("Password").fill(PASSWORD)
    await advisor.get_by_role("button", name="Log in").click()
    await advisor.wait_for_selector("#queue-view:not([hidden])")
    assert advisor.url == f"https://{NAME}/advisor/"

    # A booth in its branch, which reaches only the proxy and the relay, calls.
    assert _reaches(networks, "branch", PROXY, 443)
    for address, port in ((SERVER, 8080), (PROXY, 80), (OFFICE.address(), 22)):
        assert not _reaches(networks, "branch", address, port), f"{address}:{port}"
    credential = deployment.cli("booth", "add", "Branch 7 booth").strip().splitlines()[-1]
    booth_config = tmp_path / "booth.toml"
    booth_config.write_text(
        f'server_url = "https://{NAME}"\ncredential = "{credential}"\n'
        f'server_ca_file = "{deployment.ca.path}"\n[camera]\nkind = "test-pattern"\n'
    )
    booth = launch_booth(
        booth_config, tmp_path / "booth", "--call", wrapper=tuple(networks.exec("branch"))
    )
    try:
        await advisor.get_by_role("button", name="Accept call from Branch 7 booth").click(
            timeout=60_000
        )
        await _playing(advisor, "#remote-video", "the booth's video at the advisor")
        _booth_receives(booth)
        await _relayed_both_sides(advisor, "the booth call")
        await advisor.get_by_role("button", name="End call").click()
        await advisor.wait_for_selector("#queue-view:not([hidden])")
    finally:
        stop_process(booth.process)

    # A citizen on the internet joins an appointment in three clicks.
    created = await advisor.evaluate(
        """async () => {
          const starts = new Date(Date.now() + 60000).toISOString();
          const response = await fetch("/api/v1/appointments", {method: "POST",
            headers: {"Content-Type": "application/json"},
            body: JSON.stringify({starts_at: starts, duration_minutes: 30,
                                  channel: "own_device"})});
          return response.json();
        }"""
    )
    citizen = await _page(browsers["internet"], "citizen")
    frames: list[dict[str, Any]] = []
    citizen.on(
        "websocket", lambda ws: ws.on("framereceived", lambda p: frames.append(json.loads(p)))
    )
    await citizen.goto(created["join_link"])
    await citizen.get_by_role("button", name="Agree and turn on camera").click()
    await citizen.get_by_role("button", name="Join").click()
    await citizen.wait_for_selector("#lobby-view:not([hidden])")
    await advisor.get_by_role("button", name="Admit Citizen to the appointment").click(
        timeout=30_000
    )
    await _playing(citizen, "#remote-video", "the advisor's video at the citizen")
    await _playing(advisor, "#remote-video", "the citizen's video at the advisor")
    await _relayed_both_sides(advisor, "the citizen's call")

    # The citizen's relay credentials cannot reach into the data centre.
    started = next(m for m in frames if m["type"] == "call_started")
    server = started["ice_servers"][0]
    abuse = json.loads(
        run(
            [
                *networks.exec("internet"),
                sys.executable,
                "-c",
                TURN_ABUSE,
                RELAY,
                server["username"],
                server["credential"],
                SERVER,
                RELAY,
            ]
        )
    )
    print(f"\nthe citizen's credentials: {abuse}")
    assert abuse["forbidden"].startswith("refused 403"), abuse
    assert abuse["allowed"] == "granted", abuse
    await advisor.get_by_role("button", name="End call").click()

    # Rate limits and the log see the clients, not the proxy: ten wrong logins (other names
    # each, so no account is locked) lock out the internet's client, even with the right
    # password then, while the advisor in the office logs in as before.
    guesses = [[f"guess{n}", "wrong password"] for n in range(10)] + [["advisor", PASSWORD]]
    statuses = _logins(deployment, "internet", guesses)
    assert statuses == [401] * 10 + [429], statuses
    assert _logins(deployment, "office", [["advisor", PASSWORD]]) == [200]
    log = deployment.server_log.read_text(errors="replace")
    assert f"logged in from {OFFICE.address()}" in log
    assert f"failed login from {INTERNET.address()}" in log
    assert f"from {PROXY}" not in log


def _reaches(networks: Networks, network: str, address: str, port: int) -> bool:
    """Whether a TCP connection from ``network`` to ``address``:``port`` is let through (a
    refusal by the far end counts as through: the branch's firewall drops silently)."""
    probe = (
        "import socket, sys\n"
        "try:\n"
        f"    socket.create_connection(({address!r}, {port}), timeout=2).close()\n"
        "except ConnectionRefusedError:\n"
        "    pass\n"
        "except OSError:\n"
        "    sys.exit(1)\n"
    )
    command = [*networks.exec(network), sys.executable, "-c", probe]
    return subprocess.run(command, capture_output=True, check=False).returncode == 0


def _logins(deployment: Deployment, network: str, attempts: list[list[str]]) -> list[int]:
    ca = str(deployment.ca.path)
    command = [*deployment.networks.exec(network), sys.executable, "-c", LOGINS, ca]
    statuses: list[int] = json.loads(run([*command, json.dumps(attempts)]))
    return statuses


def _booth_receives(booth: BoothProcess) -> None:
    def check(status: dict[str, Any]) -> bool:
        call = status.get("call") or {}
        return bool(call.get("video_frames_received", 0) > 10)

    booth.wait_for(check, 40, "the advisor's video at the booth")
