"""A citizen on a German page: the status badge says when the call is connected; after the call
the same link lets them join again (the window is still open); and a link that does not open
(too early, cancelled) says why in German with what to do. Real server, coturn and Chromium."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.axe import audit, no_violations
from tests.e2e.conftest import Server, login_advisor, poll

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


async def _appointment(advisor: Any, server: Server, minutes_ahead: float) -> dict[str, Any]:
    """An appointment of the logged-in advisor's, made over the API with its session."""
    starts = datetime.now(UTC) + timedelta(minutes=minutes_ahead)
    response = await advisor.request.post(
        f"{server.url}/api/v1/appointments",
        data={"starts_at": starts.isoformat(), "duration_minutes": 30, "channel": "own_device"},
    )
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def _three_clicks_in_german(page: Any, link: str) -> None:
    await page.goto(link)
    await page.wait_for_selector("#welcome-view:not([hidden])")
    await page.get_by_role("button", name="Zustimmen und Kamera einschalten").click()
    await page.wait_for_selector("#prejoin-view:not([hidden])")
    await page.get_by_role("button", name="Beitreten").click()
    await page.wait_for_selector("#lobby-view:not([hidden])")


async def _admitted_and_connected(advisor: Any, citizen: Any) -> None:
    await advisor.get_by_role("button", name="Admit Citizen to the appointment").click(
        timeout=15_000
    )
    await citizen.wait_for_selector("#call-view:not([hidden])")
    # The badge follows the connection to "connected" (it stayed on "connecting" before).
    await poll(
        lambda: citizen.evaluate(
            "() => document.getElementById('call-state').dataset.state === 'connected'"
        ),
        20,
        "the citizen's badge to say connected",
    )
    assert await citizen.inner_text("#call-state") == "verbunden"


async def test_a_citizen_rejoins_after_the_call_and_refusals_are_in_their_language(
    relayed_server: Server, browser: Any
) -> None:
    advisor = await login_advisor(browser, relayed_server)
    created = await _appointment(advisor, relayed_server, minutes_ahead=1)
    link = created["join_link"]
    context = await browser.new_context(permissions=["camera", "microphone"], locale="de-DE")
    citizen = await context.new_page()
    citizen.on("console", lambda msg: print(f"[citizen console] {msg.type}: {msg.text}"))

    await _three_clicks_in_german(citizen, link)
    await _admitted_and_connected(advisor, citizen)
    await advisor.get_by_role("button", name="End call").click()
    await citizen.wait_for_selector("#ended-view:not([hidden])")
    no_violations([await audit(citizen, "citizen: call ended, join again (Deutsch)")])

    # The same link, within its window: join again from the ended page.
    await citizen.get_by_role("button", name="Erneut teilnehmen").click()
    await citizen.wait_for_selector("#welcome-view:not([hidden])")
    assert await citizen.is_hidden("#notice")
    await citizen.get_by_role("button", name="Zustimmen und Kamera einschalten").click()
    await citizen.get_by_role("button", name="Beitreten").click()
    await citizen.wait_for_selector("#lobby-view:not([hidden])")
    await _admitted_and_connected(advisor, citizen)
    await advisor.get_by_role("button", name="End call").click()
    await citizen.wait_for_selector("#ended-view:not([hidden])")

    # Cancelled: the link says so, in German, and what to do.
    cancelled = await _appointment(advisor, relayed_server, minutes_ahead=1)
    response = await advisor.request.post(
        f"{relayed_server.url}/api/v1/appointments/{cancelled['appointment']['id']}/cancel",
        data={},
    )
    assert response.status == 200
    await citizen.goto(cancelled["join_link"])
    await citizen.wait_for_selector("#notice:not([hidden])")
    assert await citizen.inner_text("#notice") == (
        "Dieser Termin wurde abgesagt. Bitte wenden Sie sich an die Dienststelle, um einen "
        "neuen zu vereinbaren."
    )

    # Too early: when the link opens, in German.
    later = await _appointment(advisor, relayed_server, minutes_ahead=120)
    await citizen.goto(later["join_link"])
    await citizen.wait_for_selector("#notice:not([hidden])")
    text = await citizen.inner_text("#notice")
    assert text.startswith("Es ist noch etwas früh: Dieser Link öffnet um "), text
    no_violations([await audit(citizen, "citizen: too early (Deutsch)")])
    # In the organisation's zone (the server's default, Europe/Berlin), as invitations say it.
    opens = (datetime.now(UTC) + timedelta(minutes=105)).astimezone(ZoneInfo("Europe/Berlin"))
    assert any((opens - timedelta(minutes=m)).strftime("%H:%M") in text for m in (0, 1)), text
    await context.close()
