"""Booth health and remote control: heartbeats fill the fleet view and the history, booths go
offline when they fall silent or disconnect, commands reach the booth and the audit log,
out of service outlives a reconnect, and /metrics answers only with its token."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from protocol import BoothHealth, CommandResult, Role
from server.app import housekeeping
from server.fleet_health import (
    FLEET,
    OUT_OF_SERVICE_KEY,
    RECORD_EVERY_SECONDS,
    FleetMonitor,
)
from server.keys import DATABASE, SWITCHBOARD
from server.signalling import Participant
from server.signalling.fakes import RecordingTransport
from server.storage import (
    Database,
    add_booth_for_enrolment,
    create_branch,
    create_topic,
    create_user,
    get_setting,
    health_since,
    latest_health,
    list_audit,
    record_health,
    set_booth_branch,
)
from server.storage.models import BoothHealth as StoredHealth
from tests.server.conftest import PASSWORD, Harness, MakeHarness, Peer

HEALTH: dict[str, Any] = {
    "version": "1.4.2",
    "uptime_seconds": 3600.5,
    "cpu_temperature_c": 52.5,
    "load_1m": 0.4,
    "disk_free_mb": 12000,
    "camera_ok": True,
    "microphone_ok": True,
    "speaker_ok": None,
    "server_rtt_ms": 3.2,
    "state": "idle",
}
METRICS_TOKEN = "metrics-token-0123456789abcdef"


async def _admin(harness: Harness) -> aiohttp.ClientSession:
    await create_user(harness.app[DATABASE], username="admin1", password=PASSWORD, role="admin")
    return await harness.login("admin1")


@pytest.fixture
async def admin(harness: Harness) -> AsyncIterator[aiohttp.ClientSession]:
    http = await _admin(harness)
    yield http
    await http.close()


async def _booth(harness: Harness, name: str) -> tuple[str, str, Peer]:
    """A booth: its id, credential and connected signalling peer."""
    credential = await harness.add_booth(name)
    peer = await harness.booth(credential)
    await peer.receive_type("welcome")
    return credential.split(".")[0], credential, peer


async def _fleet(
    harness: Harness, admin: aiohttp.ClientSession, **query: str
) -> dict[str, dict[str, Any]]:
    async with admin.get(harness.url("/api/v1/fleet"), params=query) as response:
        body = await response.json()
        assert response.status == 200, body
    return {booth["name"]: booth for booth in body["booths"]}


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def _command(
    harness: Harness, admin: aiohttp.ClientSession, booth_id: str, body: Any
) -> tuple[int, dict[str, Any]]:
    async with admin.post(
        harness.url(f"/api/v1/booths/{booth_id}/commands"), json=body
    ) as response:
        return response.status, await response.json()


@contextlib.asynccontextmanager
async def _reading(peer: Peer) -> AsyncIterator[list[dict[str, Any]]]:
    """Read the peer's messages in the background (which also answers the server's pings)."""
    seen: list[dict[str, Any]] = []

    async def read() -> None:
        with contextlib.suppress(TimeoutError, AssertionError):
            while True:
                seen.append(await peer.receive(timeout=30))

    task = asyncio.create_task(read())
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# ---------------------------------------------------------------- health


async def test_heartbeats_with_health_show_up_in_the_fleet(
    harness: Harness, admin: aiohttp.ClientSession
) -> None:
    booth_id, _, peer = await _booth(harness, "Booth A")
    await _booth(harness, "Booth B")  # connected, no health yet
    await peer.send(type="heartbeat", state="idle", health=HEALTH)

    async def reported() -> bool:
        return (await _fleet(harness, admin))["Booth A"]["health"] is not None

    await _until(reported)
    fleet = await _fleet(harness, admin)
    entry = fleet["Booth A"]
    assert (entry["id"], entry["state"], entry["online"]) == (booth_id, "online", True)
    assert (entry["version"], entry["reported_state"]) == ("1.4.2", "idle")
    # A booth that predates the platform's fields reports them as not known.
    platform = dict.fromkeys(
        ("pin_driver", "lights_ok", "clock_synchronised", "audio_problem", "slot", "slot_good")
    )
    assert entry["health"] == {**HEALTH, "disk_free_mb": 12000.0, **platform}
    seen = datetime.fromisoformat(entry["last_seen"])
    assert abs((datetime.now(UTC) - seen).total_seconds()) < 5
    assert (fleet["Booth B"]["state"], fleet["Booth B"]["health"]) == ("online", None)

    # Stored at once, then at most once a minute: the next heartbeats stay in memory.
    await peer.send(type="heartbeat", state="in_call", health={**HEALTH, "state": "in_call"})

    async def in_call() -> bool:
        return (await _fleet(harness, admin))["Booth A"]["reported_state"] == "in_call"

    await _until(in_call)
    await harness.app[FLEET].flush()
    since = datetime.now(UTC) - timedelta(minutes=5)
    stored = await health_since(harness.app[DATABASE], booth_id, since)
    assert [r.state for r in stored] == ["idle"]
    assert RECORD_EVERY_SECONDS == 60.0


async def test_a_booths_platform_shows_in_the_fleet_and_its_faults_are_counted(
    make_harness: MakeHarness,
) -> None:
    harness = await make_harness(metrics_token=METRICS_TOKEN)
    admin = await _admin(harness)
    _, _, peer = await _booth(harness, "Booth A")
    platform = {
        "pin_driver": "lgpio",
        "lights_ok": False,
        "clock_synchronised": False,
        "audio_problem": "cannot open the microphone 'default': ALSA finds no configuration",
    }
    await peer.send(type="heartbeat", state="idle", health={**HEALTH, **platform})

    async def reported() -> bool:
        return (await _fleet(harness, admin))["Booth A"]["health"] is not None

    await _until(reported)
    health = (await _fleet(harness, admin))["Booth A"]["health"]
    assert {k: health[k] for k in platform} == platform
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            harness.url("/metrics"), headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
        ) as response,
    ):
        lines = set((await response.text()).splitlines())
    for fault in ("clock_not_set", "lights", "audio"):
        assert f'videobooth_booth_platform_faults{{fault="{fault}"}} 1.0' in lines
    await admin.close()


async def test_bad_health_is_refused_and_counted(harness: Harness) -> None:
    _, _, peer = await _booth(harness, "Booth A")
    await peer.send(type="heartbeat", id="h1", health={**HEALTH, "cpu_temperature_c": 900})
    error = await peer.receive_type("error")
    assert error["code"] == "invalid_message"
    assert error["message"].startswith("invalid heartbeat message: health.cpu_temperature_c")
    await peer.send(type="heartbeat", health={**HEALTH, "colour": "blue"})
    assert "health.colour" in (await peer.receive_type("error"))["message"]

    await harness.add_advisor("advisor1")
    advisor = await harness.advisor("advisor1")
    await advisor.send(type="heartbeat", health=HEALTH)
    error = await advisor.receive_type("error")
    assert (error["code"], error["message"]) == ("not_allowed", "only a booth reports its health")
    await advisor.send(type="command_result", command_id="x1", ok=True, detail="")
    assert (await advisor.receive_type("error"))["code"] == "not_allowed"
    assert harness.app[SWITCHBOARD].signalling_errors == 4


async def test_a_booth_that_stops_heartbeating_goes_offline(make_harness: MakeHarness) -> None:
    harness = await make_harness(heartbeat_seconds=0.2)
    admin = await _admin(harness)
    booth_id, _, peer = await _booth(harness, "Booth A")
    async with _reading(peer):
        await peer.send(type="heartbeat", state="idle", health=HEALTH)

        async def state() -> str:
            return str((await _fleet(harness, admin))["Booth A"]["state"])

        assert await state() == "online"
        await asyncio.sleep(0.8)  # more than 3 intervals of 0.2 s without a heartbeat
        assert await state() == "offline"
        # Still connected (it answers pings), yet silent: that is offline too.
        assert booth_id in harness.app[SWITCHBOARD].online_booths()
        entry = (await _fleet(harness, admin))["Booth A"]
        assert entry["online"] is False
        assert entry["health"]["version"] == "1.4.2"
        status, body = await _command(harness, admin, booth_id, {"command": "self_test"})
        assert status == 409, body

        await peer.send(type="heartbeat", state="idle", health=HEALTH)

        async def back() -> bool:
            return await state() == "online"

        await _until(back)
    await admin.close()


async def test_a_booth_that_disconnects_is_offline_and_remembered(
    harness: Harness, admin: aiohttp.ClientSession
) -> None:
    _, _, peer = await _booth(harness, "Booth A")
    await peer.send(type="heartbeat", state="idle", health=HEALTH)

    async def reported() -> bool:
        return (await _fleet(harness, admin))["Booth A"]["health"] is not None

    await _until(reported)
    await peer.close()

    async def offline() -> bool:
        return (await _fleet(harness, admin))["Booth A"]["state"] == "offline"

    await _until(offline)
    entry = (await _fleet(harness, admin))["Booth A"]
    assert entry["online"] is False
    assert entry["last_seen"] is not None
    assert (entry["version"], entry["health"]["cpu_temperature_c"]) == ("1.4.2", 52.5)


async def test_the_health_history(harness: Harness, admin: aiohttp.ClientSession) -> None:
    booth_id, _, _ = await _booth(harness, "Booth A")
    db = harness.app[DATABASE]
    figures = {k: v for k, v in HEALTH.items() if k != "state"}
    now = datetime.now(UTC)
    async with db.session() as session:
        for hours, temperature in ((30, 40.0), (20, 45.0), (2, 50.0)):
            session.add(
                StoredHealth(
                    booth_id=booth_id,
                    at=now - timedelta(hours=hours),
                    state="idle",
                    data=f'{{"cpu_temperature_c": {temperature}, "version": "1.4.1", '
                    f'"uptime_seconds": {hours}}}',
                )
            )
        await session.commit()
    await record_health(db, booth_id, state="in_call", data=figures)

    url = harness.url(f"/api/v1/booths/{booth_id}/health")
    async with admin.get(url) as response:
        body = await response.json()
        assert response.status == 200, body
    assert body["hours"] == 24
    reports = body["reports"]
    assert [r["cpu_temperature_c"] for r in reports] == [45.0, 50.0, 52.5]
    assert [r["state"] for r in reports] == ["idle", "idle", "in_call"]
    assert reports[0]["camera_ok"] is None
    assert reports[-1]["camera_ok"] is True
    async with admin.get(url, params={"hours": "168"}) as response:
        assert len((await response.json())["reports"]) == 4
    async with admin.get(url, params={"hours": "1"}) as response:
        assert len((await response.json())["reports"]) == 1
    for bad in ("0", "169", "abc", "-1", "1.5", ""):
        async with admin.get(url, params={"hours": bad}) as response:
            problem = await response.json()
            assert response.status == 400, bad
            assert problem["detail"].startswith("hours: a whole number from 1 to 168")
    async with admin.get(harness.url("/api/v1/booths/nope/health")) as response:
        assert response.status == 404


async def test_housekeeping_purges_health_after_a_week(harness: Harness) -> None:
    booth_id, _, _ = await _booth(harness, "Booth A")
    db = harness.app[DATABASE]
    now = datetime.now(UTC)
    async with db.session() as session:
        for days in (8, 6):
            session.add(
                StoredHealth(
                    booth_id=booth_id, at=now - timedelta(days=days), state="idle", data="{}"
                )
            )
        await session.commit()
    await housekeeping(harness.app)
    kept = await health_since(db, booth_id, now - timedelta(days=30))
    assert [round((now - r.at).total_seconds() / 86_400) for r in kept] == [6]


async def test_filters_by_branch_and_state(harness: Harness, admin: aiohttp.ClientSession) -> None:
    db = harness.app[DATABASE]
    north = await create_branch(db, "Branch North", "North")
    south = await create_branch(db, "Branch South", "South")
    a_id, _, _ = await _booth(harness, "Booth A")
    b_id, _, b = await _booth(harness, "Booth B")
    c_credential = await harness.add_booth("Booth C")  # never connected
    c_id = c_credential.split(".")[0]
    await set_booth_branch(db, a_id, north.id)
    await set_booth_branch(db, b_id, north.id)
    await set_booth_branch(db, c_id, south.id)
    await b.send(type="heartbeat", state="out_of_service")

    async def reported() -> bool:
        return (await _fleet(harness, admin))["Booth B"]["state"] == "out_of_service"

    await _until(reported)
    assert set(await _fleet(harness, admin, branch=north.id)) == {"Booth A", "Booth B"}
    assert set(await _fleet(harness, admin, branch=south.id)) == {"Booth C"}
    assert (await _fleet(harness, admin, branch=south.id))["Booth C"]["branch_name"] == (
        "Branch South"
    )
    assert set(await _fleet(harness, admin, state="online")) == {"Booth A"}
    assert set(await _fleet(harness, admin, state="offline")) == {"Booth C"}
    assert set(await _fleet(harness, admin, state="out_of_service")) == {"Booth B"}
    assert set(await _fleet(harness, admin, branch=north.id, state="offline")) == set()
    assert await _fleet(harness, admin, branch="no-such-branch") == {}
    async with admin.get(harness.url("/api/v1/fleet"), params={"state": "asleep"}) as response:
        problem = await response.json()
        assert response.status == 400
    assert problem["detail"] == "state: one of online, offline, out_of_service, not 'asleep'"


# ---------------------------------------------------------------- commands


async def test_commands_reach_the_booth_and_are_audited(
    harness: Harness, admin: aiohttp.ClientSession
) -> None:
    booth_id, _, peer = await _booth(harness, "Booth A")
    status, body = await _command(harness, admin, booth_id, {"command": "self_test"})
    assert status == 202, body
    assert (body["command"], body["booth_id"]) == ("self_test", booth_id)
    message = await peer.receive_type("booth_command")
    assert message == {
        "v": 1,
        "type": "booth_command",
        "command": "self_test",
        "command_id": body["command_id"],
    }
    events = await list_audit(harness.app[DATABASE])
    assert events[0].action == "booth.command.self_test"
    assert events[0].subject == booth_id
    assert events[0].detail == f'{{"command_id": "{body["command_id"]}"}}'

    await peer.send(
        type="command_result", command_id=body["command_id"], ok=False, detail="no camera"
    )

    async def answered() -> bool:
        return (await _fleet(harness, admin))["Booth A"]["last_command"] is not None

    await _until(answered)
    last = (await _fleet(harness, admin))["Booth A"]["last_command"]
    assert (last["command"], last["command_id"], last["ok"], last["detail"]) == (
        "self_test",
        body["command_id"],
        False,
        "no camera",
    )

    status, body = await _command(harness, admin, booth_id, {"command": "restart"})
    assert status == 202
    assert (await peer.receive_type("booth_command"))["command"] == "restart"
    assert (await list_audit(harness.app[DATABASE]))[0].action == "booth.command.restart"


async def test_a_command_to_an_offline_booth_is_a_conflict(
    harness: Harness, admin: aiohttp.ClientSession
) -> None:
    credential = await harness.add_booth("Booth A")
    booth_id = credential.split(".")[0]
    for command in ("restart", "self_test", "out_of_service", "in_service"):
        status, body = await _command(harness, admin, booth_id, {"command": command})
        assert status == 409, body
        assert body["detail"] == (
            "The booth 'Booth A' is offline; a command reaches only a connected booth. "
            "Try again when the fleet shows it online."
        )
    assert [e.action for e in await list_audit(harness.app[DATABASE])] == []
    assert harness.app[FLEET].out_of_service == set()
    status, body = await _command(
        harness, admin, "00000000000000000000000000000000", {"command": "restart"}
    )
    assert status == 404


async def test_out_of_service_is_sent_again_on_reconnect(
    harness: Harness, admin: aiohttp.ClientSession
) -> None:
    booth_id, credential, peer = await _booth(harness, "Booth A")
    status, body = await _command(harness, admin, booth_id, {"command": "out_of_service"})
    assert status == 202, body
    assert (await peer.receive_type("booth_command"))["command"] == "out_of_service"
    assert (await _fleet(harness, admin))["Booth A"]["state"] == "out_of_service"
    assert await get_setting(harness.app[DATABASE], OUT_OF_SERVICE_KEY) == [booth_id]
    await peer.close()

    # Out of service stays out of service while it is offline, and is told again on connect.
    assert (await _fleet(harness, admin))["Booth A"]["state"] == "out_of_service"
    again = await harness.booth(credential)
    await again.receive_type("welcome")
    told = await again.receive_type("booth_command")
    assert told["command"] == "out_of_service"
    assert told["command_id"] != body["command_id"]

    status, _ = await _command(harness, admin, booth_id, {"command": "in_service"})
    assert status == 202
    assert (await again.receive_type("booth_command"))["command"] == "in_service"
    assert (await _fleet(harness, admin))["Booth A"]["state"] == "online"
    assert await get_setting(harness.app[DATABASE], OUT_OF_SERVICE_KEY) == []
    await again.close()
    third = await harness.booth(credential)
    await third.receive_type("welcome")
    await third.expect_silence()
    actions = [e.action for e in await list_audit(harness.app[DATABASE])]
    assert actions == ["booth.command.in_service", "booth.command.out_of_service"]


async def test_out_of_service_outlives_a_server_restart(make_harness: MakeHarness) -> None:
    first = await make_harness()
    admin = await _admin(first)
    booth_id, credential, peer = await _booth(first, "Booth A")
    await peer.send(type="heartbeat", state="idle", health=HEALTH)
    status, _ = await _command(first, admin, booth_id, {"command": "out_of_service"})
    assert status == 202
    await first.app[FLEET].flush()
    await admin.close()
    await first.client.close()  # shuts the first server down

    second = await make_harness()  # the same data directory
    admin = await second.login("admin1")
    entry = (await _fleet(second, admin))["Booth A"]
    assert (entry["state"], entry["online"], entry["version"]) == ("out_of_service", False, "1.4.2")
    peer = await second.booth(credential)
    await peer.receive_type("welcome")
    assert (await peer.receive_type("booth_command"))["command"] == "out_of_service"
    await admin.close()


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({}, "command: Field required"),
        ({"command": "explode"}, "command: Input should be 'out_of_service', 'in_service'"),
        ({"command": "restart", "now": True}, "now: Extra inputs are not permitted"),
        ({"command": 1}, "command: Input should be 'out_of_service'"),
        ([], "body: Input should be an object"),
    ],
)
async def test_bad_command_bodies_are_refused(
    harness: Harness, admin: aiohttp.ClientSession, body: Any, detail: str
) -> None:
    booth_id, _, peer = await _booth(harness, "Booth A")
    status, problem = await _command(harness, admin, booth_id, body)
    assert status == 400
    assert problem["detail"].startswith(detail), problem
    await peer.expect_silence(0.1)


async def test_only_administrators_see_and_command_the_fleet(harness: Harness) -> None:
    booth_id, credential, _ = await _booth(harness, "Booth A")
    await harness.add_advisor("advisor1")
    advisor = await harness.login("advisor1")
    async with advisor.get(harness.url("/api/v1/fleet")) as response:
        assert response.status == 403
    async with advisor.post(
        harness.url(f"/api/v1/booths/{booth_id}/commands"), json={"command": "restart"}
    ) as response:
        assert response.status == 403
    await advisor.close()
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {credential}"}) as booth,
        booth.get(harness.url("/api/v1/fleet")) as response,
    ):
        assert response.status == 403


# ---------------------------------------------------------------- the monitor on its own


async def test_a_failed_write_is_logged_and_the_booth_stays(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def no_database() -> Database:
        raise RuntimeError("the database is away")

    monitor = FleetMonitor(database=no_database, heartbeat_seconds=15.0)
    transport = RecordingTransport()
    conn = Participant(role=Role.BOOTH, principal_id="b1", name="Booth 1", transport=transport)
    conn.status.health = BoothHealth.model_validate(HEALTH)
    monitor.booth_connected(conn)
    with caplog.at_level(logging.ERROR):
        monitor.booth_reported(conn)
        await monitor.flush()
    assert "health reports of 1 booth(s) were not stored: the database is away" in caplog.text
    assert monitor.sighting("b1").online
    assert monitor.sighting("b1").health == conn.status.health
    monitor.command_result(conn, CommandResult(command_id="c1", ok=True, detail="fine"))
    outcome = monitor.last_result("b1")
    assert outcome is not None
    assert (outcome.command, outcome.ok) == (None, True)  # not one this server sent
    assert transport.closed == []


async def test_latest_health_per_booth(db_url: str) -> None:
    db = await Database.open(db_url)
    try:
        one = await add_booth_for_enrolment(db, "One", branch_id=None, ttl=timedelta(hours=1))
        two = await add_booth_for_enrolment(db, "Two", branch_id=None, ttl=timedelta(hours=1))
        await add_booth_for_enrolment(db, "Three", branch_id=None, ttl=timedelta(hours=1))
        for state in ("idle", "in_call"):
            await record_health(db, one.booth.id, state=state, data={"version": "1"})
            await asyncio.sleep(0.01)
        await record_health(db, two.booth.id, state="idle", data={"version": "2"})
        latest = await latest_health(db)
        assert {k: v.state for k, v in latest.items()} == {
            one.booth.id: "in_call",
            two.booth.id: "idle",
        }
    finally:
        await db.close()


# ---------------------------------------------------------------- /metrics


async def test_metrics_need_their_token(make_harness: MakeHarness) -> None:
    without = await make_harness()
    async with aiohttp.ClientSession() as http:
        async with http.get(without.url("/metrics")) as response:
            assert response.status == 404
        async with http.get(
            without.url("/metrics"), headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
        ) as response:
            assert response.status == 404

        harness = await make_harness(metrics_token=METRICS_TOKEN)
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": f"Basic {METRICS_TOKEN}"},
            {"Authorization": f"Bearer {METRICS_TOKEN}x"},
        ):
            async with http.get(harness.url("/metrics"), headers=headers) as response:
                assert response.status == 401, headers
                assert response.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
                assert response.content_type == "application/problem+json"
                assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_metrics_count_booths_calls_and_errors(make_harness: MakeHarness) -> None:
    harness = await make_harness(metrics_token=METRICS_TOKEN)
    db = harness.app[DATABASE]
    topic = await create_topic(db, 'Housing "benefit"')
    await create_topic(db, "Taxes")
    admin = await _admin(harness)
    _, _, a = await _booth(harness, "Booth A")
    b_id, _, _ = await _booth(harness, "Booth B")
    await harness.add_booth("Booth C")  # offline
    await add_booth_for_enrolment(db, "Booth D", branch_id=None, ttl=timedelta(hours=1))
    await harness.add_advisor("advisor1")
    await harness.advisor("advisor1")
    status, _ = await _command(harness, admin, b_id, {"command": "out_of_service"})
    assert status == 202
    await a.send(type="call_request", topic_id=topic.id)
    await a.receive_type("call_waiting")
    await a.send(type="offer")  # refused: counted
    await a.receive_type("error")

    async with (
        aiohttp.ClientSession() as http,
        http.get(
            harness.url("/metrics"), headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
        ) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Cache-Control"] == "no-store"
        text = await response.text()
    lines = set(text.splitlines())
    for line in (
        "# TYPE videobooth_booths gauge",
        'videobooth_booths{state="online"} 1.0',
        'videobooth_booths{state="offline"} 1.0',
        'videobooth_booths{state="out_of_service"} 1.0',
        "videobooth_active_calls 0.0",
        'videobooth_waiting_calls{topic="Housing \\"benefit\\""} 1.0',
        'videobooth_waiting_calls{topic="Taxes"} 0.0',
        'videobooth_waiting_calls{topic="none"} 0.0',
        "# TYPE videobooth_signalling_errors_total counter",
        "videobooth_signalling_errors_total 1.0",
        "videobooth_resumes_total 0.0",
        "videobooth_participants_away 0.0",
        'videobooth_connections{role="booth"} 2.0',
        'videobooth_connections{role="advisor"} 1.0',
        'videobooth_connections{role="citizen"} 0.0',
        "videobooth_bus_connected 1.0",  # one process: its in-process bus
    ):
        assert line in lines, f"{line!r} not in\n{text}"
    assert "videobooth_cluster_nodes" not in text  # no [cluster]: no nodes to count
    assert text.endswith("\n")
    await admin.close()
