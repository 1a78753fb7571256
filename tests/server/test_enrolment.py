"""Enrolment and signed booth logins: the happy path, then every way it must fail — a token
used twice, an expired token, a revoked booth, a forged signature, a replayed signature —
each with a clear error and nothing changed."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from protocol.boothauth import booth_auth_text
from server.keys import DATABASE, SWITCHBOARD
from server.storage import create_user, get_booth, list_audit, new_enrolment_token
from tests.server.conftest import PASSWORD, Harness


def public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


async def _admin(harness: Harness) -> aiohttp.ClientSession:
    await create_user(harness.app[DATABASE], username="admin1", password=PASSWORD, role="admin")
    return await harness.login("admin1")


async def _add_booth(harness: Harness, admin: aiohttp.ClientSession, name: str) -> dict[str, Any]:
    async with admin.post(harness.url("/api/v1/booths"), json={"name": name}) as response:
        assert response.status == 201, await response.text()
        body: dict[str, Any] = await response.json()
    assert body["enrolment_token"].startswith("vbe_")
    assert body["qr_svg"].startswith("<svg")
    assert body["booth"]["enrolled"] is False
    return body


async def _enrol(harness: Harness, token: str, key: Ed25519PrivateKey) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            harness.url("/api/v1/enrol"),
            json={
                "token": token,
                "public_key": public_hex(key),
                "hardware": {"model": "Raspberry Pi 5", "serial": "10000000abcdef"},
            },
        ) as response,
    ):
        return response.status, await response.json(content_type=None)


async def signed_header(
    harness: Harness, booth_id: str, key: Ed25519PrivateKey, *, nonce_for: str | None = None
) -> dict[str, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            harness.url("/api/v1/booth/challenge"), params={"booth": nonce_for or booth_id}
        ) as response,
    ):
        nonce = (await response.json())["nonce"]
    signature = base64.urlsafe_b64encode(key.sign(booth_auth_text(booth_id, nonce))).decode()
    return {"Authorization": f"Signature booth={booth_id},nonce={nonce},signature={signature}"}


async def _topics_status(harness: Harness, headers: dict[str, str]) -> int:
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.get(harness.url("/api/v1/topics")) as response,
    ):
        return response.status


async def test_a_booth_enrols_and_logs_in_by_signing_a_nonce(harness: Harness) -> None:
    admin = await _admin(harness)
    added = await _add_booth(harness, admin, "Branch 3 booth")
    booth_id = added["booth"]["id"]
    key = Ed25519PrivateKey.generate()

    status, body = await _enrol(harness, added["enrolment_token"], key)
    assert status == 200, body
    assert body["booth_id"] == booth_id
    stored = await get_booth(harness.app[DATABASE], booth_id)
    assert stored is not None
    assert stored.public_key == public_hex(key)
    assert stored.secret_hash is None

    # Every connection: a fresh nonce, signed.
    assert await _topics_status(harness, await signed_header(harness, booth_id, key)) == 200
    http = aiohttp.ClientSession(headers=await signed_header(harness, booth_id, key))
    ws = await http.ws_connect(harness.url("/api/v1/ws"))
    welcome = await ws.receive_json(timeout=5)
    assert (welcome["type"], welcome["role"], welcome["name"]) == (
        "welcome",
        "booth",
        "Branch 3 booth",
    )

    async with admin.get(harness.url("/api/v1/booths")) as response:
        listed = (await response.json())["booths"]
    assert listed[0]["enrolled"] is True
    assert listed[0]["online"] is True
    assert listed[0]["hardware"]["model"] == "Raspberry Pi 5"

    # Revoked: the live connection is closed and the next login refused.
    async with admin.post(harness.url(f"/api/v1/booths/{booth_id}/revoke"), json={}) as r:
        assert r.status == 200
    frame = await ws.receive(timeout=5)
    assert frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert harness.app[SWITCHBOARD].online_booths() == set()
    await http.close()
    assert await _topics_status(harness, await signed_header(harness, booth_id, key)) == 401
    await admin.close()


async def test_a_token_works_once(harness: Harness) -> None:
    admin = await _admin(harness)
    added = await _add_booth(harness, admin, "Booth A")
    first, second = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    assert (await _enrol(harness, added["enrolment_token"], first))[0] == 200
    status, body = await _enrol(harness, added["enrolment_token"], second)
    assert status == 403
    assert body["detail"] == "This enrolment token was already used; ask for a new one."
    assert body["reason"] == "token_used"  # the booth says it in its visitor's language
    stored = await get_booth(harness.app[DATABASE], added["booth"]["id"])
    assert stored is not None
    assert stored.public_key == public_hex(first)  # unchanged
    await admin.close()


async def test_a_booth_that_lost_the_answer_asks_again_and_gets_it(harness: Harness) -> None:
    """The booth's enrolment timed out on its side after the server had spent the token (a
    slow link): the same token with the same key gets the same answer again, audited as a
    repeat; another key still gets "already used"."""
    admin = await _admin(harness)
    added = await _add_booth(harness, admin, "Booth L")
    key = Ed25519PrivateKey.generate()
    status, first = await _enrol(harness, added["enrolment_token"], key)
    assert status == 200
    status, again = await _enrol(harness, added["enrolment_token"], key)
    assert status == 200, again
    assert again == first
    status, body = await _enrol(harness, added["enrolment_token"], Ed25519PrivateKey.generate())
    assert (status, body["reason"]) == (403, "token_used")
    events = await list_audit(harness.app[DATABASE])
    actions = [e.action for e in reversed(events) if e.subject == added["booth"]["id"]]
    assert actions[-2:] == ["booth.enrol", "booth.enrol_repeated"], actions
    await admin.close()


async def test_an_expired_token_is_refused(harness: Harness) -> None:
    admin = await _admin(harness)
    added = await _add_booth(harness, admin, "Booth B")
    db = harness.app[DATABASE]
    token, _ = await new_enrolment_token(db, added["booth"]["id"], ttl=timedelta(seconds=-1))
    status, body = await _enrol(harness, token, Ed25519PrivateKey.generate())
    assert status == 403
    assert "expired" in body["detail"] and body["reason"] == "token_expired"
    # The first token was replaced by the new one and no longer works either.
    status, body = await _enrol(harness, added["enrolment_token"], Ed25519PrivateKey.generate())
    assert status == 403
    assert "not known" in body["detail"] and body["reason"] == "token_unknown"
    stored = await get_booth(db, added["booth"]["id"])
    assert stored is not None
    assert stored.public_key is None
    await admin.close()


async def test_a_revoked_booth_cannot_enrol(harness: Harness) -> None:
    admin = await _admin(harness)
    added = await _add_booth(harness, admin, "Booth C")
    async with admin.post(harness.url(f"/api/v1/booths/{added['booth']['id']}/revoke"), json={}):
        pass
    status, body = await _enrol(harness, added["enrolment_token"], Ed25519PrivateKey.generate())
    assert status == 403
    assert "revoked" in body["detail"] and body["reason"] == "booth_revoked"
    async with admin.post(
        harness.url(f"/api/v1/booths/{added['booth']['id']}/enrolment"), json={}
    ) as response:
        assert response.status == 409
    await admin.close()


async def test_forged_and_replayed_signatures_are_refused(harness: Harness) -> None:
    admin = await _admin(harness)
    added = await _add_booth(harness, admin, "Booth D")
    other = await _add_booth(harness, admin, "Booth E")
    booth_id, key = added["booth"]["id"], Ed25519PrivateKey.generate()
    assert (await _enrol(harness, added["enrolment_token"], key))[0] == 200

    forger = Ed25519PrivateKey.generate()
    assert await _topics_status(harness, await signed_header(harness, booth_id, forger)) == 401
    headers = await signed_header(harness, booth_id, key)
    assert await _topics_status(harness, headers) == 200
    assert await _topics_status(harness, headers) == 401  # the same header again: a replay
    # A nonce asked for another booth does not serve this one.
    crossed = await signed_header(harness, booth_id, key, nonce_for=other["booth"]["id"])
    assert await _topics_status(harness, crossed) == 401
    garbled = {"Authorization": "Signature booth=x,nonce=y,signature=%%%"}
    assert await _topics_status(harness, garbled) == 401
    assert await _topics_status(harness, await signed_header(harness, booth_id, key)) == 200
    await admin.close()


async def test_booths_are_renamed_and_moved(harness: Harness) -> None:
    from server.storage import create_branch

    admin = await _admin(harness)
    added = await _add_booth(harness, admin, "Booth F")
    branch = await create_branch(harness.app[DATABASE], "Branch North", "North")
    url = harness.url(f"/api/v1/booths/{added['booth']['id']}")
    async with admin.patch(url, json={"name": "Booth F2", "branch_id": branch.id}) as response:
        body = await response.json()
        assert response.status == 200, body
    assert (body["name"], body["branch_id"]) == ("Booth F2", branch.id)
    async with admin.patch(url, json={"branch_id": "no-such-branch"}) as response:
        assert response.status == 404
    async with admin.patch(url, json={"name": "  "}) as response:
        assert response.status == 400
    stored = await get_booth(harness.app[DATABASE], added["booth"]["id"])
    assert stored is not None
    assert (stored.name, stored.branch_id) == ("Booth F2", branch.id)
    await admin.close()
