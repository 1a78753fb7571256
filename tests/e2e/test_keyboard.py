"""Keyboard only: the advisor's workspace and the citizen's join page without a mouse.

Every step presses real keys (Tab, Shift+Tab, Enter, Space, typing) in Chromium and then checks
which element has the focus and that it shows a focus indicator a sighted keyboard user can see.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.e2e.conftest import BoothProcess, Server, appointment_start, login_advisor, poll

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

# The focused element, its accessible name and the indicator it draws while :focus-visible.
FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const visibleColour = (c) => c && c !== "transparent" && !/rgba\\(.*,\\s*0\\)$/.test(c);
  let indicator = null;
  if (style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0
      && visibleColour(style.outlineColor)) {
    indicator = `outline ${style.outlineStyle} ${style.outlineWidth} ${style.outlineColor}`;
  } else if (style.boxShadow !== "none") {
    indicator = `box-shadow ${style.boxShadow}`;
  }
  const label = el.getAttribute("aria-label")
    || (el.labels && el.labels.length ? el.labels[0].textContent : el.textContent);
  return { id: el.id, tag: el.tagName.toLowerCase(), label: label.trim(),
           focusVisible: el.matches(":focus-visible"), indicator };
}"""

VIDEO_PLAYING = """() => {
  const v = document.getElementById('remote-video');
  return v && v.videoWidth > 0 && v.currentTime > 0.5 ? [v.videoWidth, v.currentTime] : null;
}"""


async def focus_on(page: Any, expected: str) -> dict[str, Any]:
    """The element named ``expected`` has the focus and visibly shows it."""
    focus: dict[str, Any] | None = await page.evaluate(FOCUSED)
    assert focus is not None, f"nothing has the focus; expected {expected!r}"
    assert focus["label"] == expected, f"focus is on {focus}, expected {expected!r}"
    assert focus["focusVisible"], f"{expected!r} has the focus but is not :focus-visible"
    assert focus["indicator"], f"{expected!r} has the focus but shows no indicator: {focus}"
    return focus


async def press(page: Any, key: str, expected: str) -> dict[str, Any]:
    """Press ``key``; then the focus must be on ``expected``, visibly."""
    await page.keyboard.press(key)
    try:
        return await focus_on(page, expected)
    except AssertionError as exc:
        raise AssertionError(f"after {key}: {exc}") from exc


async def booth_status(booth: BoothProcess, check: Any, timeout: float, what: str) -> Any:
    return await asyncio.to_thread(booth.wait_for, check, timeout, what)


