"""TURN over TLS: coturn started from `videobooth-server turn-config --tls-cert/--tls-key` with a
test certificate, and an ICE agent that gets a relay candidate over TLS with the credentials the
server hands out."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import secrets
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import aioice
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from server.config import TurnConfig
from server.turn import ice_servers_for
from tests.components import require
from tests.e2e.conftest import REPO, free_port, stop_process, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def _certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "relay.pem", folder / "relay.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


async def test_a_relay_candidate_over_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    turnserver = require("turnserver", "the TURN relay (Debian package coturn)")
    cert, key = _certificate(tmp_path)
    secret, port, tls_port = secrets.token_hex(24), free_port(socket.SOCK_DGRAM), free_port()
    server_toml = tmp_path / "server.toml"
    server_toml.write_text(
        f'[turn]\nurls = ["turns:127.0.0.1:{tls_port}?transport=tcp"]\nsecret = "{secret}"\n'
    )
    generated = subprocess.run(
        [
            sys.executable,
            "-m",
            "server",
            "--config",
            str(server_toml),
            "turn-config",
            "--port",
            str(port),
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
            "--tls-port",
            str(tls_port),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    ).stdout
    assert f"tls-listening-port={tls_port}" in generated
    assert "no-tls" not in generated.splitlines()
    log = tmp_path / "turn.log"
    conf = tmp_path / "turnserver.conf"
    conf.write_text(
        generated + f"log-file={log}\npidfile={tmp_path / 'turn.pid'}\nallow-loopback-peers\n"
        "min-port=49300\nmax-port=49400\nverbose\n"
    )
    process = subprocess.Popen(
        [turnserver, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_until(
            lambda: log.exists() and "listener opened on" in log.read_text(errors="replace"),
            10,
            "coturn to listen",
        )
        # The client trusts the test certificate, as a booth trusts the organisation's CA.
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        context = ssl.create_default_context(cafile=str(cert))
        _, writer = await asyncio.open_connection("127.0.0.1", tls_port, ssl=context)
        version = writer.get_extra_info("ssl_object").version()
        writer.close()
        assert version in ("TLSv1.2", "TLSv1.3")

        (server,) = ice_servers_for(
            TurnConfig(urls=(f"turns:127.0.0.1:{tls_port}?transport=tcp",), secret=secret),
            "session-1-booth",
        )
        agent = aioice.Connection(
            ice_controlling=True,
            turn_server=("127.0.0.1", tls_port),
            turn_username=server.username,
            turn_password=server.credential,
            turn_ssl=True,
            turn_transport="tcp",
            use_ipv6=False,
        )
        await asyncio.wait_for(agent.gather_candidates(), 20)
        relayed = [c for c in agent.local_candidates if c.type == "relay"]
        await agent.close()
        print(f"\nTURN over {version}: relay candidate {relayed[0].host}:{relayed[0].port}")
        assert relayed
        assert server.username is not None
        assert server.username.split(":", 1)[1] in log.read_text(errors="replace")
    finally:
        stop_process(process)
