"""The administration page in Chromium: a server with an administrator, and logging in."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Server, _run_cli, make_server

ADMIN = "admin1"


def server_with_admin(tmp_path: Path, *config_lines: str) -> tuple[Server, str]:
    """A started server (no relay) with the administrator ``admin1``; its password."""
    server = make_server(tmp_path, None)
    if config_lines:
        with server.config.open("a") as config:
            config.write("\n".join(config_lines) + "\n")
    password = secrets.token_urlsafe(16)
    _run_cli(
        [
            "--config",
            str(server.config),
            "user",
            "add",
            ADMIN,
            "--role",
            "admin",
            "--password-stdin",
        ],
        stdin=password + "\n",
    )
    server.start()
    return server, password


async def admin_page(
    browser: Any, server: Server, password: str, *, clock: bool = False, **context: Any
) -> Any:
    """A logged-in administration page; confirmation dialogs are answered yes. ``clock``: the
    page's timers run when the test says (Playwright's clock, installed before the page)."""
    page = await (await browser.new_context(**context)).new_page()
    if clock:
        await page.clock.install()
    page.on("console", lambda msg: print(f"[admin console] {msg.type}: {msg.text}"))
    page.on("pageerror", lambda error: print(f"[admin page error] {error}"))
    page.on("dialog", lambda dialog: dialog.accept())
    await page.goto(f"{server.url}/admin/")
    await page.locator("#username").fill(ADMIN)
    await page.locator("#password").fill(password)
    await page.locator("#login-form button[type=submit]").click()
    await page.wait_for_selector("#admin-view:not([hidden])")
    return page
