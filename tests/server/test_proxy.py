"""Behind the organisation's TLS proxy: the client's address, scheme and host come from the
proxy's X-Forwarded-* headers, and only when the request comes from a trusted proxy; the
same-origin check compares with public_url; cookies are Secure and HSTS is sent over HTTPS; the
rate limits count per client, not per proxy. And the generated nginx site and HAProxy
configuration are ones nginx and HAProxy take, for one node or several."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import aiohttp
import pytest

from server.__main__ import main
from server.config import ConfigError, config_from_mapping
from server.proxy import BalancerSettings, Node, ProxySettings, haproxy_config, nginx_site
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


def _nginx_takes(site: str, tmp_path: Path) -> None:
    nginx = require("nginx", "the TLS proxy (Debian package nginx)")
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


def test_the_nginx_site_is_one_nginx_takes(tmp_path: Path) -> None:
    issued = TestCA(tmp_path / "pki").issue("video.test")
    site = nginx_site(
        ProxySettings(
            server_name="video.test",
            certificate=issued.certificate,
            key=issued.key,
            upstreams=("10.0.1.10:8080",),
            listen="127.0.0.1:8443",
        )
    )
    for line in (
        "ssl_protocols TLSv1.2 TLSv1.3;",
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_read_timeout 3600s;",
        "client_max_body_size 1m;",
        # An update bundle (hundreds of MiB) passes, as it arrives, to its one endpoint only.
        "location = /api/v1/updates/bundles {",
        "client_max_body_size 2048m;",
        "proxy_request_buffering off;",
    ):
        assert line in site
    assert "least_conn;" not in site
    _nginx_takes(site, tmp_path)


def test_the_nginx_site_for_several_nodes_leaves_a_failing_one_alone(tmp_path: Path) -> None:
    issued = TestCA(tmp_path / "pki").issue("video.test")
    site = nginx_site(
        ProxySettings(
            server_name="video.test",
            certificate=issued.certificate,
            key=issued.key,
            upstreams=("10.0.1.10:8080", "10.0.1.11:8080", "10.0.1.12:8080"),
            listen="127.0.0.1:8443",
        )
    )
    upstream = site[site.index("upstream videobooth {") : site.index("}", site.index("upstream"))]
    assert upstream.splitlines()[1:] == [
        "    least_conn;",
        "    server 10.0.1.10:8080 max_fails=3 fail_timeout=10s;",
        "    server 10.0.1.11:8080 max_fails=3 fail_timeout=10s;",
        "    server 10.0.1.12:8080 max_fails=3 fail_timeout=10s;",
        "    keepalive 16;",
    ]
    assert "proxy_connect_timeout 5s;" in site
    _nginx_takes(site, tmp_path)


def _haproxy_takes(config: str, tmp_path: Path) -> None:
    haproxy = require("/usr/sbin/haproxy", "the load balancer (Debian package haproxy)")
    (tmp_path / "haproxy.cfg").write_text(config)
    checked = subprocess.run(
        [haproxy, "-c", "-f", str(tmp_path / "haproxy.cfg")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Configuration file is valid" in checked.stdout
    # Warnings are how HAProxy says a setting is ignored: none may be.
    assert "[WARNING]" not in checked.stdout + checked.stderr


def _combined_pem(tmp_path: Path) -> Path:
    issued = TestCA(tmp_path / "pki").issue("video.test")
    pem = tmp_path / "video.pem"
    pem.write_bytes(issued.certificate.read_bytes() + issued.key.read_bytes())
    return pem


def test_the_haproxy_config_is_one_haproxy_takes(tmp_path: Path) -> None:
    config = haproxy_config(
        BalancerSettings(
            nodes=(Node("vb1", "10.0.1.10:8080"), Node("vb2", "10.0.1.11:8080")),
            certificate=_combined_pem(tmp_path),
            listen="127.0.0.1:8443",
            stats_socket=tmp_path / "admin.sock",
        )
    )
    lines = [line.strip() for line in config.splitlines()]
    for line in (
        "ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets",
        f"bind 127.0.0.1:8443 ssl crt {tmp_path / 'video.pem'} alpn http/1.1",
        "http-request redirect scheme https code 301",
        # The client's address replaces whatever it sent, as the nginx site does.
        "http-request del-header X-Forwarded-For",
        "option forwardfor",
        "http-request set-header X-Forwarded-Proto https",
        "timeout tunnel 3600s",
        "timeout server 3600s",
        "balance leastconn",
        "option httpchk GET /api/v1/health",
        "http-check expect status 200",
        "default-server check inter 2000ms fall 3 rise 2 on-marked-down shutdown-sessions",
        "server vb1 10.0.1.10:8080",
        "server vb2 10.0.1.11:8080",
        "user haproxy",
        "http-request deny deny_status 413 if { req.hdr_val(content-length) gt 1048576 } "
        "!{ path /api/v1/updates/bundles }",
        "http-request deny deny_status 413 if { path /api/v1/updates/bundles } "
        "{ req.hdr_val(content-length) gt 2147483648 }",
    ):
        assert line in lines, line
    assert "timeout check" not in config  # a check may take as long as ``inter``
    _haproxy_takes(config, tmp_path)


def test_the_plain_haproxy_config_is_one_haproxy_takes(tmp_path: Path) -> None:
    # What the cluster tests run: plain HTTP, fast checks, no chroot.
    config = haproxy_config(
        BalancerSettings(
            nodes=(Node("a", "127.0.0.1:8081"),),
            certificate=None,
            listen="127.0.0.1:8080",
            balance="roundrobin",
            check_seconds=0.25,
            fall=2,
            rise=1,
            check_timeout_seconds=2.0,
            stats_socket=tmp_path / "admin.sock",
            system_user=None,
            source="127.0.0.2",
        )
    )
    assert "ssl" not in config
    assert "http-request set-header X-Forwarded-Proto http" in config
    assert "    default-server check inter 250ms fall 2 rise 1" in config
    assert "    timeout check 2000ms" in config  # a busy node has 2 s to answer a check
    _haproxy_takes(config, tmp_path)


def test_proxy_config_writes_haproxy_for_the_nodes_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pem = _combined_pem(tmp_path)
    code = main(
        [
            "proxy-config",
            "--kind",
            "haproxy",
            "--certificate",
            str(pem),
            "--upstream",
            "vb1=10.0.1.10:8080",
            "--upstream",
            "10.0.1.11:8080",
            "--listen",
            "127.0.0.1:8443",
        ]
    )
    assert code == 0
    config = capsys.readouterr().out
    assert "    server vb1 10.0.1.10:8080\n    server node2 10.0.1.11:8080\n" in config
    _haproxy_takes(config.replace("/run/haproxy/admin.sock", str(tmp_path / "s.sock")), tmp_path)


@pytest.mark.parametrize(
    ("arguments", "refusal"),
    [
        (["--kind", "haproxy", "--key", "k.pem"], "HAProxy reads the key from the certificate"),
        (["--upstream", "10.0.1.10"], "'10.0.1.10' is not HOST:PORT"),
        (["--upstream", "a=10.0.1.10:1", "--upstream", "a=10.0.1.11:1"], "must be distinct"),
        (["--server-name", "video.test"], "nginx needs the certificate's private key"),
    ],
)
def test_proxy_config_refuses_what_it_cannot_write(
    arguments: list[str], refusal: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["proxy-config", "--certificate", "c.pem", *arguments])
    assert code == 2
    assert refusal in capsys.readouterr().err


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
