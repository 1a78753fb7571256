"""The identity tests' world: a real OpenID provider (node-oidc-provider, tests/identity/
oidc_provider.py) and a real server configured for single sign-on, with coturn for a booth's
call; Chromium from the end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import (
    Coturn,
    Server,
    _run_cli,
    browser,
    coturn,
    make_server,
    start_booth,
)
from tests.identity.oidc_provider import OidcProvider, oidc_provider
from tests.server.conftest import harness, make_harness

__all__ = ["SsoWorld", "browser", "coturn", "harness", "make_harness", "start_booth"]

ADVISORS, ADMINS = "videobooth-advisors", "videobooth-admins"
TOPIC_PREFIX = "videobooth-topic:"
#: The provider's people, by login name (its login page takes any password).
PEOPLE: dict[str, dict[str, Any]] = {
    "ada": {
        "name": "Ada Advisor",
        "preferred_username": "ada",
        "email": "ada@agency.example",
        "groups": [ADVISORS, "staff", f"{TOPIC_PREFIX}Pensions"],
    },
    "olga": {"name": "Olga Admin", "preferred_username": "olga", "groups": [ADMINS]},
    "nina": {"name": "Nina Nobody", "preferred_username": "nina", "groups": ["staff"]},
    # The provider calls her "root", as the server's local break-glass administrator is called.
    "rita": {"name": "Rita Root", "preferred_username": "root", "groups": [ADVISORS]},
}
LABEL = "Agency Login"


@dataclass
class SsoWorld:
    server: Server
    provider: OidcProvider
    accounts: Path
    #: The local break-glass administrator's password.
    root_password: str

    @contextlib.asynccontextmanager
    async def root(self) -> AsyncIterator[aiohttp.ClientSession]:
        """An HTTP client logged in as the local break-glass administrator."""
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            body = {"username": "root", "password": self.root_password}
            async with http.post(f"{self.server.url}/api/v1/auth/login", json=body) as r:
                assert r.status == 200, await r.text()
            yield http

    def set_groups(self, login: str, groups: list[str]) -> None:
        """What the provider says of ``login``'s groups from the next login on."""
        people = json.loads(self.accounts.read_text())
        people[login]["groups"] = groups
        self.accounts.write_text(json.dumps(people))


async def sso_world(
    tmp_path: Path, relay: Coturn | None, *, local_passwords: bool = True
) -> AsyncIterator[SsoWorld]:
    # The end-to-end tests' server (its port, relay and a local advisor), with [oidc] added.
    server = make_server(tmp_path, relay)
    base = server.url
    accounts = tmp_path / "accounts.json"
    accounts.write_text(json.dumps(PEOPLE))
    async with oidc_provider(
        redirect_uri=f"{base}/api/v1/auth/oidc/callback",
        post_logout_redirect_uri=f"{base}/advisor/",
        backchannel_logout_uri=f"{base}/api/v1/auth/oidc/backchannel-logout",
        accounts=accounts,
    ) as provider:
        secret_file = tmp_path / "oidc-client-secret"
        secret_file.write_text(provider.client_secret + "\n")
        secret_file.chmod(0o600)
        oidc = [
            "[oidc]",
            f'issuer = "{provider.issuer}"',
            f'client_id = "{provider.client_id}"',
            f'client_secret_file = "{secret_file}"',
            f'label = "{LABEL}"',
            f'advisor_groups = ["{ADVISORS}"]',
            f'admin_groups = ["{ADMINS}"]',
            f'topic_prefix = "{TOPIC_PREFIX}"',
            f"local_passwords = {'true' if local_passwords else 'false'}",
            'break_glass = ["root"]',
        ]
        with server.config.open("a") as config:
            config.write("\n".join(oidc) + "\n")
        password = secrets.token_urlsafe(16)
        add_root = ["user", "add", "root", "--role", "admin", "--password-stdin"]
        _run_cli(["--config", str(server.config), *add_root], stdin=password + "\n")
        server.start()
        world = SsoWorld(server, provider, accounts, password)
        async with (
            world.root() as root,  # the topic the provider's groups name
            root.post(f"{base}/api/v1/topics", json={"name": "Pensions"}) as r,
        ):
            assert r.status in (200, 201), await r.text()
        try:
            yield world
        finally:
            server.stop()
            if provider.log:
                print("\n[provider] " + "\n[provider] ".join(provider.log[-20:]))


@pytest.fixture
async def sso(tmp_path: Path, coturn: Coturn) -> AsyncIterator[SsoWorld]:
    async for world in sso_world(tmp_path, coturn):
        yield world


@pytest.fixture
async def sso_only(tmp_path: Path) -> AsyncIterator[SsoWorld]:
    """Local passwords turned off, but for the break-glass administrator."""
    async for world in sso_world(tmp_path, None, local_passwords=False):
        yield world
