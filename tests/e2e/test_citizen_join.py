"""A citizen joins from the appointment link in three clicks and the advisor admits them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import Server, appointment_start, login_advisor, poll

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

VIDEO_PLAYING = """
() => {
  const v = document.getElementById('remote-video');
  return v && v.videoWidth > 0 && v.currentTime > 0.5 ? [v.videoWidth, v.currentTime] : null;
}
"""


async def test_citizen_joins_in_three_clicks_and_is_admitted(
    relayed_server: Server, browser: Any
) -> None:
    advisor = await login_advisor(browser, relayed_server)
    # The advisor makes the appointment in the workspace and gets the invitation once.
    starts = await appointment_start()
    await advisor.get_by_text("New appointment").click()
    await advisor.get_by_label("Date and time").fill(starts)
    await advisor.get_by_role("button", name="Create appointment").click()
    await advisor.wait_for_selector("#invitation:not([hidden])")
    created = {"join_link": await advisor.inner_text("#invitation-link")}
    code = await advisor.inner_text("#invitation-code")
    invitation = await advisor.input_value("#invitation-text")
    assert created["join_link"] in invitation and f"{code[:4]} {code[4:]}" in invitation
    assert await advisor.locator("#appointments .status").inner_text() == "not arrived"

    citizen_context = await browser.new_context(permissions=["camera", "microphone"])
    citizen = await citizen_context.new_page()
    citizen.on("console", lambda msg: print(f"[citizen console] {msg.type}: {msg.text}"))
    clicks = 0

    # (1) open the link from the invitation.
    await citizen.goto(created["join_link"])
    clicks += 1
    await citizen.wait_for_selector("#welcome-view:not([hidden])")
    assert await citizen.inner_text("#welcome-title") == "Appointment with Alex Advisor"

    # (2) agree to the privacy notice and turn on camera and microphone.
    await citizen.get_by_role("button", name="Agree and turn on camera").click()
    clicks += 1
    await citizen.wait_for_selector("#prejoin-view:not([hidden])")
    # The pre-join screen shows the camera, lets one pick devices, and the level moves.
    await poll(
        lambda: citizen.evaluate("() => document.getElementById('preview').videoWidth > 0"),
        10,
        "the camera preview",
    )
    assert await citizen.locator("#camera-select option").count() >= 1
    assert await citizen.locator("#mic-select option").count() >= 1
    await poll(
        lambda: citizen.evaluate(
            "() => Number(document.getElementById('mic-level').dataset.level || 0) > 0.005"
        ),
        10,
        "the microphone level meter to move",
    )

    # (3) join the lobby.
    await citizen.get_by_role("button", name="Join").click()
    clicks += 1
    await citizen.wait_for_selector("#lobby-view:not([hidden])")
    print(f"\ncitizen clicks from link to lobby: {clicks}")
    assert clicks == 3

    # The advisor sees the citizen in the lobby of this appointment and admits them.
    await advisor.wait_for_selector("#appointments .status.waiting")
    await advisor.get_by_role("button", name="Admit Citizen to the appointment").click(
        timeout=15_000
    )
    for page, who in ((advisor, "advisor"), (citizen, "citizen")):
        size = await poll(lambda page=page: page.evaluate(VIDEO_PLAYING), 20, f"video at the {who}")
        print(f"{who} sees the other side: {size[0]} px wide, playing {size[1]:.1f} s")

    assert await advisor.locator("#appointments .status").inner_text() == "in call"

    # Chat both ways.
    await citizen.get_by_label("Message").fill("Hallo, ich bin da")
    await citizen.get_by_role("button", name="Send").click()
    await advisor.wait_for_selector("#chat-log li:has-text('Hallo, ich bin da')")
    await advisor.get_by_label("Message").fill("Willkommen!")
    await advisor.get_by_role("button", name="Send").click()
    await citizen.wait_for_selector("#chat-log li:has-text('Willkommen!')")

    # The citizen ends the call: both sides leave it, and the citizen is told nothing was kept.
    await citizen.get_by_role("button", name="End call").click()
    await citizen.wait_for_selector("#ended-view:not([hidden])")
    await advisor.wait_for_selector("#queue-view:not([hidden])")
    assert await advisor.locator("#appointments .status").inner_text() == "done"
    await citizen_context.close()


async def test_invalid_link_says_so(relayed_server: Server, browser: Any) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{relayed_server.url}/join/not-a-real-token")
    await page.wait_for_selector("#notice:not([hidden])")
    assert (await page.inner_text("#notice")).startswith(
        "This link is not known, or the call it was made for has ended. Check that you copied "
        "the whole link"
    )
    await context.close()
