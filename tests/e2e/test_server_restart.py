"""A restart of the server, seen from two browsers: a citizen waiting in the queue is still
waiting afterwards, and a call between the citizen and the advisor goes on (media is peer to
peer through coturn), the pages resume their signalling and chat flows again. Real server
killed with SIGKILL, real coturn, Chromium for both people."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest

from tests.e2e.conftest import Server, login_advisor, poll
from tests.e2e.journeys import citizen_page, playing, three_clicks

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def _kill_and_restart(server: Server) -> None:
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(10)
    server.start()


async def _video_time(page: Any) -> float:
    value: float = await page.evaluate("() => document.getElementById('remote-video').currentTime")
    return value


async def test_waits_and_calls_outlive_a_restart_of_the_server(
    relayed_server: Server, browser: Any
) -> None:
    advisor = await login_advisor(browser, relayed_server)
    context, citizen = await citizen_page(browser)
    await three_clicks(citizen, f"{relayed_server.url}/now/")
    await poll(
        lambda: advisor.evaluate("() => document.querySelectorAll('#queue li').length === 1"),
        10,
        "the citizen in the queue",
    )

    # The server dies while the citizen waits: afterwards the citizen is still in the queue.
    _kill_and_restart(relayed_server)
    await poll(
        lambda: advisor.evaluate(
            "() => document.getElementById('connection-state').dataset.i18n === 'online'"
            " && document.querySelectorAll('#queue li').length === 1"
        ),
        20,
        "the advisor's workspace to show the waiting citizen again",
    )
    assert await citizen.is_visible("#lobby-view")

    await advisor.get_by_role("button", name="Accept call from Citizen").click()
    for page, who in ((advisor, "advisor"), (citizen, "citizen")):
        await playing(page, "#remote-video", f"video at the {who}")

    # The server dies in the middle of the call: nobody's call ends.
    before = {id(p): await _video_time(p) for p in (advisor, citizen)}
    _kill_and_restart(relayed_server)
    for page in (advisor, citizen):
        assert await page.is_visible("#call-view")
        await poll(
            lambda page=page: _async_gt(_video_time(page), before[id(page)] + 1.0),
            10,
            "the video to go on through the restart",
        )
    # Signalling is back both ways: chat from each side reaches the other.
    await citizen.get_by_label("Message").fill("Sind Sie noch da?")
    await citizen.get_by_role("button", name="Send").click()
    await advisor.wait_for_selector("#chat-log li:has-text('Sind Sie noch da?')", timeout=20_000)
    await advisor.get_by_label("Message").fill("Ja, alles gut")
    await advisor.get_by_role("button", name="Send").click()
    await citizen.wait_for_selector("#chat-log li:has-text('Ja, alles gut')", timeout=20_000)
    assert await advisor.is_visible("#call-view") and await citizen.is_visible("#call-view")
    state = await advisor.evaluate("() => document.getElementById('call-state').dataset.state")
    assert state == "connected", state

    await citizen.get_by_role("button", name="End call").click()
    await citizen.wait_for_selector("#ended-view:not([hidden])")
    await advisor.wait_for_selector("#queue-view:not([hidden])")
    await context.close()


async def _async_gt(value: Any, threshold: float) -> bool:
    return bool(await value > threshold)
