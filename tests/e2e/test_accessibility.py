"""Accessibility (WCAG 2.1 A/AA, as BITV 2.0 and EN 301 549 ask): axe-core in every page state
the browser tests reach, and what an engine cannot see.

axe-core (tests/e2e/axe.py) runs in each state: the advisor's login, workspace, appointment
form, invitation, a booth and a citizen waiting, the call with chat and the invitation of an
interpreter; the citizen's join steps, lobby, call and its end; a walk-in's choice and queue
place; an unknown link; every section and dialog of the administration page; the accessibility
statement. Each state has zero violations; the rules applied and the elements checked are
printed.

Beyond the engine: the live regions say what a screen-reader user must hear (the queue place, a
new caller, a chat line, the call's state); the pages reflow at 320 CSS px and at 200 % zoom
without sideways scrolling; animations stop under ``prefers-reduced-motion``; the chime has a
visible caption.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.admin_pages import admin_page, server_with_admin
from tests.e2e.axe import Audit, audit, focus_walk, no_violations, reflows
from tests.e2e.conftest import Server, appointment_start, login_advisor, poll
from tests.e2e.journeys import citizen_page, invite_link, playing, three_clicks

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


async def test_accessibility_axe_advisor_booth_and_citizen_journeys(
    relayed_server: Server, start_booth: Any, browser: Any
) -> None:
    audits: list[Audit] = []
    server = relayed_server

    # The advisor: login, workspace, appointment form, invitation.
    context = await browser.new_context(permissions=["camera", "microphone"])
    advisor = await context.new_page()
    advisor.on("console", lambda msg: print(f"[advisor console] {msg.type}: {msg.text}"))
    await advisor.goto(f"{server.url}/advisor/")
    await advisor.wait_for_selector("#login-view:not([hidden])")
    audits.append(await audit(advisor, "advisor: login"))
    await advisor.get_by_label("Username").fill("advisor")
    await advisor.get_by_label("Password").fill("not the password")
    await advisor.get_by_role("button", name="Log in").click()
    await advisor.wait_for_selector("#notice:not([hidden])")
    audits.append(await audit(advisor, "advisor: login refused"))
    await advisor.get_by_label("Password").fill(server.advisor_password)
    await advisor.get_by_role("button", name="Log in").click()
    await advisor.wait_for_selector("#queue-view:not([hidden])")
    audits.append(await audit(advisor, "advisor: workspace, nobody waiting"))
    await advisor.get_by_text("New appointment").click()
    audits.append(await audit(advisor, "advisor: new appointment form"))
    await advisor.get_by_label("Date and time").fill(await appointment_start())
    await advisor.get_by_role("button", name="Create appointment").click()
    await advisor.wait_for_selector("#invitation:not([hidden])")
    audits.append(await audit(advisor, "advisor: invitation"))
    join_link = await advisor.inner_text("#invitation-link")

    # A booth calls: the caller in the queue, then the call, its chat and the invitation form.
    booth = start_booth(server, "Branch 1 booth", "--call")
    accept = advisor.get_by_role("button", name="Accept call from Branch 1 booth")
    await accept.wait_for(timeout=30_000)
    audits.append(await audit(advisor, "advisor: a booth waiting"))
    await advisor.select_option("#language", "de")
    await advisor.get_by_role("button", name="Anruf von Branch 1 booth annehmen").wait_for()
    audits.append(await audit(advisor, "advisor: a booth waiting (Deutsch)"))
    await advisor.select_option("#language", "en")
    await accept.wait_for()
    await accept.click()
    await playing(advisor, "#remote-video", "the booth's video")
    audits.append(await audit(advisor, "advisor: in call with a booth"))
    await advisor.get_by_label("Message").fill("Guten Tag")
    await advisor.get_by_role("button", name="Send").click()
    await advisor.wait_for_selector("#chat-log li")
    await advisor.get_by_text("Invite someone (an interpreter) into this call").click()
    audits.append(await audit(advisor, "advisor: call with chat, invite form"))
    await invite_link(advisor, "Interpreter")
    audits.append(await audit(advisor, "advisor: interpreter's link"))
    await advisor.get_by_role("button", name="End call").click()
    await advisor.wait_for_selector("#queue-view:not([hidden])")
    booth.wait_for(lambda s: s.get("calls_completed") == 1, 20, "the booth to end the call")

    # The citizen's three steps, the lobby, the call, its end.
    citizen_context, citizen = await citizen_page(browser)
    await citizen.goto(join_link)
    await citizen.wait_for_selector("#welcome-view:not([hidden])")
    audits.append(await audit(citizen, "citizen: welcome"))
    await citizen.get_by_role("button", name="Agree and turn on camera").click()
    await citizen.wait_for_selector("#prejoin-view:not([hidden])")
    audits.append(await audit(citizen, "citizen: camera and microphone check"))
    await citizen.get_by_role("button", name="Join").click()
    await citizen.wait_for_selector("#lobby-view:not([hidden])")
    audits.append(await audit(citizen, "citizen: lobby"))
    await advisor.wait_for_selector("#appointments .status.waiting")
    audits.append(await audit(advisor, "advisor: a citizen in the lobby"))
    await advisor.get_by_role("button", name="Admit Citizen to the appointment").click()
    await playing(citizen, "#remote-video", "the advisor's video at the citizen")
    await citizen.get_by_label("Message").fill("Hallo")
    await citizen.get_by_role("button", name="Send").click()
    await advisor.wait_for_selector("#chat-log li:has-text('Hallo')")
    audits.append(await audit(citizen, "citizen: in call, chat"))
    audits.append(await audit(advisor, "advisor: in call with a citizen"))
    await citizen.get_by_role("button", name="End call").click()
    await citizen.wait_for_selector("#ended-view:not([hidden])")
    audits.append(await audit(citizen, "citizen: call ended"))
    await citizen_context.close()

    # A walk-in: the welcome at /now/, then a place in the queue.
    walk_in_context, walk_in = await citizen_page(browser)
    await walk_in.goto(f"{server.url}/now/")
    await walk_in.wait_for_selector("#welcome-view:not([hidden])")
    audits.append(await audit(walk_in, "walk-in: welcome"))
    await walk_in.get_by_role("button", name="Agree and turn on camera").click()
    await walk_in.get_by_role("button", name="Join").click()
    await walk_in.wait_for_selector("#queue-position:not([hidden])")
    # The place is said as it changes (a live region), not only shown.
    place = walk_in.locator("#queue-position")
    assert (await place.get_attribute("role"), await place.get_attribute("aria-live")) == (
        "status",
        "polite",
    )
    assert await place.get_attribute("data-position") == "1" and await place.inner_text()
    audits.append(await audit(walk_in, "walk-in: place in the queue"))
    await walk_in.get_by_role("button", name="Stop waiting").click()
    await walk_in_context.close()

    # A link that is not known.
    unknown_context, unknown = await citizen_page(browser)
    await unknown.goto(f"{server.url}/join/not-a-real-token")
    await unknown.wait_for_selector("#notice:not([hidden])")
    audits.append(await audit(unknown, "citizen: unknown link"))
    await unknown_context.close()
    await context.close()
    no_violations(audits)


async def test_accessibility_axe_administration(tmp_path: Path, browser: Any) -> None:
    audits: list[Audit] = []
    server, password = server_with_admin(tmp_path)
    try:
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(f"{server.url}/admin/")
        await page.wait_for_selector("#login-view:not([hidden])")
        audits.append(await audit(page, "admin: login"))
        await context.close()

        page = await admin_page(browser, server, password)
        audits.append(await audit(page, "admin: every section"))
        await page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = 1)")
        audits.append(await audit(page, "admin: every section, every form open"))
        await page.select_option("#language", "de")
        await page.wait_for_selector("html[lang=de]")
        audits.append(await audit(page, "admin: every section, every form open (Deutsch)"))
        await page.select_option("#language", "en")
        await page.wait_for_selector("html[lang=en]")
        await page.locator("#new-username").fill("casey")
        await page.locator("#user-form button[type=submit]").click()
        await page.wait_for_selector("#secret:not([hidden])")
        audits.append(await audit(page, "admin: a new user's password"))
        await page.locator("#secret-done").click()
        await page.locator("#users tr:has-text('casey') button").first.click()
        await page.wait_for_selector("#user-dialog[open]")
        audits.append(await audit(page, "admin: user dialog"))
        await page.locator("#user-cancel").click()
        await page.locator("#new-branch-name").fill("Mitte")
        await page.locator("#new-branch-region").fill("Berlin")
        await page.locator("#branch-form button[type=submit]").click()
        await page.wait_for_selector("#branches tr:has-text('Mitte')")
        await page.locator("#new-booth-name").fill("Mitte 1")
        await page.locator("#booth-form button[type=submit]").click()
        await page.wait_for_selector("#enrolment:not([hidden])")
        audits.append(await audit(page, "admin: a booth's enrolment code"))
        await page.locator("#enrolment-done").click()
        await page.locator("#new-topic").fill("Rente")
        await page.locator("#topic-form button[type=submit]").click()
        await page.wait_for_selector("#topics .topic-line")
        audits.append(await audit(page, "admin: users, branch, booth, topic"))

        await page.get_by_role("button", name="Edit Mitte 1: rename or move").click()
        await page.wait_for_selector("#booth-dialog[open]")
        audits.append(await audit(page, "admin: booth dialog"))
        await page.keyboard.press("Escape")
        await page.get_by_role("button", name="Edit Mitte", exact=True).click()
        await page.wait_for_selector("#branch-dialog[open]")
        audits.append(await audit(page, "admin: branch dialog"))
        await page.locator("#branch-cancel").click()
        await page.get_by_role("button", name="Last 24 hours of Mitte 1").click()
        await page.wait_for_selector("#fleet-history:not([hidden])")
        audits.append(await audit(page, "admin: a booth's last 24 hours"))

        await page.get_by_label("New service account").fill("Termin-Buchung")
        await page.get_by_role("button", name="Add service account").click()
        await page.get_by_role("button", name="Issue token for Termin-Buchung").click()
        await page.wait_for_selector("#integration-secret-box:not([hidden])")
        audits.append(await audit(page, "admin: a service account's new token"))
        await page.get_by_label("Endpoint address").fill("https://booking.agency.example/hooks")
        await page.get_by_role("button", name="Add webhook for Termin-Buchung").click()
        await page.wait_for_selector("#service-accounts li:has-text('booking.agency.example')")
        audits.append(await audit(page, "admin: a webhook's secret"))
        await page.locator("#new-branch-name").fill("Altona")
        await page.locator("#new-branch-region").fill("Hamburg")
        await page.locator("#branch-form button[type=submit]").click()
        await page.wait_for_selector("#branches tr:has-text('Altona')")
        await page.context.close()

        # With topics and two regions, a walk-in chooses: that form too.
        walk_in_context, walk_in = await citizen_page(browser)
        await walk_in.goto(f"{server.url}/now/")
        await walk_in.wait_for_selector("#region-choice:not([hidden])")
        assert await walk_in.get_by_label("What is it about?").is_visible()
        audits.append(await audit(walk_in, "walk-in: topic and region to choose"))
        await walk_in_context.close()

        # An advisor who opens the administration page is told it is not theirs.
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(f"{server.url}/admin/")
        await page.locator("#username").fill("advisor")
        await page.locator("#password").fill(server.advisor_password)
        await page.locator("#login-form button[type=submit]").click()
        await page.wait_for_selector("#not-admin-view:not([hidden])")
        audits.append(await audit(page, "admin: not an administrator"))
        # ... and their own workspace offers to change the password, in a dialog.
        await page.goto(f"{server.url}/advisor/")
        await page.get_by_role("button", name="Change password").click()
        await page.wait_for_selector("#password-dialog[open]")
        audits.append(await audit(page, "advisor: change password dialog"))
        await context.close()
    finally:
        server.stop()
    no_violations(audits)


#: Each visible <video>'s accessible name (aria-label, or the text aria-labelledby points at).
VIDEO_NAMES = """() => Object.fromEntries([...document.querySelectorAll('video')]
  .filter((v) => v.getClientRects().length > 0)
  .map((v) => [v.id || v.parentElement.textContent.trim(),
               (v.getAttribute('aria-label') || (v.getAttribute('aria-labelledby') || '')
                 .split(' ').map((id) => document.getElementById(id)?.textContent || '')
                 .join(' ')).trim()]))"""

PHONE_AND_ZOOM = (
    ("320 CSS px", {"viewport": {"width": 320, "height": 640}}),
    ("200 % zoom", {"viewport": {"width": 640, "height": 400}, "device_scale_factor": 2}),
)


async def _reflow_everywhere(browser: Any, url: str, ready: str, state: str) -> None:
    for name, size in PHONE_AND_ZOOM:
        context = await browser.new_context(permissions=["camera", "microphone"], **size)
        page = await context.new_page()
        await page.goto(url)
        await page.wait_for_selector(ready)
        await reflows(page, f"{state} at {name}")
        await context.close()


async def test_accessibility_statement_focus_reflow_motion_and_live_regions(
    tmp_path: Path, browser: Any
) -> None:
    audits: list[Audit] = []
    server, password = server_with_admin(tmp_path)
    try:
        # The administrator writes the statement's own parts on the administration page.
        admin = await admin_page(browser, server, password)
        await focus_walk(admin, "admin: every section")
        await admin.locator("#statement-conformance").select_option("partial")
        await admin.locator("#statement-prepared").fill("2026-11-02")
        await admin.locator("#statement-email").fill("barrierefrei@musterhausen.example")
        await admin.locator("#statement-de-limitations").fill("Keine Live-Untertitel.")
        await admin.locator("#statement-en-limitations").fill("No live captions.")
        await admin.locator("#statement-de-enforcement").fill("Schlichtungsstelle nach § 16 BGG")
        await admin.get_by_role("button", name="Save statement").click()
        await admin.wait_for_selector("#notice:has-text('Accessibility statement saved')")
        audits.append(await audit(admin, "admin: statement saved"))
        await reflows(admin, "admin at 1280 CSS px")
        await admin.set_viewport_size({"width": 320, "height": 640})
        await reflows(admin, "admin at 320 CSS px")
        await admin.context.close()

        # Everybody reads it, in their language; every page links to it.
        for locale, limitation, heading in (
            ("en-GB", "No live captions.", "Enforcement procedure"),
            ("de-DE", "Keine Live-Untertitel.", "Schlichtungsverfahren"),
        ):
            context = await browser.new_context(locale=locale)
            page = await context.new_page()
            await page.goto(f"{server.url}/now/")
            await (
                page.get_by_role("link", name="Accessibility")
                .or_(page.get_by_role("link", name="Barrierefreiheit"))
                .click()
            )
            await page.wait_for_selector("#statement[aria-busy=false]")
            assert await page.inner_text("#limitations") == limitation
            assert await page.get_by_role("heading", name=heading).count() == 1
            email = page.get_by_role("link", name="barrierefrei@musterhausen.example")
            assert await email.get_attribute("href") == "mailto:barrierefrei@musterhausen.example"
            audits.append(await audit(page, f"accessibility statement ({locale})"))
            await focus_walk(page, f"accessibility statement ({locale})")
            await context.close()
        await _reflow_everywhere(
            browser, f"{server.url}/accessibility/", "#statement[aria-busy=false]", "statement"
        )

        # The advisor's pages: the keyboard reaches every control, visibly; nothing scrolls
        # sideways on a phone-wide window or at 200 % zoom.
        await _reflow_everywhere(
            browser, f"{server.url}/advisor/", "#login-view:not([hidden])", "advisor login"
        )
        advisor = await login_advisor(browser, server)
        await advisor.get_by_text("New appointment").click()
        await advisor.get_by_label("Date and time").fill(await appointment_start())
        await advisor.get_by_role("button", name="Create appointment").click()
        await advisor.wait_for_selector("#invitation:not([hidden])")
        join_link = await advisor.inner_text("#invitation-link")
        await focus_walk(advisor, "advisor: workspace with an invitation")
        for width in (320, 640):
            await advisor.set_viewport_size({"width": width, "height": 700})
            await reflows(advisor, f"advisor: workspace at {width} CSS px")
        await advisor.set_viewport_size({"width": 1280, "height": 800})

        # The citizen's steps, by keyboard and narrow.
        await _reflow_everywhere(browser, join_link, "#welcome-view:not([hidden])", "welcome")
        context, citizen = await citizen_page(browser)
        await citizen.goto(join_link)
        await citizen.wait_for_selector("#welcome-view:not([hidden])")
        await focus_walk(citizen, "citizen: welcome")
        await citizen.get_by_role("button", name="Agree and turn on camera").click()
        await citizen.wait_for_selector("#prejoin-view:not([hidden])")
        await focus_walk(citizen, "citizen: camera and microphone check")
        for width in (320, 640):
            await citizen.set_viewport_size({"width": width, "height": 700})
            await reflows(citizen, f"citizen: camera check at {width} CSS px")
        await citizen.set_viewport_size({"width": 1280, "height": 800})
        await citizen.get_by_role("button", name="Join").click()
        await citizen.wait_for_selector("#lobby-view:not([hidden])")
        await focus_walk(citizen, "citizen: lobby")

        # The chime of a new caller has a caption that is also said (a live region); it
        # slides in, except for whoever asked for reduced motion.
        caption = advisor.locator("#chime-caption")
        await caption.wait_for(state="visible", timeout=10_000)
        assert await caption.inner_text() == "Chime: a new caller is waiting (Citizen)"
        assert await caption.get_attribute("role") == "status"
        motion = "() => getComputedStyle(document.getElementById('chime-caption')).animationName"
        assert await advisor.evaluate(motion) == "arrive"
        await advisor.emulate_media(reduced_motion="reduce")
        assert await advisor.evaluate(motion) == "none"
        await advisor.emulate_media(reduced_motion="no-preference")

        # The call's state is said as it changes; so is each chat line (a live list).
        await advisor.get_by_role("button", name="Admit Citizen to the appointment").click()
        announced = "() => document.getElementById('announcer').textContent"
        await poll(
            lambda: citizen.evaluate(f"() => ({announced})() === 'Call: connected'"),
            20,
            "the citizen's page to say the call is connected",
        )
        await poll(
            lambda: advisor.evaluate(f"() => ({announced})() === 'Call: connected'"),
            20,
            "the advisor's page to say the call is connected",
        )
        for page in (citizen, advisor):
            assert await page.get_attribute("#chat-log", "aria-live") == "polite"
            # Every video shown has a name a screen reader says.
            names = await page.evaluate(VIDEO_NAMES)
            assert names and all(names.values()), names
        await citizen.get_by_role("button", name="End call").click()
        await citizen.wait_for_selector("#ended-view:not([hidden])")
        await context.close()
        await advisor.context.close()
    finally:
        server.stop()
    no_violations(audits)


#: Frames presented by a <video> in `seconds` (requestVideoFrameCallback: what the screen got).
PRESENTED = """async ([selector, seconds]) => {
  const video = document.querySelector(selector);
  let frames = 0;
  let first = null;
  let last = null;
  await new Promise((done) => {
    const count = (now, meta) => {
      first = first ?? meta.presentedFrames;
      last = meta.presentedFrames;
      frames += 1;
      video.requestVideoFrameCallback(count);
    };
    video.requestVideoFrameCallback(count);
    setTimeout(done, seconds * 1000);
  });
  const box = video.getBoundingClientRect();
  return { fps: (last - first) / seconds, callbacks: frames, width: box.width,
           height: box.height, frameWidth: video.videoWidth };
}"""


@pytest.mark.solo  # measures frames a second
async def test_accessibility_sign_language_interpreter_pinned_large_keeps_20_fps(
    relayed_server: Server, browser: Any
) -> None:
    """A deaf citizen at home pins the sign-language interpreter's tile: it takes the width of
    the call and shows at least 20 frames per second (EN 301 549), measured on the page."""
    server = relayed_server
    advisor = await login_advisor(browser, server)
    await advisor.get_by_text("New appointment").click()
    await advisor.get_by_label("Date and time").fill(await appointment_start())
    await advisor.get_by_role("button", name="Create appointment").click()
    await advisor.wait_for_selector("#invitation:not([hidden])")
    join_link = await advisor.inner_text("#invitation-link")

    citizen_context, citizen = await citizen_page(browser)
    await citizen.goto(join_link)
    await citizen.get_by_role("button", name="Agree and turn on camera").click()
    await citizen.get_by_role("button", name="Join").click()
    await advisor.get_by_role("button", name="Admit Citizen to the appointment").click(
        timeout=15_000
    )
    await playing(citizen, "#remote-video", "the advisor's video at the citizen")

    link = await invite_link(advisor, "Sign language")
    interpreter_context, interpreter = await citizen_page(browser)
    await three_clicks(interpreter, link)
    await advisor.get_by_role("button", name="Admit Sign language into the call").click(
        timeout=15_000
    )
    tile = "#tiles li video"
    await playing(citizen, tile, "the interpreter's video at the citizen")

    small = await citizen.evaluate(PRESENTED, [tile, 1])
    pin = citizen.get_by_role("button", name="Show large: Sign language")
    await pin.click()
    assert await pin.get_attribute("aria-pressed") == "true"
    pinned = await citizen.evaluate(PRESENTED, [tile, 5])
    call_width = await citizen.evaluate(
        "() => document.getElementById('call-view').getBoundingClientRect().width"
    )
    print(
        f"\ninterpreter's tile: {small['width']:.0f} px wide before, pinned "
        f"{pinned['width']:.0f}x{pinned['height']:.0f} px of a {call_width:.0f} px call, "
        f"{pinned['fps']:.1f} frames per second presented over 5 s "
        f"({pinned['frameWidth']} px frames)"
    )
    assert pinned["width"] >= 0.9 * call_width > small["width"]
    assert pinned["fps"] >= 20, pinned
    audit_result = await audit(citizen, "citizen: call with the interpreter pinned large")
    no_violations([audit_result])
    await pin.click()
    assert await pin.get_attribute("aria-pressed") == "false"
    await interpreter_context.close()
    await citizen_context.close()
    await advisor.context.close()
