"""Every endpoint, tried with every role and with no login: only the declared roles get in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp

from server.api import Access
from server.keys import API, DATABASE
from server.outbox.webhooks import EVENTS
from server.storage import (
    SCOPES,
    authenticate_user,
    create_appointment,
    create_service_account,
    create_user,
    issue_token,
)
from tests.server.conftest import PASSWORD, Harness


async def _session_for(
    harness: Harness,
    access: Access,
    booth_credential: str,
    citizen_token: str,
    service_token: str,
) -> aiohttp.ClientSession:
    if access is Access.ANONYMOUS:
        return aiohttp.ClientSession()
    if access is Access.BOOTH:
        return aiohttp.ClientSession(headers={"Authorization": f"Bearer {booth_credential}"})
    if access is Access.SERVICE:  # a booking system's token with every scope
        return aiohttp.ClientSession(headers={"Authorization": f"Bearer {service_token}"})
    if access is Access.CITIZEN:
        # A citizen is whoever opened a valid appointment link: a guest pass cookie.
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        async with http.post(harness.url("/api/v1/join"), json={"token": citizen_token}) as r:
            assert r.status == 200, await r.text()
        return http
    return await harness.login("advisor1" if access is Access.ADVISOR else "admin1")


async def test_authorisation_matrix(harness: Harness) -> None:
    await harness.add_advisor("advisor1")
    await create_user(harness.app[DATABASE], username="admin1", password=PASSWORD, role="admin")
    booth_credential = await harness.add_booth("Matrix booth")
    db = harness.app[DATABASE]
    advisor = await authenticate_user(db, "advisor1", PASSWORD)
    assert advisor is not None
    _, citizen_token, _ = await create_appointment(
        db,
        advisor_id=advisor.id,
        starts_at=datetime.now(UTC) + timedelta(minutes=5),
        duration_minutes=30,
        channel="either",
    )
    account = await create_service_account(db, "Matrix booking")
    _, service_token = await issue_token(
        db, account.id, scopes=set(SCOPES), expires_at=datetime.now(UTC) + timedelta(days=1)
    )
    endpoints = harness.app[API].endpoints
    assert len(endpoints) >= 6

    rows = []
    for endpoint in endpoints:
        row = [f"{endpoint.method:6} {endpoint.path:24}"]
        for access in Access:
            http = await _session_for(
                harness, access, booth_credential, citizen_token, service_token
            )
            try:
                kwargs = {"json": {}} if endpoint.method != "GET" else {}
                path = endpoint.path.replace("{id}", "00000000000000000000000000000000")
                async with http.request(endpoint.method, harness.url(path), **kwargs) as response:
                    status = response.status
            finally:
                await http.close()
            if access in endpoint.allow:
                assert status not in (401, 403), (endpoint.path, access, status)
            elif access is Access.ANONYMOUS:
                assert status == 401, (endpoint.path, access, status)
            else:
                assert status == 403, (endpoint.path, access, status)
            row.append(f"{access.value}:{status}")
        rows.append("  ".join(row))
    print("\n" + "\n".join(rows))


async def test_openapi_document_lists_every_endpoint(harness: Harness) -> None:
    await harness.add_advisor("advisor1")
    http = await harness.login("advisor1")
    try:
        async with http.get(harness.url("/api/v1/openapi.json")) as response:
            assert response.status == 200
            document = await response.json()
    finally:
        await http.close()
    assert document["openapi"].startswith("3.")
    for endpoint in harness.app[API].endpoints:
        operation = document["paths"][endpoint.path][endpoint.method.lower()]
        assert operation["summary"]
        assert set(operation["x-allowed"]) == {a.value for a in endpoint.allow}
    # A service account's writes: the idempotency key and what it may answer.
    create = document["paths"]["/api/v1/appointments"]["post"]
    assert create["x-scope"] == "appointments:write"
    assert [p["name"] for p in create["parameters"]] == ["Idempotency-Key"]
    assert {"201", "409", "422"} <= set(create["responses"])
    assert "Idempotent-Replayed" in create["responses"]["201"]["headers"]
    # The webhooks the server sends, each with its body and signature header.
    assert set(document["webhooks"]) == set(EVENTS)
    for event, item in document["webhooks"].items():
        body = item["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body["properties"]["type"] == {"const": event}
        names = {p["name"] for p in item["post"]["parameters"]}
        assert names == {"Videobooth-Signature", "Videobooth-Event-Id"}
    login = document["paths"]["/api/v1/auth/login"]["post"]
    assert "password" in login["requestBody"]["content"]["application/json"]["schema"]["properties"]
