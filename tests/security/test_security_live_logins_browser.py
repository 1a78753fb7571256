"""In real Chromium: an advisor's open workspace is closed the moment an administrator disables
the account (it used to stay connected, take calls and get relay credentials), and it says why
on the login form; the same once its login has expired while the workspace was away."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from tests.e2e.conftest import Server, _run_cli, login_advisor

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

ENDED = "Your login has ended (logged out, expired or changed by an administrator)."


async def test_security_a_disabled_advisors_workspace_closes_in_chromium(
    relayed_server: Server, browser: Any
) -> None:
    advisor = await login_advisor(browser, relayed_server)
    password = secrets.token_urlsafe(16)
    _run_cli(
        [
            "--config",
            str(relayed_server.config),
            "user",
            "add",
            "root",
            "--role",
            "admin",
            "--password-stdin",
        ],
        stdin=password + "\n",
    )
    context = await browser.new_context()
    admin = context.request
    login = await admin.post(
        f"{relayed_server.url}/api/v1/auth/login", data={"username": "root", "password": password}
    )
    assert login.status == 200
    users = await (await admin.get(f"{relayed_server.url}/api/v1/users")).json()
    (advisor_id,) = [u["id"] for u in users["users"] if u["username"] == "advisor"]

    disabled = await admin.post(f"{relayed_server.url}/api/v1/users/{advisor_id}/disable", data={})
    assert disabled.status == 200
    await advisor.wait_for_selector("#login-view:not([hidden])", timeout=10_000)
    assert (await advisor.inner_text("#notice")).startswith(ENDED)
    assert await advisor.is_hidden("#queue-view")
    await context.close()


async def test_security_a_workspace_whose_login_expired_while_away_says_so(
    relayed_server: Server, browser: Any
) -> None:
    advisor = await login_advisor(browser, relayed_server)
    # The login ends while the workspace's socket is down (it was stopped with the server's
    # other connections): the next handshake is refused, and the page asks why.
    await advisor.context.clear_cookies()
    await advisor.evaluate("() => window.dispatchEvent(new Event('offline'))")
    relayed_server.stop()
    relayed_server.start()
    await advisor.wait_for_selector("#login-view:not([hidden])", timeout=20_000)
    assert (await advisor.inner_text("#notice")).startswith(ENDED)
