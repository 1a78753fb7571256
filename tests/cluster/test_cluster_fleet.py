"""The fleet across the nodes of a cluster: a booth connected to node1 with its heartbeat and
health is online, with that health, on the fleet page an administrator reads from node2; a
command sent from node3 reaches it on node1, and its answer shows on node2. Out of service set
on one node is known to the others. A booth whose node is killed is not shown online."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from server.storage import Database, create_booth, create_user
from tests.cluster.nodes import Cluster
from tests.cluster.peers import PASSWORD, clients, login
from tests.server.test_fleet_health import HEALTH

pytestmark = pytest.mark.cluster


async def _accounts(cluster: Cluster, booth: str, admin: str) -> tuple[str, str]:
    db = await Database.open(cluster.database_url, migrate=False)
    try:
        created, credential = await create_booth(db, booth)
        await create_user(db, username=admin, password=PASSWORD, role="admin")
    finally:
        await db.close()
    return created.id, credential


async def _fleet(http: aiohttp.ClientSession, url: str, booth_id: str) -> dict[str, Any]:
    async with http.get(f"{url}/api/v1/fleet") as reply:
        assert reply.status == 200, await reply.text()
        body = await reply.json()
    entry: dict[str, Any] = next(b for b in body["booths"] if b["id"] == booth_id)
    return entry


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 10) -> None:
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < timeout, "timed out"
        await asyncio.sleep(0.1)


async def test_cluster_fleet_view_and_commands_reach_a_booth_on_another_node(
    cluster: Cluster,
) -> None:
    node1, node2, node3 = cluster.nodes
    booth_id, credential = await _accounts(cluster, "Fleet booth", "fleet-admin")
    async with clients(cluster.database_url) as c:
        booth = await c.booth(node1.url, credential)
        await booth.send(type="heartbeat", state="idle", health=HEALTH)
        admin = await login(node2.url, "fleet-admin")
        try:

            async def online_with_health() -> bool:
                entry = await _fleet(admin, node2.url, booth_id)
                return bool(entry["online"]) and entry["health"] is not None

            await _until(online_with_health)
            entry = await _fleet(admin, node2.url, booth_id)
            assert (entry["state"], entry["version"]) == ("online", "1.4.2")

            async def listed_online() -> bool:
                async with admin.get(f"{node2.url}/api/v1/booths") as reply:
                    listed = {b["id"]: b for b in (await reply.json())["booths"]}
                return listed[booth_id]["online"] is True

            await _until(listed_online)

            async with admin.post(
                f"{node3.url}/api/v1/booths/{booth_id}/commands", json={"command": "self_test"}
            ) as reply:
                assert reply.status == 202, await reply.text()
                command_id = (await reply.json())["command_id"]
            message = await booth.receive_type("booth_command")
            assert (message["command"], message["command_id"]) == ("self_test", command_id)
            await booth.send(
                type="command_result", command_id=command_id, ok=False, detail="no camera"
            )

            async def answered() -> bool:
                last = (await _fleet(admin, node2.url, booth_id))["last_command"]
                return last is not None and last["command_id"] == command_id

            await _until(answered)
            last = (await _fleet(admin, node2.url, booth_id))["last_command"]
            assert (last["command"], last["ok"], last["detail"]) == (
                "self_test",
                False,
                "no camera",
            )

            # Out of service, set through node3: every node knows it.
            async with admin.post(
                f"{node3.url}/api/v1/booths/{booth_id}/commands",
                json={"command": "out_of_service"},
            ) as reply:
                assert reply.status == 202, await reply.text()
            assert (await booth.receive_type("booth_command"))["command"] == "out_of_service"
            for node in (node1, node2, node3):

                async def out(url: str = node.url) -> bool:
                    entry = await _fleet(admin, url, booth_id)
                    return entry["out_of_service"] is True and entry["state"] == "out_of_service"

                await _until(out)
            async with admin.post(
                f"{node2.url}/api/v1/booths/{booth_id}/commands", json={"command": "in_service"}
            ) as reply:
                assert reply.status == 202, await reply.text()

            # Its node killed: offline everywhere, a command is refused as for an offline booth.
            cluster.kill(node1)

            async def offline() -> bool:
                return not (await _fleet(admin, node2.url, booth_id))["online"]

            await _until(offline)
            async with admin.post(
                f"{node3.url}/api/v1/booths/{booth_id}/commands", json={"command": "restart"}
            ) as reply:
                assert reply.status == 409, await reply.text()
        finally:
            await admin.close()


async def test_cluster_a_disabled_account_loses_its_sockets_on_every_node(
    cluster: Cluster,
) -> None:
    """An advisor with a workspace open on node2 and another on node3 is disabled by an
    administrator on node1: both sockets close at once, with the reason."""
    node1, node2, node3 = cluster.nodes
    db = await Database.open(cluster.database_url, migrate=False)
    try:
        user = await create_user(db, username="leaving", password=PASSWORD, role="advisor")
        await create_user(db, username="users-admin", password=PASSWORD, role="admin")
    finally:
        await db.close()
    async with clients(cluster.database_url) as c:
        sockets = [await c.advisor(node.url, "leaving") for node in (node2, node3)]
        admin = await login(node1.url, "users-admin")
        try:
            async with admin.post(f"{node1.url}/api/v1/users/{user.id}/disable") as reply:
                assert reply.status in (200, 204), await reply.text()
        finally:
            await admin.close()
        for peer in sockets:
            while True:
                frame = await peer.ws.receive(timeout=5)
                if frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    break
            assert (frame.data, frame.extra) == (4003, "account disabled")
