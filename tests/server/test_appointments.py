"""Appointments through the API: create with link, code and invitation; list, move, cancel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from server.keys import DATABASE
from server.storage import appointment_by_code, create_user, list_audit
from tests.server.conftest import PASSWORD, Harness


def _soon(hours: float = 2) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).replace(microsecond=0).isoformat()


async def _create(
    http: aiohttp.ClientSession, harness: Harness, **body: Any
) -> aiohttp.ClientResponse:
    return await http.post(harness.url("/api/v1/appointments"), json={"starts_at": _soon(), **body})


async def test_create_gives_link_code_invitation_and_qr_once(harness: Harness) -> None:
    await harness.add_advisor("alice")
    http = await harness.login("alice")
    try:
        response = await _create(http, harness, duration_minutes=45, citizen_label="A.B.")
        assert response.status == 201, await response.text()
        created = await response.json()
    finally:
        await http.close()
    code, link = created["join_code"], created["join_link"]
    assert len(code) == 8 and code.isdigit()
    assert link.startswith(harness.url("/join/"))
    for text in created["invitation"].values():
        assert link in text and f"{code[:4]} {code[4:]}" in text
    assert "nicht aufgezeichnet" in created["invitation"]["de"]
    assert created["qr_svg"].startswith("<svg")
    assert created["appointment"]["duration_minutes"] == 45
    assert created["appointment"]["status"] == "scheduled"
    events = await list_audit(harness.app[DATABASE])
    assert [e.action for e in events] == ["appointment.create"]
    assert code not in (events[0].detail or "")


async def test_advisors_see_and_change_only_their_own(harness: Harness) -> None:
    await harness.add_advisor("alice")
    await harness.add_advisor("bob")
    await create_user(harness.app[DATABASE], username="admin1", password=PASSWORD, role="admin")
    alice, bob, admin = [await harness.login(n) for n in ("alice", "bob", "admin1")]
    try:
        created = await (await _create(alice, harness)).json()
        appointment_id = created["appointment"]["id"]
        listed = await (await bob.get(harness.url("/api/v1/appointments"))).json()
        assert listed["appointments"] == []
        listed = await (await admin.get(harness.url("/api/v1/appointments"))).json()
        assert [a["id"] for a in listed["appointments"]] == [appointment_id]

        url = harness.url(f"/api/v1/appointments/{appointment_id}")
        response = await bob.patch(url, json={"starts_at": _soon(3)})
        assert response.status == 404
        response = await bob.post(url + "/cancel")
        assert response.status == 404

        response = await alice.patch(url, json={"starts_at": _soon(3)})
        assert response.status == 200, await response.text()
        response = await alice.post(url + "/cancel")
        assert (await response.json())["appointment"]["status"] == "cancelled"
        # A cancelled appointment's code no longer opens anything.
        assert await appointment_by_code(harness.app[DATABASE], created["join_code"]) is None
    finally:
        for http in (alice, bob, admin):
            await http.close()


async def test_bad_appointments_are_refused_with_a_reason(harness: Harness) -> None:
    await harness.add_advisor("alice")
    http = await harness.login("alice")
    try:
        naive = datetime.now() + timedelta(hours=1)
        cases = [
            ({"starts_at": naive.isoformat()}, "timezone"),
            ({"starts_at": _soon(), "duration_minutes": 1000}, "duration_minutes"),
            ({"starts_at": _soon(), "channel": "fax"}, "channel"),
            ({"starts_at": _soon(), "channel": "booth"}, "branch"),
            ({"starts_at": _soon(), "surprise": 1}, "surprise"),
        ]
        for body, word in cases:
            response = await http.post(harness.url("/api/v1/appointments"), json=body)
            problem = await response.json()
            assert response.status == 400, (body, problem)
            assert word in problem["detail"].lower(), (body, problem)
        response = await http.get(harness.url("/api/v1/appointments?day=yesterday"))
        assert response.status == 400
    finally:
        await http.close()
