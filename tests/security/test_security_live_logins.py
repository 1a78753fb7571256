"""A login that ends takes its live connections with it: disabling an account, resetting its
password, logging out (in another window) and the login's expiry close the advisor's open
WebSocket at once, and a call it is in ends. The abuse: a disabled advisor's workspace stayed
connected, took calls and got relay credentials. Before every privileged action on the socket
the login is checked again (it may have ended where this process does not hear of it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
from sqlalchemy import delete, update

from server.keys import DATABASE, SWITCHBOARD
from server.storage import AuthSession, create_user
from tests.security.conftest import Harness, Peer
from tests.server.conftest import PASSWORD


async def _closed(peer: Peer) -> tuple[int, str]:
    """Wait for the server to close ``peer``'s socket; its close code and reason."""
    while True:
        frame = await peer.ws.receive(timeout=5)
        if frame.type is aiohttp.WSMsgType.TEXT:
            continue  # queue updates, a hangup
        assert frame.type is aiohttp.WSMsgType.CLOSE, frame
        return int(frame.data), str(frame.extra)


async def _admin(harness: Harness) -> aiohttp.ClientSession:
    await create_user(harness.app[DATABASE], username="root", password=PASSWORD, role="admin")
    return await harness.login("root")


async def _in_call(harness: Harness) -> tuple[Peer, Peer, str, str]:
    """alice in a call with a booth: both peers, the session id and alice's user id."""
    booth = await harness.booth(await harness.add_booth("Booth A"))
    await harness.add_advisor("alice")
    advisor = await harness.advisor("alice")
    await booth.send(type="call_request")
    session_id = (await booth.receive_type("call_waiting"))["session_id"]
    await advisor.send(type="call_accept", session_id=session_id)
    await booth.receive_type("call_started")
    await advisor.receive_type("call_started")
    async with advisor.http.get(harness.url("/api/v1/me")) as response:
        user_id = (await response.json())["id"]
    return booth, advisor, session_id, user_id


async def test_security_disabling_an_account_closes_its_socket_and_ends_its_call(
    harness: Harness,
) -> None:
    booth, advisor, _, user_id = await _in_call(harness)
    admin = await _admin(harness)
    async with admin.post(harness.url(f"/api/v1/users/{user_id}/disable"), json={}) as response:
        assert response.status == 200, await response.text()
    assert await _closed(advisor) == (4003, "account disabled")
    # The booth hears at once that the call is over (no grace period for a disabled login).
    assert (await booth.receive_type("hangup"))["reason"] == "peer_disconnected"
    # The old cookie opens nothing any more.
    async with advisor.http.get(harness.url("/api/v1/ws")) as response:
        assert response.status == 401
    await admin.close()


async def test_security_a_password_reset_closes_the_open_sockets(harness: Harness) -> None:
    await harness.add_advisor("alice")
    first, second = await harness.advisor("alice"), await harness.advisor("alice")
    admin = await _admin(harness)
    async with first.http.get(harness.url("/api/v1/me")) as response:
        user_id = (await response.json())["id"]
    async with admin.post(harness.url(f"/api/v1/users/{user_id}/password"), json={}) as response:
        assert response.status == 200
    for peer in (first, second):
        assert await _closed(peer) == (4003, "password reset")
    await admin.close()


async def test_security_logging_out_closes_only_that_logins_socket(harness: Harness) -> None:
    await harness.add_advisor("alice")
    office, laptop = await harness.advisor("alice"), await harness.advisor("alice")
    async with laptop.http.post(harness.url("/api/v1/auth/logout"), json={}) as response:
        assert response.status == 200
    assert await _closed(laptop) == (4003, "logged out")
    # The other login goes on.
    await office.receive_type("welcome")
    await office.send(type="heartbeat", state="idle")
    await office.expect_silence()
    assert not office.ws.closed


async def test_security_an_expired_login_is_closed(harness: Harness) -> None:
    booth, advisor, _, _ = await _in_call(harness)
    harness.app[SWITCHBOARD].expire_logins(datetime.now(UTC) + timedelta(hours=13))
    assert await _closed(advisor) == (4003, "login expired")
    assert (await booth.receive_type("hangup"))["reason"] == "peer_disconnected"


async def test_security_the_login_is_checked_again_before_taking_a_call(
    harness: Harness,
) -> None:
    await harness.add_advisor("alice")
    advisor = await harness.advisor("alice")
    booth = await harness.booth(await harness.add_booth("Booth A"))
    await booth.send(type="call_request")
    session_id = (await booth.receive_type("call_waiting"))["session_id"]
    # The login ends where this process does not hear of it (another node, the database).
    async with harness.app[DATABASE].session() as session:
        await session.execute(delete(AuthSession))
        await session.commit()
    await advisor.send(type="call_accept", session_id=session_id)
    assert await _closed(advisor) == (4003, "your login has ended")
    await booth.receive_type("queue_position")
    await booth.expect_silence()  # no call_started: nobody took the call
    assert harness.app[SWITCHBOARD].sessions[session_id].state == "waiting"


async def test_security_an_expired_login_cannot_resume_a_call(harness: Harness) -> None:
    _, advisor, session_id, _ = await _in_call(harness)
    await advisor.ws.close()
    async with harness.app[DATABASE].session() as session:
        await session.execute(
            update(AuthSession).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()
    # Its cookie no longer opens a socket, so no resume can hand it relay credentials.
    async with advisor.http.get(harness.url("/api/v1/ws")) as response:
        assert response.status == 401
    assert session_id in harness.app[SWITCHBOARD].sessions
