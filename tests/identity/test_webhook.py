"""The booking system's side: a service account with scoped tokens creates, moves and cancels
appointments over the API (an idempotency key makes a repeated create one appointment), and
hears of its appointments' events through webhooks, signed, in order, retried after a 500.

Abuse that fails: a token without the scope (403), a revoked or made-up token (401), the same
idempotency key for another request (422), a service account's calls in the audit log as its
own, not a person's.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import update

from server.keys import CONFIG, DATABASE
from server.outbox import webhooks as webhooks_module
from server.outbox.webhooks import signature
from server.storage import (
    ApiToken,
    Appointment,
    authenticate_user,
    create_appointment,
    create_user,
)
from tests.e2e.admin_pages import admin_page, server_with_admin
from tests.server.conftest import PASSWORD, Harness, MakeHarness, Peer

REPO = Path(__file__).resolve().parents[2]


class Receiver:
    """The booking system's webhook endpoint: answers 500 to the first delivery."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[int, dict[str, str], bytes]] = []
        self.fail_first = True

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        status = 500 if self.fail_first else 200
        self.fail_first = False
        self.deliveries.append((status, dict(request.headers), body))
        return web.Response(status=status)

    def accepted(self) -> list[dict[str, Any]]:
        return [json.loads(body) for status, _, body in self.deliveries if status == 200]


