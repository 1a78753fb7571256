"""The advisor's day, end to end: a booth and a citizen's browser wait at once and the advisor
takes both from the same workspace; an interpreter joins a running call by link and all three
see each other. Real coturn, server, headless booth and Chromium."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import BoothProcess, Server, login_advisor, poll
from tests.e2e.journeys import citizen_page, invite_link, playing, three_clicks

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def _booth_receives(booth: BoothProcess, what: str, others: int = 0) -> dict[str, Any]:
    def check(status: dict[str, Any]) -> bool:
        call = status.get("call") or {}
        legs = status.get("others") or []
        return (
            call.get("video_frames_received", 0) > 10
            and len(legs) == others
            and all(leg.get("video_frames_received", 0) > 10 for leg in legs)
        )

    return booth.wait_for(check, 25, what)


async def test_a_booth_and_a_citizen_wait_at_once_and_one_advisor_takes_both(
    relayed_server: Server, start_booth: Any, browser: Any
) -> None:
    advisor = await login_advisor(browser, relayed_server)
    booth = start_booth(relayed_server, "Branch 1 booth", "--call")
    booth.wait_for(lambda s: s.get("state") == "waiting", 30, "the booth to wait")

    # A citizen at home asks for an advisor now from the walk-in page.
    context, citizen = await citizen_page(browser)
    await three_clicks(citizen, f"{relayed_server.url}/now/")
    position = await poll(
        lambda: citizen.evaluate(
            "() => document.getElementById('queue-position').dataset.position"
        ),
        10,
        "the citizen's place in the queue",
    )
    assert position == "2"  # the booth asked first
    text = await citizen.inner_text("#queue-position")
    assert "number 2" in text and "Estimated wait" in text
    print(f"\ncitizen sees: {text}")

    # Both wait in the same workspace: a booth and a browser, each with an accept button.
    await poll(
        lambda: advisor.evaluate("() => document.querySelectorAll('#queue li').length === 2"),
        10,
        "both callers in the advisor's queue",
    )
    roles = await advisor.evaluate(
        "() => [...document.querySelectorAll('#queue li')].map((li) => li.dataset.callerRole)"
    )
    assert roles == ["booth", "citizen"]
    assert (await advisor.title()).startswith("(2)")
    summary = await advisor.inner_text("#queues")
    assert "2 waiting" in summary

    # First the booth: video both ways, then the advisor ends that call.
    await advisor.get_by_role("button", name="Accept call from Branch 1 booth").click()
    await playing(advisor, "#remote-video", "the booth's video at the advisor")
    _booth_receives(booth, "the booth to receive the advisor's video")
    await advisor.get_by_role("button", name="End call").click()
    await advisor.wait_for_selector("#queue-view:not([hidden])")
    booth.wait_for(lambda s: s.get("calls_completed") == 1, 15, "the booth's call to end")

    # Now the citizen is first in the queue and learns it.
    await poll(
        lambda: citizen.evaluate(
            "() => document.getElementById('queue-position').dataset.position === '1'"
        ),
        10,
        "the citizen to move up",
    )
    await advisor.get_by_role("button", name="Accept call from Citizen").click()
    for page, who in ((advisor, "advisor"), (citizen, "citizen")):
        size = await playing(page, "#remote-video", f"video at the {who}")
        print(f"{who} sees the other side: {size[0]:.0f} px wide")

    # Chat both ways.
    await citizen.get_by_label("Message").fill("Guten Tag")
    await citizen.get_by_role("button", name="Send").click()
    await advisor.wait_for_selector("#chat-log li:has-text('Guten Tag')")
    await advisor.get_by_label("Message").fill("Wie kann ich helfen?")
    await advisor.get_by_role("button", name="Send").click()
    await citizen.wait_for_selector("#chat-log li:has-text('Wie kann ich helfen?')")

    await citizen.get_by_role("button", name="End call").click()
    await citizen.wait_for_selector("#ended-view:not([hidden])")
    await advisor.wait_for_selector("#queue-view:not([hidden])")
    await context.close()


async def test_an_interpreter_joins_by_link_and_all_three_see_each_other(
    relayed_server: Server, start_booth: Any, browser: Any
) -> None:
    advisor = await login_advisor(browser, relayed_server)
    booth = start_booth(relayed_server, "Branch 1 booth", "--call")
    await advisor.get_by_role("button", name="Accept call from Branch 1 booth").click(
        timeout=30_000
    )
    await playing(advisor, "#remote-video", "the booth's video at the advisor")

    # The advisor invites an interpreter into the running call and passes on the link.
    link = await invite_link(advisor, "Interpreter (Turkish)")

    context, interpreter = await citizen_page(browser)
    await three_clicks(interpreter, link)
    assert "Interpreter (Turkish)" in await interpreter.inner_text("#welcome-title")

    # The advisor admits the interpreter from the call view.
    await advisor.get_by_role("button", name="Admit Interpreter (Turkish) into the call").click(
        timeout=15_000
    )
    await playing(interpreter, "#remote-video", "the advisor's video at the interpreter")
    await playing(interpreter, "#tiles li video", "the booth's video at the interpreter")
    await playing(advisor, "#tiles li video", "the interpreter's video at the advisor")
    status = _booth_receives(booth, "the booth to receive both the advisor and the interpreter", 1)
    print(
        f"\nbooth receives: advisor {status['call']['video_fps_received']} fps, "
        f"interpreter {status['others'][0]['video_fps_received']} fps"
    )
    caption = await interpreter.inner_text("#tiles li span")
    assert caption == "Branch 1 booth"

    # Chat reaches all three.
    await interpreter.get_by_label("Message").fill("Merhaba")
    await interpreter.get_by_role("button", name="Send").click()
    await advisor.wait_for_selector("#chat-log li:has-text('Merhaba')")
    booth.wait_for(lambda s: (s.get("call") or {}).get("chat_lines") == 1, 10, "the booth's chat")

    # The interpreter leaves; the booth and the advisor go on talking.
    await interpreter.get_by_role("button", name="End call").click()
    await interpreter.wait_for_selector("#ended-view:not([hidden])")
    await poll(
        lambda: advisor.evaluate("() => document.querySelectorAll('#tiles li').length === 0"),
        10,
        "the interpreter's tile to go",
    )
    _booth_receives(booth, "the booth to close the interpreter's connection", 0)
    assert await advisor.is_visible("#call-view")
    await advisor.get_by_role("button", name="End call").click()
    await advisor.wait_for_selector("#queue-view:not([hidden])")
    await context.close()
