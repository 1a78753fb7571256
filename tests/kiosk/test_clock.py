"""The booth's clock: synchronised or not, and a certificate refused because of it.

The server is a real TLS server on loopback whose certificate is valid only from tomorrow: to a
booth that trusts its CA, the handshake fails exactly as it does for a Pi whose clock stands at
1970. Which of the two it is, the booth learns from its clock reading (a stand-in here, so the
machine's clock is never touched).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kiosk.clock import (
    TIME_ERROR,
    ClockReading,
    ClockState,
    certificate_not_yet_valid,
    explain_connection_error,
    kernel_clock_status,
    read_clock,
)
from kiosk.identity import ServerAccess, ssl_setting
from kiosk.link import LinkState, ServerLink
from kiosk.technician import network_checks
from protocol import Heartbeat

EPOCH = ClockReading(
    ClockState.UNSYNCHRONISED,
    datetime(1970, 1, 1, 0, 0, 42, tzinfo=UTC),
    "before 2026-01-01: never set",
)


def synchronised_now() -> ClockReading:
    return ClockReading(ClockState.SYNCHRONISED, datetime.now(UTC), "the kernel says so")


# ---------------------------------------------------------------- reading the clock


def test_a_clock_before_the_release_is_not_set_whatever_the_kernel_says() -> None:
    reading = read_clock(now=lambda: 42.0, kernel_status=lambda: 0)
    assert reading.state is ClockState.UNSYNCHRONISED
    assert reading.reason == "before 2026-01-01: never set"
    assert (
        reading.describe() == "unsynchronised, 1970-01-01 00:00 UTC (before 2026-01-01: never set)"
    )


def test_the_kernel_or_timesyncd_says_whether_the_clock_is_synchronised(tmp_path: Path) -> None:
    now = datetime(2026, 12, 5, 12, tzinfo=UTC).timestamp()
    flag = tmp_path / "synchronized"
    synced = read_clock(now=lambda: now, kernel_status=lambda: 0, timesync_flag=flag)
    assert (synced.state, synced.reason) == (
        ClockState.SYNCHRONISED,
        "the kernel says so",
    )
    unsynced = read_clock(now=lambda: now, kernel_status=lambda: TIME_ERROR, timesync_flag=flag)
    assert (unsynced.state, unsynced.reason) == (
        ClockState.UNSYNCHRONISED,
        "the kernel says so; no time server yet",
    )
    flag.touch()
    by_timesyncd = read_clock(now=lambda: now, kernel_status=lambda: None, timesync_flag=flag)
    assert (by_timesyncd.state, by_timesyncd.reason) == (
        ClockState.SYNCHRONISED,
        "systemd-timesyncd says so",
    )


def test_the_kernel_status_is_read_without_root() -> None:
    # adjtimex with no changes: any user may ask; this machine answers one of TIME_OK..ERROR.
    assert kernel_clock_status() in range(TIME_ERROR + 1)
    assert read_clock().state in set(ClockState)


# ---------------------------------------------------------------- a certificate from tomorrow


@dataclass(frozen=True)
class FutureServer:
    url: str
    ca_file: Path


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA valid now and a server certificate for 127.0.0.1 valid only from tomorrow."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + timedelta(days=1))  # not valid yet
        .not_valid_after(now + timedelta(days=20))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = (directory / n for n in ("ca.pem", "cert.pem", "key.pem"))
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, cert_file, key_file


@pytest.fixture
async def future_server(tmp_path: Path) -> AsyncIterator[FutureServer]:
    ca_file, cert_file, key_file = _certificates(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    app = web.Application()
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield FutureServer(f"https://127.0.0.1:{port}", ca_file)
    finally:
        await runner.cleanup()


async def _link_problem(server: FutureServer, clock: ClockReading) -> str:
    """Why a booth that trusts the server's CA cannot connect, by its link's account."""
    access = ServerAccess(server.url, ssl=ssl_setting(server.ca_file, None), credential="b.s")
    offline = asyncio.Event()

    def on_state(state: LinkState) -> None:
        if state is LinkState.OFFLINE:
            offline.set()

    link = ServerLink(
        url=server.url.replace("https", "wss") + "/api/v1/ws",
        access=access,
        on_message=lambda message: None,
        on_state=on_state,
        heartbeat=lambda: Heartbeat(state="idle"),
        clock=lambda: clock,
    )
    task = asyncio.create_task(link.run())
    try:
        async with asyncio.timeout(10):
            await offline.wait()
    finally:
        await link.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert link.problem is not None
    return link.problem


async def test_a_certificate_not_yet_valid_on_an_unset_clock_is_clock_not_set(
    future_server: FutureServer, caplog: pytest.LogCaptureFixture
) -> None:
    problem = await _link_problem(future_server, EPOCH)
    assert problem == (
        "clock not set: the booth's clock says 1970-01-01 00:00 UTC (before 2026-01-01: never "
        "set), so the server's certificate is not valid yet; give the booth a time server (NTP "
        "from DHCP, or the image's NTP setting): it connects by itself once its clock is set"
    )
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        f"cannot reach the server at {future_server.url.replace('https', 'wss')}/api/v1/ws: "
        f"{problem}"
    ]
    assert "certificate verify failed" not in problem


async def test_a_certificate_not_yet_valid_on_a_set_clock_blames_the_certificate(
    future_server: FutureServer,
) -> None:
    problem = await _link_problem(future_server, synchronised_now())
    assert problem.startswith(
        "the server's certificate is not valid yet, and the booth's clock is synchronised ("
    )
    assert problem.endswith("): the certificate's start date is wrong; renew it")
    assert "clock not set" not in problem


async def test_technician_mode_says_clock_not_set(future_server: FutureServer) -> None:
    access = ServerAccess(
        future_server.url, ssl=ssl_setting(future_server.ca_file, None), credential="b.s"
    )
    checks = await network_checks(access, clock=lambda: EPOCH)
    assert [(c.name, c.ok) for c in checks] == [("server", False)]
    assert checks[0].detail == (
        f"{future_server.url} cannot be reached: clock not set: give the booth a time server (NTP)"
    )


async def test_other_connection_errors_keep_their_own_words(future_server: FutureServer) -> None:
    # Trusting the system's store instead of the organisation's CA: an unknown issuer.
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectorCertificateError) as raised:
            await http.get(future_server.url)
    assert not certificate_not_yet_valid(raised.value)
    assert explain_connection_error(raised.value, EPOCH) == str(raised.value)
