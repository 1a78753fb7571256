"""The organisation's own texts, set on the administration page in Chromium, where citizens
read them: the welcome and the privacy notice on /join/ and /now/ and the after-call text when
the call has ended (German and English pages), and on the booth's idle, consent and ended
screens in each of its six languages, with the fallback where a language has none: the
built-in text, but for the privacy notice, which is shown in English rather than not at all.
Screenshots go to test-output/e2e/branding/."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kiosk.flow import LANGUAGES, Cancel, ChooseWalkIn, Consent, LanguageChosen, Start, State
from kiosk.i18n import load_catalogue
from tests.e2e.admin_pages import admin_page, server_with_admin
from tests.e2e.booth_screen import SCREENSHOTS, booth_config, running_booth
from tests.e2e.conftest import Server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

OUT = SCREENSHOTS / "branding"

#: German: every text; English: no after-call text; Arabic: no privacy notice; the other
#: three languages: nothing.
TEXTS = {
    "de": {
        "welcome": "Willkommen im Bürgeramt Mitte",
        "privacy_notice": "Datenschutz: Das Bürgeramt Mitte verarbeitet Ihre Angaben nur für "
        "dieses Gespräch (Art. 6 Abs. 1 lit. e DSGVO).\nFragen: datenschutz@mitte.example",
        "booth_idle": "Tippen Sie auf Start: Eine Beraterin ist gleich für Sie da.",
        "ended": "Danke! Unterlagen senden Sie an post@mitte.example.",
    },
    "en": {
        "welcome": "Welcome to the Citizens' Office Mitte",
        "privacy_notice": "Privacy: the Citizens' Office Mitte uses what you tell us only for "
        "this conversation (GDPR Art. 6(1)(e)).\nQuestions: privacy@mitte.example",
        "booth_idle": "Tap Start: an advisor will be with you in a moment.",
    },
    "ar": {
        "welcome": "مرحبًا بكم في مكتب المواطنين ميته",
        "booth_idle": "اضغط على ابدأ: سيكون أحد المستشارين معك خلال لحظات.",
        "ended": "شكرًا! أرسل المستندات إلى post@mitte.example.",
    },
}


async def _set_texts(page: Any) -> None:
    """Type the texts into the branding form, language by language, and save."""
    for language, texts in TEXTS.items():
        await page.locator("#text-language").select_option(language)
        for key, text in texts.items():
            await page.locator(f"#text-{key}").fill(text)
    await page.locator("#branding-form button[type=submit]").click()
    await page.wait_for_selector("#notice:has-text('Branding saved')")


async def _advisor(server: Server) -> aiohttp.ClientSession:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.post(
        f"{server.url}/api/v1/auth/login",
        json={"username": "advisor", "password": server.advisor_password},
    ) as response:
        assert response.status == 200, await response.text()
    return http


async def _join_link(advisor: aiohttp.ClientSession, server: Server) -> str:
    starts = datetime.now(UTC) + timedelta(minutes=5)
    async with advisor.post(
        f"{server.url}/api/v1/appointments",
        json={"starts_at": starts.isoformat(), "duration_minutes": 30, "channel": "either"},
    ) as response:
        assert response.status == 201, await response.text()
        return str((await response.json())["join_link"])


async def _texts_on(page: Any) -> dict[str, Any]:
    return dict(
        await page.evaluate(
            """() => Object.fromEntries(['brand-welcome', 'brand-privacy', 'brand-ended',
                 'privacy-built-in', 'ended-built-in'].map(id => {
                   const el = document.getElementById(id);
                   return [id, el && {hidden: el.hidden, text: el.innerText, lang: el.lang}];
                 }))"""
        )
    )


async def test_the_organisations_texts_on_the_citizen_pages(browser: Any, tmp_path: Path) -> None:
    server, password = server_with_admin(tmp_path)
    advisor = await _advisor(server)
    try:
        admin = await admin_page(browser, server, password)
        await _set_texts(admin)
        for language, locale in (("de", "de-DE"), ("en", "en-GB")):
            own = TEXTS[language]
            context = await browser.new_context(locale=locale, permissions=["camera", "microphone"])
            page = await context.new_page()
            page.on("pageerror", lambda error: print(f"[citizen page error] {error}"))

            # The appointment's link: welcome and the privacy notice before agreeing.
            await page.goto(await _join_link(advisor, server))
            await page.wait_for_selector("#welcome-view:not([hidden])")
            main = await page.inner_text("main")
            assert own["welcome"] in main and own["privacy_notice"] in main, main
            shown = await _texts_on(page)
            assert shown["brand-welcome"] == {
                "hidden": False,
                "text": own["welcome"],
                "lang": language,
            }
            assert shown["brand-privacy"]["text"] == own["privacy_notice"]
            assert not shown["brand-privacy"]["hidden"] and shown["privacy-built-in"]["hidden"]
            await page.screenshot(path=str(OUT / f"join-{language}.png"), full_page=True)

            # Asking for an advisor now: the same texts; after the call, the after-call text.
            await page.goto(f"{server.url}/now/")
            await page.wait_for_selector("#welcome-view:not([hidden])")
            shown = await _texts_on(page)
            assert shown["brand-welcome"]["text"] == own["welcome"]
            assert shown["brand-privacy"]["text"] == own["privacy_notice"]
            await page.screenshot(path=str(OUT / f"now-{language}.png"), full_page=True)
            await page.locator("#consent").click()
            await page.wait_for_selector("#prejoin-view:not([hidden])")
            await page.locator("#join").click()
            await page.wait_for_selector("#lobby-view:not([hidden])")
            await page.locator("#cancel-wait").click()
            await page.wait_for_selector("#ended-view:not([hidden])")
            shown = await _texts_on(page)
            if "ended" in own:
                assert shown["brand-ended"]["text"] == own["ended"]
                assert shown["ended-built-in"]["hidden"]
            else:  # the built-in text stays
                assert shown["brand-ended"]["hidden"] and not shown["ended-built-in"]["hidden"]
            await page.screenshot(path=str(OUT / f"now-ended-{language}.png"), full_page=True)
            await context.close()
    finally:
        await advisor.close()
        server.stop()


async def test_the_organisations_texts_on_the_booth_in_every_language(
    browser: Any, tmp_path: Path
) -> None:
    server, password = server_with_admin(tmp_path)
    catalogue = load_catalogue()
    advisor = await _advisor(server)
    ws = await advisor.ws_connect(f"{server.url.replace('http', 'ws', 1)}/api/v1/ws")
    try:
        admin = await admin_page(browser, server, password)
        await _set_texts(admin)
        credential = server.add_booth("Branding booth")
        async with running_booth(booth_config(server.url, credential=credential), OUT) as screen:
            booth = screen.booth
            await screen.state(State.IDLE)
            await screen.until(lambda: bool(booth.info.texts), "the booth to fetch the texts")
            # The idle screen, as the booth shows it (German first) and as it reads in the
            # other languages.
            for language in LANGUAGES:
                own = TEXTS.get(language, {})
                _, texts = screen.save(f"idle-{language}", None if language == "de" else language)
                for key, built_in in (("welcome", "idle.title"), ("booth_idle", "idle.subtitle")):
                    wanted = own.get(key) or catalogue.text(language, built_in)
                    assert wanted in texts, (language, key, texts)

            for language in LANGUAGES:
                own = TEXTS.get(language, {})
                booth.post(LanguageChosen(language))
                await screen.state(State.CHOOSE)
                booth.post(ChooseWalkIn(None))
                await screen.state(State.CONSENT)
                _, texts = screen.save(f"consent-{language}")
                # The notice in the visitor's language, or in English rather than not at all.
                notice = own.get("privacy_notice") or TEXTS["en"]["privacy_notice"]
                assert notice in texts, (language, texts)
                assert catalogue.text(language, "consent.recorded") not in "\n".join(texts)

                booth.post(Consent())
                await screen.until(lambda: booth.session_id is not None, "the booth to wait")
                await ws.send_str(
                    json.dumps({"v": 1, "type": "call_accept", "session_id": booth.session_id})
                )
                await screen.state(State.IN_CALL)
                booth.post(Cancel())  # the citizen ends the call
                await screen.state(State.ENDED)
                _, texts = screen.save(f"ended-{language}")
                wanted = own.get("ended") or catalogue.text(language, "ended.text")
                assert wanted in texts, (language, texts)
                assert catalogue.text(language, "ended.title") in texts  # in their language
                booth.post(Start())  # Done
                await screen.state(State.IDLE)
    finally:
        await ws.close()
        await advisor.close()
        server.stop()
