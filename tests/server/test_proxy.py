"""Behind the organisation's TLS proxy: the client's address, scheme and host come from the
proxy's X-Forwarded-* headers, and only when the request comes from a trusted proxy; the
same-origin check compares with public_url; cookies are Secure and HSTS is sent over HTTPS; the
rate limits count per client, not per proxy. And the generated nginx site is one nginx takes."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import aiohttp
import pytest

from server.config import ConfigError, config_from_mapping
from server.proxy import ProxySettings, nginx_site
from server.relay import RelaySettings, coturn_config
from tests.components import require
from tests.pki import TestCA
from tests.server.conftest import PASSWORD, MakeHarness

PUBLIC = "https://video.test"


def _from(client: str, *, proto: str = "https", origin: str = PUBLIC) -> dict[str, str]:
    """The headers nginx sends for a browser at ``client`` (proxy_config's site)."""
    return {
        "X-Forwarded-For": client,
        "X-Forwarded-Proto": proto,
        "X-Forwarded-Host": "video.test",
        "Origin": origin,
    }


async def _login(
    http: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    password: str = PASSWORD,
    username: str = "alice",
) -> aiohttp.ClientResponse:
    async with http.post(
        url, json={"username": username, "password": password}, headers=headers
    ) as response:
        await response.read()
        return response


async def test_behind_a_trusted_proxy_the_client_counts(
    make_harness: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    harness = await make_harness(trusted_proxies=("127.0.0.1",), public_url=PUBLIC)
    await harness.add_advisor("alice")
    url = harness.url("/api/v1/auth/login")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        with caplog.at_level(logging.INFO, logger="server.auth"):
            ok = await _login(http, url, _from("198.51.100.7"))
        assert ok.status == 200
        # HTTPS as the browser sees it: a Secure cookie, and HSTS.
        assert "Secure" in ok.headers["Set-Cookie"]
        assert ok.headers["Strict-Transport-Security"].startswith("max-age=")
        assert "logged in from 198.51.100.7" in caplog.text
        # Ten wrong logins from one client lock that client out ...
        for n in range(10):
            wrong = await _login(
                http, url, _from("198.51.100.66"), password="wrong!", username=f"guess{n}"
            )
            assert wrong.status == 401
        locked = await _login(http, url, _from("198.51.100.66"))
        assert locked.status == 429
        # ... and nobody else behind the same proxy.
        assert (await _login(http, url, _from("198.51.100.8"))).status == 200
        # The browser's origin is the proxy's https address; anything else is cross-site.
        elsewhere = _from("198.51.100.9", origin="https://evil.example")
        assert (await _login(http, url, elsewhere)).status == 403
        direct = _from("198.51.100.9", origin=harness.url("/").rstrip("/"))
        assert (await _login(http, url, direct)).status == 403


async def test_forwarded_headers_from_anyone_else_are_ignored(
    make_harness: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    # The proxy is elsewhere: this client's own X-Forwarded-For must not change who it is.
    harness = await make_harness(trusted_proxies=("10.9.9.9",), public_url=PUBLIC)
    await harness.add_advisor("alice")
    url = harness.url("/api/v1/auth/login")
    async with aiohttp.ClientSession() as http:
        with caplog.at_level(logging.INFO, logger="server.auth"):
            for n in range(10):
                wrong = await _login(
                    http, url, _from(f"198.51.100.{n + 1}"), password="wrong!", username=f"g{n}"
                )
                assert wrong.status == 401
        assert "failed login from 127.0.0.1" in caplog.text
        assert "198.51.100." not in caplog.text
        # All ten counted against the connection's own address, whatever the headers said.
        blocked = await _login(http, url, _from("198.51.100.99"))
        assert blocked.status == 429


async def test_without_a_proxy_and_public_url_nothing_changes(make_harness: MakeHarness) -> None:
    harness = await make_harness()
    await harness.add_advisor("alice")
    async with aiohttp.ClientSession() as http:
        response = await _login(
            http, harness.url("/api/v1/auth/login"), {"Origin": harness.url("/").rstrip("/")}
        )
    assert response.status == 200
    assert "Secure" not in response.headers["Set-Cookie"]
    assert "Strict-Transport-Security" not in response.headers


def test_trusted_proxies_are_addresses_or_networks() -> None:
    config = config_from_mapping({"trusted_proxies": ["10.0.2.10", "fd00:1::/64"]})
    assert config.trusted_proxies == ("10.0.2.10", "fd00:1::/64")
    with pytest.raises(ConfigError, match=r"trusted_proxies: 'proxy\.example' is not an IP"):
        config_from_mapping({"trusted_proxies": ["proxy.example"]})


def test_the_nginx_site_is_one_nginx_takes(tmp_path: Path) -> None:
    nginx = require("nginx", "the TLS proxy (Debian package nginx)")
    issued = TestCA(tmp_path / "pki").issue("video.test")
    site = nginx_site(
        ProxySettings(
            server_name="video.test",
            certificate=issued.certificate,
            key=issued.key,
            upstream="10.0.1.10:8080",
            listen="127.0.0.1:8443",
        )
    )
    for line in (
        "ssl_protocols TLSv1.2 TLSv1.3;",
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_read_timeout 3600s;",
    ):
        assert line in site
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  include {tmp_path}/site.conf;\n}}\n"
    )
    checked = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr


def test_the_relay_refuses_private_networks_but_its_own_address() -> None:
    text = coturn_config(
        RelaySettings(
            secret="s" * 24,
            listening_ip="203.0.113.5",
            allowed_peers=("10.20.0.0/16",),
        )
    )
    lines = text.splitlines()
    for denied in (
        "10.0.0.0-10.255.255.255",
        "172.16.0.0-172.31.255.255",
        "192.168.0.0-192.168.255.255",
        "100.64.0.0-100.127.255.255",
        "127.0.0.0-127.255.255.255",
        "169.254.0.0-169.254.255.255",
        "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    ):
        assert f"denied-peer-ip={denied}" in lines, denied
    assert "allowed-peer-ip=203.0.113.5" in lines
    assert "allowed-peer-ip=10.20.0.0-10.20.255.255" in lines
    assert {"no-tcp-relay", "no-multicast-peers"} <= set(lines)
