"""The booth updates section of the administration page, in Chromium against a real server
that checks bundles with the real RAUC: a bundle with one flipped byte is refused with RAUC's
reason, a good one is listed; a rollout to a canary booth (a running booth that installs with
the fake installer) shows the booth's progress until it restarts the machine; the rollout is
then cancelled, and every step is in the audit log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.admin_pages import admin_page, server_with_admin
from tests.e2e.axe import audit as axe_audit
from tests.e2e.axe import no_violations
from tests.e2e.booth_screen import SCREENSHOTS, booth_config, running_booth
from tests.server.updates.bundles import key_pair, make_bundle

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

OUT = SCREENSHOTS / "admin-updates"


async def test_an_administrator_uploads_a_bundle_and_rolls_it_out_to_a_canary(
    browser: Any, tmp_path: Path
) -> None:
    key, cert = key_pair(tmp_path, "organisation")
    bundle = make_bundle(tmp_path, key, cert, version="2.0.0")
    flipped = tmp_path / "booth-2.0.0-flipped.raucb"
    data = bytearray(bundle.read_bytes())
    data[len(data) // 3] ^= 1
    flipped.write_bytes(bytes(data))
    server, password = server_with_admin(
        tmp_path,
        "[updates]",
        f'keyring = "{cert}"',
        'maintenance_window = "0:00-0:00"',
        "tick_seconds = 0.2",
    )
    credential = server.add_booth("Canary booth")
    config = booth_config(
        server.url, credential=credential, identity_dir=tmp_path / "booth", updates="fake"
    )
    try:
        async with running_booth(config, tmp_path / "screens") as screen:
            page = await admin_page(browser, server, password)
            # An altered bundle: refused, with RAUC's reason, and nothing listed.
            await page.locator("#bundle-file").set_input_files(str(flipped))
            await page.locator("#bundle-form button[type=submit]").click()
            await page.wait_for_selector("#notice.error")
            notice = str(await page.locator("#notice").text_content())
            assert "do not match its signature" in notice, notice
            assert await page.locator("#bundles tr").count() == 0

            await page.locator("#bundle-file").set_input_files(str(bundle))
            await page.locator("#bundle-form button[type=submit]").click()
            row = page.locator("#bundles tr", has_text="2.0.0")
            await row.wait_for()
            assert "O = Videobooth tests, CN = organisation" in str(await row.text_content())
            await page.screenshot(path=str(OUT / "uploaded.png"), full_page=True)

            await row.get_by_role("button", name="Roll out version 2.0.0").click()
            await page.locator("#rollout-canaries").select_option(label="Canary booth")
            await page.locator("#rollout-form button[type=submit]").click()
            rollout = page.locator("#rollouts tr", has_text="2.0.0")
            await rollout.wait_for()
            assert "running" in str(await rollout.text_content())
            await rollout.get_by_role("button", name="Show the rollout of version 2.0.0").click()
            booth_row = page.locator("#rollout-booths tr", has_text="Canary booth")
            await booth_row.wait_for()
            no_violations([await axe_audit(page, "admin: a rollout and its booths")])
            assert "canary" in str(await booth_row.text_content())
            # The booth downloads, installs (fake) and restarts the machine; the page follows.
            await page.wait_for_selector(
                "#rollout-booths tr[data-progress=rebooting]", timeout=60_000
            )
            await page.screenshot(path=str(OUT / "restarting.png"), full_page=True)
            await screen.until(
                lambda: screen.booth.exit_code == 4, "the booth to restart the machine"
            )

            await rollout.get_by_role("button", name="Cancel rollout of version 2.0.0").click()
            await page.wait_for_selector("#rollouts tr:has-text('cancelled')")
            await page.locator("#audit-form button[type=submit]").click()
            audit = str(await page.locator("#audit").text_content())
            for action in ("update.bundle_upload", "update.rollout_start", "update.rollout_cancel"):
                assert action in audit, audit
    finally:
        server.stop()
