"""Staff journeys in Chromium against a real server: changing one's own password; a password
an administrator generated, changed at the first login before anything else; the
administration page in German; topic names per language reaching the booth (Arabic) and the
citizens' page; the branch menus following new branches at once; times in the organisation's
zone on every page, and the appointment form's default start."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from kiosk.flow import Back, LanguageChosen, State
from server.app import STATIC_DIR
from tests.e2e.admin_pages import admin_page, server_with_admin
from tests.e2e.booth_screen import SCREENSHOTS, booth_config, running_booth
from tests.e2e.conftest import SERVER_ZONE, Server, appointment_start, poll

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

OUT = SCREENSHOTS / "staff"
NEW_PASSWORD = "a passphrase of my own choosing"


def _catalogue(language: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((STATIC_DIR / "i18n" / f"{language}.json").read_text())
    return data


async def _workspace(
    browser: Any, server: Server, username: str, password: str, **context: Any
) -> Any:
    page = await (
        await browser.new_context(permissions=["camera", "microphone"], **context)
    ).new_page()
    page.on("pageerror", lambda error: print(f"[advisor page error] {error}"))
    await page.goto(f"{server.url}/advisor/")
    await page.locator("#username").fill(username)
    await page.locator("#password").fill(password)
    await page.locator("#login-form button[type=submit]").click()
    return page


async def _change_password(page: Any, current: str, new: str, repeat: str | None = None) -> None:
    await page.wait_for_selector("#password-dialog[open]")
    await page.locator("#password-current").fill(current)
    await page.locator("#password-new").fill(new)
    await page.locator("#password-repeat").fill(repeat if repeat is not None else new)
    await page.locator("#password-submit").click()


async def test_a_user_changes_their_own_password(browser: Any, tmp_path: Path) -> None:
    server, _ = server_with_admin(tmp_path)
    try:
        laptop = await _workspace(browser, server, "advisor", server.advisor_password)
        await laptop.wait_for_selector("#queue-view:not([hidden])")
        page = await _workspace(browser, server, "advisor", server.advisor_password)
        await page.wait_for_selector("#queue-view:not([hidden])")
        await page.get_by_role("button", name="Change password").click()
        await _change_password(page, server.advisor_password, NEW_PASSWORD, "a typo in it")
        assert "differ" in await page.locator("#password-error").inner_text()
        await _change_password(page, "wrong current password", NEW_PASSWORD)
        await page.wait_for_selector("#password-error:has-text('not your current password')")
        await _change_password(page, server.advisor_password, NEW_PASSWORD)
        await page.wait_for_selector("#password-dialog", state="detached")
        await page.wait_for_selector("#notice:has-text('Your password is changed')")
        await page.screenshot(path=str(OUT / "password-changed.png"))
        # The other login has ended; this one goes on (its workspace takes calls).
        await laptop.wait_for_selector("#login-view:not([hidden])", timeout=10_000)
        assert await page.locator("#queue-view").is_visible()
        assert await page.evaluate("async () => (await fetch('/api/v1/me')).status") == 200

        old = await _workspace(browser, server, "advisor", server.advisor_password)
        await old.wait_for_selector("#notice:not([hidden])")
        assert await old.locator("#login-view").is_visible()
        new = await _workspace(browser, server, "advisor", NEW_PASSWORD)
        await new.wait_for_selector("#queue-view:not([hidden])")
    finally:
        server.stop()


async def test_a_generated_password_is_changed_at_the_first_login(
    browser: Any, tmp_path: Path
) -> None:
    server, password = server_with_admin(tmp_path)
    try:
        admin = await admin_page(browser, server, password)
        await admin.locator("#user-form").evaluate("form => form.closest('details').open = true")
        await admin.locator("#new-username").fill("bob")
        await admin.locator("#user-form button[type=submit]").click()
        await admin.wait_for_selector("#secret:not([hidden])")
        generated = await admin.locator("#secret-value").inner_text()
        bob_row = admin.locator("#users tr", has_text="bob")
        await bob_row.locator("text=must choose a new password").wait_for()

        page = await _workspace(browser, server, "bob", generated)
        await page.wait_for_selector("#password-dialog[open]")
        assert "made by an administrator" in await page.locator("#password-reason").inner_text()
        assert await page.locator("#password-cancel").count() == 0
        await page.keyboard.press("Escape")  # no way round it
        assert await page.locator("#password-dialog[open]").count() == 1
        assert not await page.locator("#queue-view").is_visible()
        await page.screenshot(path=str(OUT / "first-login.png"))
        # The server refuses the workspace's calls meanwhile, too.
        status = await page.evaluate("async () => (await fetch('/api/v1/appointments')).status")
        assert status == 403
        await _change_password(page, generated, NEW_PASSWORD)
        await page.wait_for_selector("#queue-view:not([hidden])")
        await page.wait_for_selector("#connection-state:has-text('online')")

        await admin.reload()
        await admin.wait_for_selector("#users tr:has-text('bob')")
        assert (
            await admin.locator("#users tr", has_text="bob")
            .locator("text=must choose a new password")
            .count()
            == 0
        )
    finally:
        server.stop()


async def test_the_administration_page_in_german(browser: Any, tmp_path: Path) -> None:
    server, password = server_with_admin(tmp_path)
    german, english = _catalogue("de"), _catalogue("en")
    # English texts that are no German text as well ("Status", "Name" and "Administration" are).
    untranslated = {text for key, text in english.items() if german.get(key) != text}
    untranslated -= set(german.values())
    try:
        page = await (await browser.new_context(locale="de-DE")).new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        await page.goto(f"{server.url}/admin/")
        await page.wait_for_selector("#login-view:not([hidden])")
        assert await page.locator("#login-title").inner_text() == "Anmelden"
        await page.locator("#username").fill("admin1")
        await page.locator("#password").fill(password)
        await page.locator("#login-form button[type=submit]").click()
        await page.wait_for_selector("#admin-view:not([hidden])")
        # Something in every list: a branch, a topic, a booth with its code.
        await page.locator("#new-branch-name").fill("Mitte")
        await page.locator("#new-branch-region").fill("Berlin")
        await page.locator("#branch-form button[type=submit]").click()
        await page.locator("#new-topic").fill("Wohngeld")
        await page.locator("#topic-form button[type=submit]").click()
        await page.locator("#booth-form").evaluate("form => form.closest('details').open = true")
        await page.locator("#new-booth-name").fill("Kabine 1")
        await page.locator("#booth-form button[type=submit]").click()
        await page.wait_for_selector("#enrolment:not([hidden])")
        await page.wait_for_selector("#fleet tr:has-text('Kabine 1')")
        await page.wait_for_selector("#topics li:has-text('aktiv')")

        assert await page.evaluate("document.documentElement.lang") == "de"
        assert await page.title() == "Videobooth · Verwaltung"
        for name in ("Benutzer", "Themen", "Standorte", "Kabinen", "Erscheinungsbild", "Protokoll"):
            assert await page.get_by_role("link", name=name, exact=True).count() == 1, name
        for label in (
            "Neuer Einrichtungscode für Kabine 1",
            "Kabine 1 sperren",
            "Passwort zurücksetzen: advisor",
        ):
            assert await page.get_by_role("button", name=label).count() == 1, label
        # No English left: every text on the page that comes from a catalogue is German.
        texts = await page.evaluate(
            """() => [...document.querySelectorAll(
                 'button, th, label, summary, legend, h1, h2, h3, p, option, span, a, caption')]
               .filter(el => el.children.length === 0 && el.textContent.trim())
               .map(el => el.textContent.trim())"""
        )
        english_left = sorted({text for text in texts if text in untranslated})
        assert not english_left, english_left
        await page.screenshot(path=str(OUT / "admin-de.png"), full_page=True)
    finally:
        server.stop()


async def test_topic_names_per_language_reach_the_booth_and_the_citizens_page(
    browser: Any, tmp_path: Path
) -> None:
    server, password = server_with_admin(tmp_path)
    try:
        admin = await admin_page(browser, server, password)
        await admin.locator("#new-topic").fill("Housing benefit")
        await admin.locator("#topic-form button[type=submit]").click()
        names = admin.get_by_label("Names in the visitors' languages (0 of 6): Housing benefit")
        await names.wait_for()
        await names.click()
        item = admin.locator("#topics li").filter(has=names)
        await item.get_by_label("العربية").fill("إعانة السكن")
        await item.get_by_label("Deutsch").fill("Wohngeld")
        await item.get_by_role("button", name="Save names of Housing benefit").click()
        await admin.wait_for_selector("#notice:has-text('Topic Housing benefit saved')")
        await admin.wait_for_selector("#topics summary:has-text('2 of 6')")

        for locale, wanted in (("de-DE", "Wohngeld"), ("en-GB", "Housing benefit")):
            page = await (await browser.new_context(locale=locale)).new_page()
            await page.goto(f"{server.url}/now/")
            await page.wait_for_selector("#welcome-view:not([hidden])")
            assert await page.locator("#topic-select option").all_inner_texts() == [wanted]
            await page.screenshot(path=str(OUT / f"now-topic-{locale}.png"))

        credential = server.add_booth("Topic booth")
        async with running_booth(booth_config(server.url, credential=credential), OUT) as screen:
            await screen.state(State.IDLE)
            await screen.until(lambda: bool(screen.booth.info.topics), "the booth's topics")
            for language, wanted in (
                ("ar", "إعانة السكن"),
                ("de", "Wohngeld"),
                ("tr", "Housing benefit"),
            ):
                screen.booth.post(LanguageChosen(language))
                await screen.state(State.CHOOSE)
                _, texts = screen.save(f"choose-{language}")
                assert wanted in texts, (language, texts)
                if language != "tr":
                    assert "Housing benefit" not in texts
                screen.booth.post(Back())
                await screen.state(State.IDLE)
    finally:
        server.stop()


async def test_the_branch_menus_follow_a_new_branch_at_once(browser: Any, tmp_path: Path) -> None:
    server, password = server_with_admin(tmp_path)
    try:
        page = await admin_page(browser, server, password)
        await page.wait_for_selector("#fleet-updated:not(:empty)")  # the fleet has loaded
        await page.locator("#new-branch-name").fill("Süd")
        await page.locator("#new-branch-region").fill("Bayern")
        await page.locator("#branch-form button[type=submit]").click()
        await page.wait_for_selector("#branches tr:has-text('Süd')")
        # Without a reload and before the fleet's next refresh (15 s): every menu has it.
        for menu in ("#new-booth-branch", "#fleet-branch", "#edit-booth-branch"):
            options = await page.locator(f"{menu} option").all_text_contents()
            assert "Süd" in options, (menu, options)
    finally:
        server.stop()


def _next_quarter_hour(moment: datetime) -> str:
    """What the form should offer at ``moment``: the quarter hour after the next minute."""
    quarter = 15 * 60
    at = math.ceil((moment.timestamp() + 60) / quarter) * quarter
    return datetime.fromtimestamp(at, SERVER_ZONE).strftime("%Y-%m-%dT%H:%M")


def _clock(text: str) -> str:
    """The first time of day in ``text`` as HH:MM (a 12-hour one too)."""
    match = re.search(r"\b(\d{1,2}):(\d{2})(?:\s*([AP]M))?", text)
    assert match, text
    hour = int(match.group(1)) % 12 + (12 if match.group(3) == "PM" else 0)
    hour = hour if match.group(3) else int(match.group(1))
    return f"{hour:02d}:{match.group(2)}"


#: The server's zone is Europe/Berlin; these browsers are in New York, six hours behind.
ELSEWHERE = {"timezone_id": "America/New_York", "locale": "en-GB"}


async def test_the_appointment_form_starts_at_the_next_quarter_hour(
    browser: Any, tmp_path: Path
) -> None:
    server, _ = server_with_admin(tmp_path)
    try:
        page = await _workspace(browser, server, "advisor", server.advisor_password, **ELSEWHERE)
        await page.wait_for_selector("#queue-view:not([hidden])")
        before = datetime.now(SERVER_ZONE)
        start = await page.locator("#appointment-start").input_value()
        after = datetime.now(SERVER_ZONE)
        # The page was drawn a moment before: the quarter hour then or now, on the
        # organisation's clock.
        wanted = {_next_quarter_hour(before), _next_quarter_hour(after)}
        assert start in wanted or start < min(wanted), (start, wanted)
        assert start >= before.strftime("%Y-%m-%dT%H:%M"), (start, before)
        assert "Europe/Berlin" in str(await page.locator("#appointment-zone").text_content())
        # Made at once, without choosing a time; the form offers the next one again.
        await page.get_by_text("New appointment").click()
        await page.get_by_role("button", name="Create appointment").click()
        await page.wait_for_selector("#invitation:not([hidden])")
        assert _clock(await page.locator("#appointments li .name").first.inner_text()) == start[-5:]
        assert await page.locator("#appointment-start").input_value() >= start
    finally:
        server.stop()


async def test_times_are_the_organisations_on_every_page(browser: Any, tmp_path: Path) -> None:
    server, password = server_with_admin(tmp_path)
    try:
        page = await _workspace(browser, server, "advisor", server.advisor_password, **ELSEWHERE)
        await page.wait_for_selector("#queue-view:not([hidden])")
        start = await appointment_start()  # on the organisation's clock
        await page.get_by_text("New appointment").click()
        await page.get_by_label("Date and time").fill(start)
        await page.get_by_role("button", name="Create appointment").click()
        await page.wait_for_selector("#invitation:not([hidden])")
        hour_minute = start[-5:]
        listed = await page.locator("#appointments li .name").first.inner_text()
        invitation = await page.input_value("#invitation-text")
        link = await page.inner_text("#invitation-link")
        # The workspace's list and the invitation (written by the server) agree.
        assert f"um {hour_minute} " in invitation and f"at {hour_minute} " in invitation
        assert _clock(listed) == hour_minute, (listed, invitation)
        await page.screenshot(path=str(OUT / "times-advisor.png"))

        citizen = await (await browser.new_context(**ELSEWHERE)).new_page()
        await citizen.goto(link)
        await citizen.wait_for_selector("#welcome-view:not([hidden])")
        when = await citizen.locator("#when").inner_text()
        assert _clock(when) == hour_minute, when
        await citizen.screenshot(path=str(OUT / "times-citizen.png"))

        # The administration page's audit log: the appointment was made now, Berlin time.
        admin = await (await browser.new_context(**ELSEWHERE)).new_page()
        await admin.goto(f"{server.url}/admin/")
        await admin.locator("#username").fill("admin1")
        await admin.locator("#password").fill(password)
        await admin.locator("#login-form button[type=submit]").click()
        await admin.wait_for_selector("#audit tr")
        logged = await admin.locator("#audit tr time").first.inner_text()
        now = datetime.now(SERVER_ZONE)
        assert _clock(logged) in {
            now.strftime("%H:%M"),
            datetime.fromtimestamp(now.timestamp() - 60, SERVER_ZONE).strftime("%H:%M"),
        }, logged

        async def listed_after_reload() -> bool:
            await page.reload()
            await page.wait_for_selector("#queue-view:not([hidden])")
            return await page.locator("#appointments li").count() == 1

        await poll(listed_after_reload, 10, "the appointment on the organisation's day")
    finally:
        server.stop()
