"""Rollouts on a real server with booths as signalling clients: bundles uploaded and checked
with the real RAUC, the canary offered first and alone, the bundle fetched in ranges by the
booths of the rollout only, a booth back on the new version done and the next batch offered, a
booth back on the old version failed and the rollout stopped by itself, never during a call or
outside the branch's window, and a pause that withdraws the offer."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.keys import DATABASE
from server.storage import create_branch, create_user, list_audit, set_booth_branch
from server.storage.branches import set_branch_window
from server.updates.api import UPDATES
from tests.server.conftest import PASSWORD, Harness, MakeHarness, Peer
from tests.server.updates.bundles import key_pair, make_bundle

HEALTH: dict[str, Any] = {"version": "1.0.0", "uptime_seconds": 10.0, "state": "idle"}


@dataclass
class Signed:
    bundle: Path
    cert: Path
    other_bundle: Path


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Signed:
    folder = tmp_path_factory.mktemp("signed")
    key, cert = key_pair(folder, "organisation")
    other_key, other_cert = key_pair(folder, "someone else")
    other = folder / "other"
    other.mkdir()
    return Signed(
        bundle=make_bundle(folder, key, cert),
        cert=cert,
        other_bundle=make_bundle(other, other_key, other_cert),
    )


@pytest.fixture
async def server(make_harness: MakeHarness, signed: Signed) -> Harness:
    return await make_harness(
        updates={"keyring": signed.cert, "tick_seconds": 0.05, "maintenance_window": "0:00-0:00"}
    )


@pytest.fixture
async def admin(server: Harness) -> AsyncIterator[aiohttp.ClientSession]:
    await create_user(server.app[DATABASE], username="root1", password=PASSWORD, role="admin")
    http = await server.login("root1")
    yield http
    await http.close()


@dataclass
class Booth:
    id: str
    credential: str
    peer: Peer

    async def beat(self, *, version: str = "1.0.0", state: str = "idle", good: bool = True) -> None:
        health = {**HEALTH, "version": version, "state": state, "slot": "A", "slot_good": good}
        await self.peer.send(type="heartbeat", state=state, health=health)


async def _booth(server: Harness, name: str) -> Booth:
    credential = await server.add_booth(name)
    booth = Booth(credential.split(".")[0], credential, await server.booth(credential))
    await booth.peer.receive_type("welcome")
    await booth.beat()
    return booth


async def _upload(
    server: Harness, admin: aiohttp.ClientSession, path: Path
) -> tuple[int, dict[str, Any]]:
    async with admin.post(
        server.url("/api/v1/updates/bundles"),
        data=io.BytesIO(await asyncio.to_thread(path.read_bytes)),
        headers={"Content-Type": "application/octet-stream"},
    ) as response:
        return response.status, await response.json()


async def _rollout(server: Harness, admin: aiohttp.ClientSession, **body: Any) -> dict[str, Any]:
    async with admin.post(server.url("/api/v1/updates/rollouts"), json=body) as response:
        answer = await response.json()
        assert response.status == 201, answer
        return dict(answer)


async def _state(server: Harness, admin: aiohttp.ClientSession, rollout_id: str) -> dict[str, Any]:
    async with admin.get(server.url(f"/api/v1/updates/rollouts/{rollout_id}")) as response:
        return dict(await response.json())


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def _progress(
    server: Harness, admin: aiohttp.ClientSession, rollout_id: str
) -> dict[str, str]:
    return {
        b["booth_id"]: b["progress"] for b in (await _state(server, admin, rollout_id))["booths"]
    }


async def test_uploads_are_checked_and_kept_once(
    server: Harness, admin: aiohttp.ClientSession, signed: Signed, tmp_path: Path
) -> None:
    status, bundle = await _upload(server, admin, signed.bundle)
    assert status == 201, bundle
    assert (bundle["version"], bundle["compatible"]) == ("2.0.0", "videobooth-generic-arm64")
    assert bundle["sha256"] == hashlib.sha256(signed.bundle.read_bytes()).hexdigest()
    status, again = await _upload(server, admin, signed.bundle)
    assert (status, again["detail"]) == (409, "this bundle (version 2.0.0) was uploaded already")
    status, refused = await _upload(server, admin, signed.other_bundle)
    assert status == 422 and "not a bundle signed with the trusted key" in refused["detail"]
    flipped = tmp_path / "flipped.raucb"
    data = bytearray(signed.bundle.read_bytes())
    data[len(data) // 3] ^= 1
    flipped.write_bytes(bytes(data))
    status, refused = await _upload(server, admin, flipped)
    assert status == 422 and "do not match its signature" in refused["detail"]
    # Only the good one is kept, under its digest; nothing of the refused ones is left.
    folder = server.app[UPDATES].folder
    assert sorted(p.name for p in folder.iterdir()) == [f"{bundle['sha256']}.raucb"]
    actions = [e.action for e in await list_audit(server.app[DATABASE])]
    assert actions.count("update.bundle_upload") == 1


async def test_canary_first_then_the_batch_and_only_rollout_booths_fetch(
    server: Harness, admin: aiohttp.ClientSession, signed: Signed
) -> None:
    canary, b1, b2 = [await _booth(server, f"Booth {n}") for n in (1, 2, 3)]
    _, bundle = await _upload(server, admin, signed.bundle)
    rollout = await _rollout(server, admin, bundle_id=bundle["id"], canaries=[canary.id])
    offer = await canary.peer.receive_type("update_offer")
    assert (offer["rollout_id"], offer["version"], offer["size"]) == (
        rollout["id"],
        "2.0.0",
        bundle["size"],
    )
    await b1.peer.expect_silence(0.3)  # the batch waits for the canary

    # The canary fetches the bundle in two ranges; a booth outside the rollout may not.
    async with aiohttp.ClientSession() as http:
        auth = {"Authorization": f"Bearer {canary.credential}"}
        url = server.url(offer["path"])
        async with http.get(url, headers={**auth, "Range": "bytes=0-999"}) as response:
            assert response.status == 206
            head = await response.read()
        async with http.get(url, headers={**auth, "Range": "bytes=1000-"}) as response:
            assert response.status == 206
            rest = await response.read()
        assert hashlib.sha256(head + rest).hexdigest() == offer["sha256"]
        outsider = await server.add_booth("Not in it")
        async with http.get(url, headers={"Authorization": f"Bearer {outsider}"}) as response:
            assert response.status == 404

    for phase in ("downloading", "installing", "rebooting"):
        await canary.peer.send(type="update_progress", rollout_id=rollout["id"], phase=phase)
    await _until(lambda: _is(server, admin, rollout["id"], canary.id, "rebooting"))
    # The canary restarts into the new slot and comes back on 2.0.0, marked good.
    await canary.peer.close()
    back = await server.booth(canary.credential)
    await back.receive_type("welcome")
    # Connected again, not reported yet: the health kept from before the restart (1.0.0) is
    # not what it runs now, so it is neither done nor failed.
    await asyncio.sleep(0.5)
    assert await _is(server, admin, rollout["id"], canary.id, "rebooting")
    await Booth(canary.id, canary.credential, back).beat(version="2.0.0")
    await _until(lambda: _is(server, admin, rollout["id"], canary.id, "done"))
    assert (await b1.peer.receive_type("update_offer"))["rollout_id"] == rollout["id"]
    assert (await b2.peer.receive_type("update_offer"))["rollout_id"] == rollout["id"]


async def _is(
    server: Harness, admin: aiohttp.ClientSession, rollout_id: str, booth_id: str, progress: str
) -> bool:
    return (await _progress(server, admin, rollout_id)).get(booth_id) == progress


async def test_back_on_the_old_version_stops_the_rollout(
    server: Harness, admin: aiohttp.ClientSession, signed: Signed
) -> None:
    canary, other = await _booth(server, "Canary"), await _booth(server, "Other")
    _, bundle = await _upload(server, admin, signed.bundle)
    rollout = await _rollout(server, admin, bundle_id=bundle["id"], canaries=[canary.id])
    await canary.peer.receive_type("update_offer")
    await canary.peer.send(type="update_progress", rollout_id=rollout["id"], phase="rebooting")
    await _until(lambda: _is(server, admin, rollout["id"], canary.id, "rebooting"))
    await canary.peer.close()
    back = await server.booth(canary.credential)
    await back.receive_type("welcome")
    # The new slot did not start: the boot loader went back to 1.0.0.
    await Booth(canary.id, canary.credential, back).beat(version="1.0.0")

    async def stopped() -> bool:
        return bool((await _state(server, admin, rollout["id"]))["state"] == "stopped")

    await _until(stopped)
    state = await _state(server, admin, rollout["id"])
    assert state["reason"] == "1 of 1 updated booths failed, more than 20%: stopped by itself"
    canary_row = next(b for b in state["booths"] if b["booth_id"] == canary.id)
    assert "went back to the old one" in canary_row["detail"]
    await other.peer.expect_silence(0.3)  # never offered
    actions = [e.action for e in await list_audit(server.app[DATABASE])]
    assert "update.rollout_stopped" in actions


async def test_never_during_a_call_nor_outside_the_window(
    server: Harness, admin: aiohttp.ClientSession, signed: Signed
) -> None:
    db = server.app[DATABASE]
    busy, closed = await _booth(server, "Busy"), await _booth(server, "Closed")
    night = await create_branch(db, "Night branch", region="north")
    # A minute's window at 03:00 on the other side of the world: closed now (almost surely).
    await set_branch_window(db, night.id, window="03:00-03:01", timezone="Pacific/Kiritimati")
    await set_booth_branch(db, closed.id, night.id)
    await busy.beat(state="in_call")
    _, bundle = await _upload(server, admin, signed.bundle)
    rollout = await _rollout(server, admin, bundle_id=bundle["id"], shares=[100])
    await busy.peer.expect_silence(0.4)
    await closed.peer.expect_silence(0.1)
    await busy.beat(state="idle")  # the call ended
    assert (await busy.peer.receive_type("update_offer"))["rollout_id"] == rollout["id"]
    await closed.peer.expect_silence(0.3)


async def test_a_pause_withdraws_the_offer_and_a_resume_offers_again(
    server: Harness, admin: aiohttp.ClientSession, signed: Signed
) -> None:
    canary = await _booth(server, "Canary")
    _, bundle = await _upload(server, admin, signed.bundle)
    rollout = await _rollout(server, admin, bundle_id=bundle["id"], canaries=[canary.id])
    await canary.peer.receive_type("update_offer")
    async with admin.post(server.url(f"/api/v1/updates/rollouts/{rollout['id']}/pause")) as r:
        assert r.status == 200 and (await r.json())["state"] == "paused"
    assert (await canary.peer.receive_type("update_withdrawn"))["rollout_id"] == rollout["id"]
    await canary.peer.expect_silence(0.3)  # paused: nothing offered
    async with admin.post(server.url(f"/api/v1/updates/rollouts/{rollout['id']}/pause")) as r:
        assert r.status == 409
    async with admin.post(server.url(f"/api/v1/updates/rollouts/{rollout['id']}/resume")) as r:
        assert r.status == 200
    assert (await canary.peer.receive_type("update_offer"))["rollout_id"] == rollout["id"]
    async with admin.post(server.url(f"/api/v1/updates/rollouts/{rollout['id']}/cancel")) as r:
        assert r.status == 200 and (await r.json())["state"] == "cancelled"
    actions = [e.action for e in await list_audit(server.app[DATABASE])]
    for action in ("pause", "resume", "cancel", "start"):
        assert f"update.rollout_{action}" in actions


async def test_a_node_without_a_copy_of_the_bundle_says_so(
    server: Harness, admin: aiohttp.ClientSession, signed: Signed
) -> None:
    """A node that did not take the upload (its folder not shared) answers 503 with a retry
    time: the booth asks again and reaches a node that has the bundle."""
    canary = await _booth(server, "Canary")
    _, bundle = await _upload(server, admin, signed.bundle)
    await _rollout(server, admin, bundle_id=bundle["id"], canaries=[canary.id])
    offer = await canary.peer.receive_type("update_offer")
    (server.app[UPDATES].folder / f"{bundle['sha256']}.raucb").unlink()
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            server.url(offer["path"]), headers={"Authorization": f"Bearer {canary.credential}"}
        ) as response,
    ):
        assert (response.status, response.headers["Retry-After"]) == (503, "30")
        assert "must be shared by the nodes" in (await response.json())["detail"]


async def test_a_booth_asks_before_it_installs(
    server: Harness, admin: aiohttp.ClientSession, signed: Signed
) -> None:
    canary, other = await _booth(server, "Canary"), await _booth(server, "Other")
    _, bundle = await _upload(server, admin, signed.bundle)
    rollout = await _rollout(server, admin, bundle_id=bundle["id"], canaries=[canary.id])
    path = f"/api/v1/updates/rollouts/{rollout['id']}/still"

    async def ask(booth: Booth) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {booth.credential}"}
        async with (
            aiohttp.ClientSession() as http,
            http.get(server.url(path), headers=headers) as r,
        ):
            return r.status, await r.json()

    assert await ask(canary) == (200, {"state": "running", "install": True})
    async with admin.post(server.url(f"/api/v1/updates/rollouts/{rollout['id']}/pause")) as r:
        assert r.status == 200
    assert await ask(canary) == (200, {"state": "paused", "install": False})
    assert (await ask(other))[0] == 200  # in the rollout's batch
    newcomer = await _booth(server, "Enrolled after the rollout began")
    assert (await ask(newcomer))[0] == 404  # not in this rollout
    # On resume, the booths whose offers were withdrawn anywhere are offered again.
    async with admin.post(server.url(f"/api/v1/updates/rollouts/{rollout['id']}/resume")) as r:
        assert r.status == 200
    rows = {b["booth_id"]: b for b in (await _state(server, admin, rollout["id"]))["booths"]}
    assert rows[canary.id]["progress"] in ("pending", "offered")