def _verify(secret: str, headers: dict[str, str], body: bytes) -> None:
    parts = dict(p.split("=", 1) for p in headers["Videobooth-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256)
    assert hmac.compare_digest(parts["v1"], expected.hexdigest()), headers
    assert abs(int(parts["t"]) - datetime.now(UTC).timestamp()) < 120


async def _wait(check: Any, timeout: float, what: str) -> None:
    for _ in range(int(timeout * 10)):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


async def _citizen(harness: Harness, link: str) -> Peer:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    token = link.rsplit("/", 1)[1]
    async with http.post(harness.url("/api/v1/join"), json={"token": token}) as response:
        assert response.status == 200, await response.text()
    ws = await http.ws_connect(harness.url("/api/v1/ws"))
    harness.peers.append(Peer(http, ws))
    return harness.peers[-1]


async def test_webhook_booking_system_appointments_and_signed_ordered_retried_events(
    harness: Harness, aiohttp_server: Any
) -> None:
    receiver = Receiver()
    receiving = web.Application()
    receiving.router.add_post("/hooks", receiver.handle)
    hooks = await aiohttp_server(receiving)

    await create_user(harness.app[DATABASE], username="root", password=PASSWORD, role="admin")
    await harness.add_advisor("alice")
    admin = await harness.login("root")
    async with admin.post(harness.url("/api/v1/service-accounts"), json={"name": "Booking"}) as r:
        assert r.status == 201, await r.text()
        account = (await r.json())["id"]
    tokens = harness.url(f"/api/v1/service-accounts/{account}/tokens")
    scopes = ["appointments:read", "appointments:write"]
    async with admin.post(tokens, json={"scopes": scopes, "days": 30}) as r:
        assert r.status == 201, await r.text()
        writer = await r.json()
    async with admin.post(tokens, json={"scopes": ["appointments:read"]}) as r:
        reader = await r.json()
    webhooks = harness.url(f"/api/v1/service-accounts/{account}/webhooks")
    events = ["appointment.waiting", "call.started", "call.ended"]
    hook_url = str(hooks.make_url("/hooks"))
    async with admin.post(webhooks, json={"url": hook_url, "events": events}) as r:
        assert r.status == 201, await r.text()
        secret = (await r.json())["secret"]

    booking = aiohttp.ClientSession(headers={"Authorization": f"Bearer {writer['token']}"})
    reading = aiohttp.ClientSession(headers={"Authorization": f"Bearer {reader['token']}"})
    appointments = harness.url("/api/v1/appointments")
    starts = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    made = {"starts_at": starts, "advisor": "alice"}
    try:
        # Created once, however often the same request comes with the same key.
        key = {"Idempotency-Key": "booking-4711"}
        async with booking.post(appointments, json=made, headers=key) as r:
            assert r.status == 201, await r.text()
            created = await r.json()
        async with booking.post(appointments, json=made, headers=key) as r:
            assert r.status == 201 and r.headers["Idempotent-Replayed"] == "true"
            assert await r.json() == created
        # The answer kept for the key holds the citizen's link and code: sealed, not in clear.
        data = harness.app[CONFIG].data_dir
        kept = b"".join(file.read_bytes() for file in data.glob("videobooth.db*"))  # and -wal
        for secret_part in (created["join_link"].rsplit("/", 1)[-1], created["join_code"]):
            assert secret_part.encode() not in kept, "a join link or code in the database"
        async with booking.post(
            appointments, json={**made, "duration_minutes": 60}, headers=key
        ) as r:
            assert r.status == 422  # the same key for another request
        async with reading.get(appointments) as r:
            listed = (await r.json())["appointments"]
        assert [a["id"] for a in listed] == [created["appointment"]["id"]]

        # The read-only token may read, not write; revoked and made-up tokens are nobody.
        async with reading.post(appointments, json=made) as r:
            assert r.status == 403
            assert "appointments:write" in (await r.json())["detail"]
        async with (
            aiohttp.ClientSession(
                headers={"Authorization": "Bearer vbt_made-up-token-that-was-never-issued"}
            ) as nobody,
            nobody.get(appointments) as r,
        ):
            assert r.status == 401
        async with admin.post(harness.url(f"/api/v1/api-tokens/{reader['id']}/revoke")) as r:
            assert r.status == 200
        async with reading.get(appointments) as r:
            assert r.status == 401
        async with harness.app[DATABASE].session() as session:  # the writer's time runs out
            await session.execute(
                update(ApiToken)
                .where(ApiToken.id == writer["id"])
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
            await session.commit()
        async with booking.get(appointments) as r:
            assert r.status == 401  # expired
        async with harness.app[DATABASE].session() as session:
            await session.execute(
                update(ApiToken)
                .where(ApiToken.id == writer["id"])
                .values(expires_at=datetime.now(UTC) + timedelta(days=1))
            )
            await session.commit()

        # The citizen arrives, alice takes the call and ends it: three events, in order.
        alice = await harness.advisor("alice")
        await alice.receive_queue()
        citizen = await _citizen(harness, created["join_link"])
        await citizen.send(type="lobby_join")
        session_id = (await citizen.receive_type("call_waiting"))["session_id"]
        await alice.receive_queue()
        await alice.send(type="call_accept", session_id=session_id)
        await citizen.receive_type("call_started")
        await alice.send(type="hangup", session_id=session_id)
        await citizen.receive_type("hangup")

        await _wait(lambda: len(receiver.accepted()) == 3, 30, "three events delivered")
        accepted = receiver.accepted()
        assert [e["type"] for e in accepted] == events, accepted
        assert {e["data"]["appointment_id"] for e in accepted} == {created["appointment"]["id"]}
        first_status, first_headers, _ = receiver.deliveries[0]
        # The 500 was retried: the same event, again, before the next one.
        assert first_status == 500
        assert first_headers["Videobooth-Event-Id"] == accepted[0]["id"]
        for _, headers, body in receiver.deliveries:
            _verify(secret, headers, body)
        gap = len(receiver.deliveries)
        print(f"\nwebhook deliveries: {gap} for 3 events (one 500 retried), signatures verified")

        # Another appointment, moved and cancelled by the booking system under their keys.
        key = {"Idempotency-Key": "booking-4712"}
        async with booking.post(appointments, json=made, headers=key) as r:
            assert r.status == 201, await r.text()
            second = await r.json()
        url = f"{appointments}/{second['appointment']['id']}"
        later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        for _ in range(2):
            async with booking.patch(
                url, json={"starts_at": later}, headers={"Idempotency-Key": "move-1"}
            ) as r:
                assert r.status == 200, await r.text()
        async with booking.post(f"{url}/cancel", headers={"Idempotency-Key": "cancel-1"}) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["appointment"]["status"] == "cancelled"
    finally:
        await booking.close()
        await reading.close()
        await admin.close()

    # The audit log names the service account for its writes, the administrator for hers.
    async with await harness.login("root") as root, root.get(harness.url("/api/v1/audit")) as r:
        audit = (await r.json())["events"]
    actions = {(e["actor_kind"], e["action"]) for e in audit}
    assert ("service", "appointment.create") in actions
    assert ("service", "appointment.cancel") in actions
    assert ("user", "api_token.issue") in actions
    assert not any(writer["token"] in json.dumps(e) for e in audit)


async def test_webhook_a_no_show_is_told_once(
    make_harness: MakeHarness, aiohttp_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhooks_module, "NO_SHOW_SCAN_SECONDS", 0.2)
    harness = await make_harness()
    receiver = Receiver()
    receiver.fail_first = False
    receiving = web.Application()
    receiving.router.add_post("/hooks", receiver.handle)
    hooks = await aiohttp_server(receiving)
    db = harness.app[DATABASE]
    await create_user(db, username="root", password=PASSWORD, role="admin")
    await harness.add_advisor("alice")
    alice = await authenticate_user(db, "alice", PASSWORD)
    assert alice is not None
    admin = await harness.login("root")
    async with admin:
        async with admin.post(harness.url("/api/v1/service-accounts"), json={"name": "B"}) as r:
            account = (await r.json())["id"]
        url = harness.url(f"/api/v1/service-accounts/{account}/webhooks")
        body = {"url": str(hooks.make_url("/hooks")), "events": ["appointment.no_show"]}
        async with admin.post(url, json=body) as r:
            assert r.status == 201, await r.text()
            secret = (await r.json())["secret"]
    now = datetime.now(UTC)
    made = [
        (
            await create_appointment(
                db,
                advisor_id=alice.id,
                starts_at=now + timedelta(hours=1),
                duration_minutes=30,
                channel="either",
            )
        )[0]
        for _ in range(2)
    ]
    missed = made[0]
    async with db.session() as session:  # its time came and went, and nobody joined
        await session.execute(
            update(Appointment)
            .where(Appointment.id == missed.id)
            .values(starts_at=now - timedelta(hours=2))
        )
        await session.commit()
    await _wait(lambda: receiver.accepted(), 10, "the no-show")
    await asyncio.sleep(1.0)  # several more scans: told once
    (event,) = receiver.accepted()
    assert (event["type"], event["data"]["appointment_id"]) == ("appointment.no_show", missed.id)
    _, headers, raw = receiver.deliveries[0]
    _verify(secret, headers, raw)


async def test_webhook_service_accounts_are_managed_on_the_admin_page(
    tmp_path: Path, browser: Any
) -> None:
    server, password = server_with_admin(tmp_path)
    try:
        page = await admin_page(browser, server, password)

        async def slow_list(route: Any) -> None:
            # The list comes late, as on a busy server: the token is shown only once the list
            # (and the webhook form in it) is drawn again, so what is typed next is kept.
            if route.request.method == "GET":
                await asyncio.sleep(0.7)
            await route.continue_()

        await page.route("**/api/v1/service-accounts", slow_list)
        await page.get_by_label("New service account").fill("Termin-Buchung")
        await page.get_by_role("button", name="Add service account").click()
        await page.get_by_role("button", name="Issue token for Termin-Buchung").click()
        await page.wait_for_selector("#integration-secret-box:not([hidden])")
        token = await page.input_value("#integration-secret")
        assert token.startswith("vbt_")
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http,
            http.get(f"{server.url}/api/v1/appointments") as r,
        ):
            assert r.status == 200
        hook_url = "https://booking.agency.example/hooks"
        await page.get_by_label("Endpoint address").fill(hook_url)
        await asyncio.sleep(1.0)  # the administrator reads it over: what was typed is still there
        assert await page.get_by_label("Endpoint address").input_value() == hook_url
        await page.get_by_role("button", name="Add webhook for Termin-Buchung").click()
        await page.wait_for_selector("#service-accounts li:has-text('booking.agency.example')")
        assert (await page.input_value("#integration-secret")).startswith("whsec_")
        prefix = token[:12]
        await page.get_by_role("button", name=f"Revoke token {prefix} of Termin-Buchung").click()
        await page.wait_for_selector(
            f"#service-accounts li:has-text('{prefix}… · ') >> text=revoked"
        )
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http,
            http.get(f"{server.url}/api/v1/appointments") as r,
        ):
            assert r.status == 401  # revoked on the page: refused at once
    finally:
        server.stop()


async def test_webhook_the_documented_client_works(harness: Harness, aiohttp_client: Any) -> None:
    """docs/integration.md's example client, run as written against a server: a booking made
    twice is one appointment; its webhook handler takes the server's signature and refuses a
    tampered body."""
    text = (REPO / "docs" / "integration.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    await create_user(harness.app[DATABASE], username="root", password=PASSWORD, role="admin")
    await harness.add_advisor("alice")
    async with await harness.login("root") as admin:
        async with admin.post(harness.url("/api/v1/service-accounts"), json={"name": "B"}) as r:
            account = (await r.json())["id"]
        tokens = harness.url(f"/api/v1/service-accounts/{account}/tokens")
        async with admin.post(tokens, json={"scopes": ["appointments:write"]}) as r:
            token = (await r.json())["token"]
    files = {
        "/etc/booking/videobooth-token": token,
        "/etc/booking/videobooth-webhook-secret": "whsec_the-secret-of-this-test",
    }
    namespace: dict[str, Any] = {"open": lambda path: io.StringIO(files[path])}
    exec(compile(code, "docs/integration.md", "exec"), namespace)  # noqa: S102 - our own docs
    namespace["BASE"] = harness.url("/api/v1")
    starts = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
    first = await namespace["book"]("4711", starts, "alice", None)
    again = await namespace["book"]("4711", starts, "alice", None)
    assert first["appointment"]["id"] == again["appointment"]["id"]

    app = web.Application()
    app.router.add_post("/hooks", namespace["hook"])
    client = await aiohttp_client(app)
    body = json.dumps({"id": "e1", "type": "call.ended", "data": {}}).encode()
    signed = signature(files["/etc/booking/videobooth-webhook-secret"], int(time.time()), body)
    async with client.post("/hooks", data=body, headers={"Videobooth-Signature": signed}) as r:
        assert r.status == 204
    async with client.post(
        "/hooks", data=body + b" ", headers={"Videobooth-Signature": signed}
    ) as r:
        assert r.status == 400


async def test_webhook_events_of_an_appointment_are_queued_in_the_order_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A call ended at once after it started: the slower write of ``call.started`` (its
    endpoint lookup took longer) still comes first, so it is delivered first."""
    written: list[str] = []

    async def endpoints(db: Any, event: str) -> list[Any]:
        await asyncio.sleep(0.2 if event == "call.started" else 0.0)
        return [type("Endpoint", (), {"id": "e1"})()]

    async def enqueue(db: Any, *, purpose: str, **_: Any) -> str:
        written.append(purpose)
        return purpose

    monkeypatch.setattr(webhooks_module, "webhooks_for", endpoints)
    monkeypatch.setattr(webhooks_module, "enqueue", enqueue)
    sealer = type("Sealer", (), {"seal": lambda self, data, aad: data})()
    db = type("Db", (), {"now": lambda self: datetime.now(UTC)})()
    hooks = webhooks_module.Webhooks(db, sealer, sealer, wake=lambda: None)
    call = type("Call", (), {"appointment_id": "a1", "id": "s1", "advisor_id": "u1"})()
    other = type("Call", (), {"appointment_id": "a2", "id": "s2", "advisor_id": "u1"})()
    hooks.emit("call.started", call)
    hooks.emit("call.ended", call)
    hooks.emit("call.ended", other)  # another appointment does not wait for this one
    await _wait(lambda: len(written) == 3, 5, "three events written")
    assert written == ["call.ended", "call.started", "call.ended"]
    assert not hooks._last  # nothing kept once written
