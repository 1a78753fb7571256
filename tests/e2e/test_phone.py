"""The citizen on a phone: the join link, the three taps, the lobby and the call at 360x640 and
390x844 CSS px, upright and on its side, with touch (Chromium's device emulation).

On each: nothing is wider than the screen; every control is reached without zooming (inside the
screen's width once scrolled to, at least 44 CSS px high to hit with a finger); the advisor's
video fits on the screen whole; the three taps stay three.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.axe import reflows
from tests.e2e.conftest import Server, appointment_start, login_advisor, poll

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PHONES = {
    "360x640 upright": (360, 640),
    "640x360 on its side": (640, 360),
    "390x844 upright": (390, 844),
    "844x390 on its side": (844, 390),
}

#: Where a control is once scrolled to, and the screen's size.
PLACE = """(selector) => {
  const el = document.querySelector(selector);
  el.scrollIntoView({ block: 'center', inline: 'nearest' });
  const box = el.getBoundingClientRect();
  return { left: box.left, right: box.right, top: box.top, bottom: box.bottom,
           width: box.width, height: box.height,
           screen: [document.documentElement.clientWidth, window.innerHeight] };
}"""

VIDEO = """() => {
  const v = document.getElementById('remote-video');
  const box = v.getBoundingClientRect();
  return { playing: v.videoWidth > 0 && v.currentTime > 0.3, width: box.width,
           height: box.height, screen: [document.documentElement.clientWidth, window.innerHeight] };
}"""


async def reachable(page: Any, selectors: list[str], where: str) -> None:
    for selector in selectors:
        place = await page.evaluate(PLACE, selector)
        width, height = place["screen"]
        assert place["left"] >= 0 and place["right"] <= width + 0.5, (where, selector, place)
        assert place["top"] >= 0 and place["bottom"] <= height + 0.5, (where, selector, place)
        assert place["height"] >= 44 and place["width"] >= 44, (where, selector, place)


async def _invitation(advisor: Any) -> str:
    previous = await advisor.evaluate("() => document.getElementById('invitation-link').innerText")
    await advisor.evaluate("() => { document.getElementById('new-appointment').open = true; }")
    await advisor.get_by_label("Date and time").fill(await appointment_start())
    await advisor.get_by_role("button", name="Create appointment").click()
    await advisor.wait_for_function(
        "(old) => document.getElementById('invitation-link').textContent !== old", arg=previous
    )
    link: str = await advisor.inner_text("#invitation-link")
    return link


async def test_phone_citizen_joins_and_talks_on_every_screen_size(
    relayed_server: Server, browser: Any
) -> None:
    advisor = await login_advisor(browser, relayed_server)
    for name, (width, height) in PHONES.items():
        join_link = await _invitation(advisor)
        context = await browser.new_context(
            viewport={"width": width, "height": height},
            device_scale_factor=3,
            is_mobile=True,
            has_touch=True,
            permissions=["camera", "microphone"],
        )
        citizen = await context.new_page()
        taps = 0
        await citizen.goto(join_link)  # (1) the link
        taps += 1
        await citizen.wait_for_selector("#welcome-view:not([hidden])")
        await reflows(citizen, f"{name}: welcome")
        await reachable(citizen, ["#consent", "#language"], f"{name}: welcome")
        await citizen.tap("#consent")  # (2) agree, camera on
        taps += 1
        await citizen.wait_for_selector("#prejoin-view:not([hidden])")
        await reflows(citizen, f"{name}: camera check")
        await reachable(citizen, ["#join", "#camera-select", "#mic-select"], f"{name}: check")
        await citizen.tap("#join")  # (3) join
        taps += 1
        await citizen.wait_for_selector("#lobby-view:not([hidden])")
        assert taps == 3
        await reflows(citizen, f"{name}: lobby")
        await reachable(citizen, ["#cancel-wait"], f"{name}: lobby")

        await advisor.get_by_role("button", name="Admit Citizen to the appointment").click(
            timeout=15_000
        )
        video = await poll(
            lambda citizen=citizen: citizen.evaluate(
                f"() => {{ const v = ({VIDEO})(); return v.playing ? v : null; }}"
            ),
            20,
            f"{name}: the advisor's video",
        )
        screen_width, screen_height = video["screen"]
        assert video["width"] <= screen_width + 0.5 and video["height"] <= screen_height + 0.5
        assert video["width"] >= 0.5 * min(screen_width, 16 / 9 * screen_height), video
        await reflows(citizen, f"{name}: call")
        await reachable(
            citizen, ["#mute", "#camera", "#hangup", "#chat-input", "#chat-form button"], name
        )
        await citizen.tap("#chat-input")
        await citizen.keyboard.type(f"Hallo vom Telefon ({name})")
        await citizen.tap("#chat-form button")
        await advisor.wait_for_selector(f"#chat-log li:has-text('Hallo vom Telefon ({name})')")
        await citizen.tap("#hangup")
        await citizen.wait_for_selector("#ended-view:not([hidden])")
        await reflows(citizen, f"{name}: ended")
        await advisor.wait_for_selector("#queue-view:not([hidden])")
        print(
            f"{name}: three taps, video {video['width']:.0f}x{video['height']:.0f} "
            f"on {screen_width}x{screen_height}"
        )
        await context.close()

    # A walk-in at /now/ on the smallest phone: the same three taps to a place in the queue.
    context = await browser.new_context(
        viewport={"width": 360, "height": 640},
        device_scale_factor=3,
        is_mobile=True,
        has_touch=True,
        permissions=["camera", "microphone"],
    )
    walk_in = await context.new_page()
    await walk_in.goto(f"{relayed_server.url}/now/")
    await walk_in.wait_for_selector("#welcome-view:not([hidden])")
    await reflows(walk_in, "360x640: walk-in welcome")
    await reachable(walk_in, ["#consent", "#language"], "360x640: walk-in welcome")
    await walk_in.tap("#consent")
    await walk_in.wait_for_selector("#prejoin-view:not([hidden])")
    await walk_in.tap("#join")
    await walk_in.wait_for_selector("#queue-position:not([hidden])")
    await reflows(walk_in, "360x640: walk-in in the queue")
    await reachable(walk_in, ["#cancel-wait"], "360x640: walk-in in the queue")
    await walk_in.tap("#cancel-wait")
    await context.close()