async def test_advisor_by_keyboard_only(
    relayed_server: Server, start_booth: Any, browser: Any
) -> None:
    started = time.monotonic()
    booth = start_booth(relayed_server, "Branch 1 booth", "--call")
    context = await browser.new_context(permissions=["camera", "microphone"])
    page = await context.new_page()
    page.on("console", lambda msg: print(f"[advisor console] {msg.type}: {msg.text}"))
    await page.goto(f"{relayed_server.url}/advisor/")
    await page.wait_for_selector("#login-view:not([hidden])")

    # Log in.
    await press(page, "Tab", "Language")
    await press(page, "Tab", "Username")
    await page.keyboard.type("advisor")
    await press(page, "Tab", "Password")
    await page.keyboard.type(relayed_server.advisor_password)
    await press(page, "Tab", "Log in")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#queue-view:not([hidden])")

    # Accept the waiting booth's call; the list is rebuilt on every queue update (here a second
    # booth calls) and the focus must stay on the same button through that.
    await booth_status(booth, lambda s: s.get("state") == "waiting", 30, "the booth to wait")
    await page.wait_for_selector("#queue li[data-caller-role='booth'] button")
    await press(page, "Tab", "Accept next call in Any topic")
    await press(page, "Tab", "Accept call from Branch 1 booth")
    second = start_booth(relayed_server, "Branch 2 booth", "--call")
    await booth_status(second, lambda s: s.get("state") == "waiting", 30, "a second booth")
    await page.wait_for_selector("#queue li:nth-child(2)")
    await focus_on(page, "Accept call from Branch 1 booth")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#call-view:not([hidden])")
    await poll(lambda: page.evaluate(VIDEO_PLAYING), 20, "the booth's video")

    # Mute and unmute (Space), camera off and on (Enter).
    await press(page, "Tab", "Mute microphone")
    await press(page, "Space", "Unmute microphone")
    assert await page.get_attribute("#mute", "aria-pressed") == "true"
    await press(page, "Space", "Mute microphone")
    assert await page.get_attribute("#mute", "aria-pressed") == "false"
    await press(page, "Tab", "Turn camera off")
    await press(page, "Enter", "Turn camera on")
    assert await page.get_attribute("#camera", "aria-pressed") == "true"
    await press(page, "Enter", "Turn camera off")
    assert await page.get_attribute("#camera", "aria-pressed") == "false"

    # A chat line, sent with Enter.
    await press(page, "Tab", "End call")
    await press(page, "Tab", "Invite someone (an interpreter) into this call")
    await press(page, "Tab", "Message")
    await page.keyboard.type("Hello from the keyboard")
    await press(page, "Enter", "Message")
    await page.wait_for_selector("#chat-log li:has-text('Hello from the keyboard')")
    await booth_status(
        booth, lambda s: s.get("call", {}).get("chat_lines") == 1, 10, "the chat line"
    )

    # Hang up.
    await press(page, "Shift+Tab", "Invite someone (an interpreter) into this call")
    await press(page, "Shift+Tab", "End call")
    await page.keyboard.press("Enter")
    await booth_status(
        booth,
        lambda s: s.get("state") in ("ended", "idle") and s.get("calls_completed") == 1,
        15,
        "the booth to leave the call",
    )
    await page.wait_for_selector("#queue-view:not([hidden])")
    await context.close()
    print(f"\nadvisor by keyboard: {time.monotonic() - started:.1f} s")


async def test_citizen_joins_by_keyboard_only(relayed_server: Server, browser: Any) -> None:
    started = time.monotonic()
    advisor = await login_advisor(browser, relayed_server)
    starts = await appointment_start()
    await advisor.get_by_text("New appointment").click()
    await advisor.get_by_label("Date and time").fill(starts)
    await advisor.get_by_role("button", name="Create appointment").click()
    await advisor.wait_for_selector("#invitation:not([hidden])")
    join_link = await advisor.inner_text("#invitation-link")

    context = await browser.new_context(permissions=["camera", "microphone"])
    citizen = await context.new_page()
    citizen.on("console", lambda msg: print(f"[citizen console] {msg.type}: {msg.text}"))

    # (1) open the link.
    await citizen.goto(join_link)
    await citizen.wait_for_selector("#welcome-view:not([hidden])")
    # (2) agree and turn on the camera.
    await press(citizen, "Tab", "Language")
    await press(citizen, "Tab", "Agree and turn on camera")
    await citizen.keyboard.press("Enter")
    await citizen.wait_for_selector("#prejoin-view:not([hidden])")
    # (3) join, past the device choice.
    await press(citizen, "Tab", "Camera")
    await press(citizen, "Tab", "Microphone")
    await press(citizen, "Tab", "Join")
    await citizen.keyboard.press("Space")
    await citizen.wait_for_selector("#lobby-view:not([hidden])")
    await press(citizen, "Tab", "Stop waiting")

    await advisor.wait_for_selector("#appointments .status.waiting")
    await advisor.get_by_role("button", name="Admit Citizen to the appointment").click()
    await citizen.wait_for_selector("#call-view:not([hidden])")
    await poll(lambda: citizen.evaluate(VIDEO_PLAYING), 20, "the advisor's video")

    await press(citizen, "Tab", "Mute microphone")
    await press(citizen, "Tab", "Turn camera off")
    await press(citizen, "Tab", "End call")
    await citizen.keyboard.press("Enter")
    await citizen.wait_for_selector("#ended-view:not([hidden])")
    await advisor.wait_for_selector("#queue-view:not([hidden])")
    await context.close()
    print(f"\ncitizen by keyboard: {time.monotonic() - started:.1f} s")
