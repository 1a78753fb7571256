"""Smaller holes from the review, each shown and shown closed: a cancelled appointment's guest
pass kept working; deeply nested JSON on the socket wrote a traceback per message; query and
body values Python cannot turn into numbers or dates answered 500; the Server header named
the versions of Python and aiohttp."""

from __future__ import annotations

import logging

import aiohttp
import pytest

from server.keys import DATABASE, SWITCHBOARD
from server.storage import create_user, list_appointments
from tests.security.conftest import Harness
from tests.security.test_security_live_logins import _closed
from tests.server.conftest import PASSWORD
from tests.server.test_join import _appointment_for, _citizen


async def test_security_a_cancelled_appointment_kills_its_guest_pass(harness: Harness) -> None:
    await harness.add_advisor("alice")
    advisor = await harness.advisor("alice")
    token = await _appointment_for(harness, "alice")
    citizen = await _citizen(harness, token)
    await citizen.send(type="lobby_join")
    await citizen.receive_type("call_waiting")
    queue = await advisor.receive_queue()
    while not queue["waiting"]:
        queue = await advisor.receive_queue()
    (appointment,) = await list_appointments(harness.app[DATABASE])

    async with advisor.http.post(
        harness.url(f"/api/v1/appointments/{appointment.id}/cancel"), json={}
    ) as response:
        assert response.status == 200
    assert await _closed(citizen) == (4003, "the appointment was cancelled")
    assert (await advisor.receive_queue())["waiting"] == []
    # The pass in the citizen's browser opens nothing any more, and neither does the link.
    async with citizen.http.get(harness.url("/api/v1/ws")) as response:
        assert response.status == 401
    async with citizen.http.post(harness.url("/api/v1/join"), json={"token": token}) as response:
        assert response.status == 410
        assert (await response.json())["reason"] == "cancelled"


async def test_security_deeply_nested_json_is_a_counted_error_not_a_traceback(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    booth = await harness.booth(await harness.add_booth("Booth A"))
    await booth.receive_type("welcome")
    deep = '{"v": 1, "type": "chat", "session_id": "s", "text": ' + "[" * 30_000 + "]" * 30_000
    nested_object = (
        '{"v": 1, "type": "heartbeat", "state": ' + '{"a":' * 10_000 + "1" + "}" * 10_001
    )
    switchboard = harness.app[SWITCHBOARD]
    before = switchboard.signalling_errors
    with caplog.at_level(logging.INFO):
        for frame in (deep + "}", nested_object) * 5:
            await booth.ws.send_str(frame)
            error = await booth.receive_type("error")
            assert error["code"] in ("bad_json", "invalid_message"), error
            assert "nested too deeply" in error["message"]
    assert switchboard.signalling_errors == before + 10
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_security_numbers_and_dates_out_of_range_are_bad_requests(
    harness: Harness,
) -> None:
    await create_user(harness.app[DATABASE], username="root", password=PASSWORD, role="admin")
    admin = await harness.login("root")
    for limit in ("\u00b2", "\u0663", "1\u00b2"):  # superscript two, Arabic-Indic three
        async with admin.get(harness.url("/api/v1/audit"), params={"limit": limit}) as response:
            assert response.status == 400, limit
            assert "whole number" in (await response.json())["detail"]
    for when in ("9999-12-31T23:00:00Z", "0001-01-01T00:30:00+01:00"):
        async with admin.post(
            harness.url("/api/v1/appointments"),
            json={"starts_at": when, "duration_minutes": 30, "channel": "either"},
        ) as response:
            assert response.status == 400, (when, await response.text())
    await admin.close()


async def test_security_the_server_header_names_no_versions(harness: Harness) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/api/v1/health", "/advisor/", "/static/js/mesh.js", "/nowhere", "/api/v1/ws"):
            async with http.get(harness.url(path)) as response:
                assert response.headers["Server"] == "Videobooth", (path, response.headers)
        credential = await harness.add_booth("Booth A")
        async with http.ws_connect(
            harness.url("/api/v1/ws"), headers={"Authorization": f"Bearer {credential}"}
        ) as ws:
            assert ws._response.headers["Server"] == "Videobooth"
