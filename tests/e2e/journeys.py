"""Steps the browser tests share: a citizen's page, the three clicks into the lobby, a video
that plays, and the advisor's invitation of someone (an interpreter) into the running call."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import poll

PLAYING = """
(selector) => {
  const v = document.querySelector(selector);
  return v && v.videoWidth > 0 && v.currentTime > 0.5 ? [v.videoWidth, v.currentTime] : null;
}
"""


async def playing(page: Any, selector: str, what: str) -> list[float]:
    """The video at ``selector`` shows frames and has played half a second: its width, time."""
    result: list[float] = await poll(lambda: page.evaluate(PLAYING, selector), 25, what)
    return result


async def citizen_page(browser: Any, **context: Any) -> tuple[Any, Any]:
    """A citizen's browser (its own context, camera and microphone allowed) and its page."""
    made = await browser.new_context(permissions=["camera", "microphone"], **context)
    page = await made.new_page()
    page.on("console", lambda msg: print(f"[citizen console] {msg.type}: {msg.text}"))
    return made, page


async def three_clicks(page: Any, url: str) -> None:
    """Open the link (1), agree and turn on the camera (2), join (3): in the lobby."""
    await page.goto(url)  # (1)
    await page.wait_for_selector("#welcome-view:not([hidden])")
    await page.get_by_role("button", name="Agree and turn on camera").click()  # (2)
    await page.wait_for_selector("#prejoin-view:not([hidden])")
    await page.get_by_role("button", name="Join").click()  # (3)
    await page.wait_for_selector("#lobby-view:not([hidden])")


async def invite_link(advisor: Any, shown_as: str) -> str:
    """In the advisor's running call: "Invite someone", the name the others will see, the
    link made."""
    name = advisor.get_by_label("How the others will see them")
    if not await name.is_visible():  # the form opens under its summary
        await advisor.get_by_text("Invite someone (an interpreter) into this call").click()
    await name.fill(shown_as)
    await advisor.get_by_role("button", name="Create link").click()
    await advisor.wait_for_selector("#invite-result:not([hidden])")
    link: str = await advisor.inner_text("#invite-link")
    return link
