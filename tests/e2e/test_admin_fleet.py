"""An administrator manages a booth's whole life on the administration page, in Chromium
against a real server: adds it with its enrolment code, sees it enrol and come online, gives it
a new code (a replacement device), renames it and moves it to another branch, and revokes it.
A booth shown a code that was already used says so on its screen in its visitors' languages
and what to do, instead of the server's English message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kiosk.flow import LANGUAGES, QrCodeRead, State
from kiosk.i18n import load_catalogue
from tests.e2e.admin_pages import admin_page, server_with_admin
from tests.e2e.booth_screen import SCREENSHOTS, booth_config, running_booth
from tests.e2e.conftest import poll

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

OUT = SCREENSHOTS / "admin-fleet"


async def _row(page: Any, name: str) -> Any:
    return page.locator("#fleet tr", has_text=name)


async def _shown_code(page: Any) -> str:
    await page.wait_for_selector("#enrolment:not([hidden])")
    token = str(await page.locator("#enrolment-token").text_content())
    assert token.startswith("vbe_")
    assert await page.locator("#enrolment-qr").get_attribute("src")
    return token


async def test_an_administrator_adds_enrols_renews_moves_and_revokes_a_booth(
    browser: Any, tmp_path: Path
) -> None:
    server, password = server_with_admin(tmp_path)
    catalogue = load_catalogue()
    try:
        page = await admin_page(browser, server, password)
        # Two branches; the booth form offers the new ones at once, without reloading.
        for name, region in (("Mitte", "Berlin"), ("Nord", "Berlin")):
            await page.locator("#new-branch-name").fill(name)
            await page.locator("#new-branch-region").fill(region)
            await page.locator("#branch-form button[type=submit]").click()
            await page.wait_for_selector(f"#branches tr:has-text('{name}')")
        await page.locator("#booth-form").evaluate("form => form.closest('details').open = true")
        await page.locator("#new-booth-name").fill("Booth 1")
        await page.locator("#new-booth-branch").select_option(label="Mitte")
        await page.locator("#booth-form button[type=submit]").click()
        first_code = await _shown_code(page)
        row = await _row(page, "Booth 1")
        await row.wait_for()
        assert "Mitte" in str(await row.text_content())
        await page.screenshot(path=str(OUT / "added.png"), full_page=True)
        await page.locator("#enrolment-done").click()  # written down: the code goes
        assert await page.locator("#enrolment-token").text_content() == ""

        config = booth_config(server.url, enrolment_token=first_code, identity_dir=tmp_path / "a")
        async with running_booth(config, OUT) as first:
            await first.state(State.IDLE)  # enrolled with the code from the page

            async def online() -> bool:
                await page.locator("#fleet-filter button[type=submit]").click()
                return "Online" in str(await (await _row(page, "Booth 1")).text_content())

            await poll(online, 20, "the fleet to show the booth online")

            # The same code on a second device: spent. Its screen says what to do.
            spent = booth_config(
                server.url, enrolment_token=first_code, identity_dir=tmp_path / "b"
            )
            async with running_booth(spent, OUT) as second:
                await second.state(State.ENROLMENT)
                await second.until(
                    lambda: second.booth.flow.enrolment_problem is not None, "the refusal"
                )
                assert second.booth.flow.enrolment_problem == "token_used"
                assert "already used" in (second.booth.enrolment_problem or "")  # the log's
                for language in LANGUAGES:
                    path, texts = second.save(f"reused-code-{language}", language)
                    wanted = catalogue.text(language, "enrol.token_used")
                    assert wanted in texts, (language, texts)
                    assert not any("already used" in text for text in texts), texts
                    print(f"{language}: {path}")

                # A new code for the booth (a replacement device): the old one is gone.
                await (
                    (await _row(page, "Booth 1"))
                    .get_by_role("button", name="New enrolment code for Booth 1")
                    .click()
                )
                second_code = await _shown_code(page)
                assert second_code != first_code
                await page.screenshot(path=str(OUT / "new-code.png"), full_page=True)
                second.booth.post(QrCodeRead(second_code))  # held up to its camera
                await second.state(State.IDLE)
                assert second.booth.access.identity is not None
                # The device enrolled with the new code is now the booth; the first is out.
                await first.state(State.OUT_OF_SERVICE)

                # Renamed and moved to another branch.
                await (
                    (await _row(page, "Booth 1"))
                    .get_by_role("button", name="Edit Booth 1: rename or move")
                    .click()
                )
                await page.wait_for_selector("#booth-dialog[open]")
                await page.locator("#edit-booth-name").fill("Booth 1 Nord")
                await page.locator("#edit-booth-branch").select_option(label="Nord")
                await page.locator("#booth-edit-form button[type=submit]").click()
                moved = page.locator("#fleet tr", has_text="Booth 1 Nord")
                await moved.wait_for()
                assert "Nord" in str(await moved.locator("td").nth(1).text_content())
                await page.wait_for_selector(
                    "#branches tr:has-text('Nord') >> td:nth-child(3):text-is('1')"
                )

                # Revoked: gone from the fleet, and the booth can no longer log in.
                await moved.get_by_role("button", name="Revoke Booth 1 Nord").click()
                await page.wait_for_selector("#notice:has-text('revoked')")
                # The list is fetched again after the notice: wait for the row to go.
                await page.locator("#fleet tr", has_text="Booth 1 Nord").wait_for(state="detached")
                await second.state(State.OUT_OF_SERVICE)
                await page.screenshot(path=str(OUT / "revoked.png"), full_page=True)

        events = await page.evaluate(
            "async () => (await (await fetch('/api/v1/audit?limit=50')).json()).events"
            ".map(e => e.action)"
        )
        for action in ("booth.create", "booth.enrolment_token", "booth.update", "booth.revoke"):
            assert action in events, events
    finally:
        server.stop()


FOCUSED_CONTROL = """() => {
  const el = document.activeElement;
  const row = el && el.closest("#fleet tr");
  if (!row) return null;
  return { row: row.dataset.row, control: el.dataset.control, label: el.getAttribute("aria-label"),
           drawn: el.dataset.drawn || null, visible: el.matches(":focus-visible") };
}"""


async def test_the_fleet_refreshing_keeps_a_keyboard_users_place(
    browser: Any, tmp_path: Path
) -> None:
    """The list is drawn again every 15 s (the booths' heartbeats): a keyboard user on a row's
    control stays on it, even when another administrator renamed that booth meanwhile (its
    controls' accessible names changed)."""
    server, password = server_with_admin(tmp_path)
    try:
        # The page's 15 s refresh, run when the test says.
        page = await admin_page(browser, server, password, clock=True)
        ids = {}
        for name in ("Booth 1", "Booth 2", "Booth 3"):
            reply = await page.request.post(f"{server.url}/api/v1/booths", data={"name": name})
            assert reply.status == 201, await reply.text()
            ids[name] = (await reply.json())["booth"]["id"]
        await page.locator("#fleet-filter button[type=submit]").click()
        row = await _row(page, "Booth 2")
        await row.wait_for()
        # By keyboard: from Booth 2's history button, Tab to its next enabled control (Edit: an
        # offline booth's commands are disabled).
        await row.locator("[data-control=history]").focus()
        await page.keyboard.press("Tab")
        before = await page.evaluate(FOCUSED_CONTROL)
        assert before is not None and before["control"] == "edit", before
        assert before["row"] == ids["Booth 2"] and before["visible"], before
        await page.evaluate("() => { document.activeElement.dataset.drawn = 'before'; }")

        reply = await page.request.patch(
            f"{server.url}/api/v1/booths/{ids['Booth 2']}", data={"name": "Booth Two"}
        )
        assert reply.status == 200, await reply.text()
        await page.clock.run_for(16_000)
        await (await _row(page, "Booth Two")).wait_for()
        after = await page.evaluate(FOCUSED_CONTROL)
        assert after is not None, "the refresh threw the focus out of the list"
        assert (after["row"], after["control"]) == (ids["Booth 2"], "edit"), after
        assert after["drawn"] is None, "the list was not drawn again"
        assert after["label"] != before["label"] and "Booth Two" in after["label"], after

        # And Tab goes on from there, as in any list.
        await page.keyboard.press("Tab")
        moved = await page.evaluate(FOCUSED_CONTROL)
        assert moved is not None and moved["control"] == "new_code", moved
        await page.context.close()
    finally:
        server.stop()
