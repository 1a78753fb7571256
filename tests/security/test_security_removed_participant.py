"""A participant who left a call, or was removed from it, is finished there: the resume token
it got when it was admitted never takes it back, also after a restart of the server, and an
ended call stays ended after a restart.

The abuse: an interpreter removed by the advisor (or one who left) keeps the token from
``call_started``; sending ``resume`` with it used to answer ``resumed`` with the peers and fresh
relay credentials, and the advisor's page answered the guest's offer and streamed to a person it
showed no tile for (the page side is covered in tests/e2e/test_remove_participant.py).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from server.keys import DATABASE, SWITCHBOARD
from server.storage import call_endings_since
from tests.security.conftest import Harness, MakeHarness, Peer
from tests.server.test_mesh import _active_call, _admitted


async def _call_with_guest(
    harness: Harness,
) -> tuple[Peer, Peer, Peer, str, dict[str, Any], str]:
    """A booth and alice in a call with an admitted interpreter; the interpreter's
    call_started and participant id."""
    booth, advisor, session_id = await _active_call(harness)
    guest = await _admitted(harness, advisor, session_id, "Interpreter")
    started = await guest.receive_type("call_started")
    assert started["resume_token"]
    guest_id = (await advisor.receive_type("participant_joined"))["peer"]["participant_id"]
    await booth.receive_type("participant_joined")
    return booth, advisor, guest, session_id, started, guest_id


async def _again(harness: Harness, guest: Peer) -> Peer:
    """The same browser (its guest pass) on a new connection."""
    ws = await guest.http.ws_connect(harness.url("/api/v1/ws"))
    return Peer(guest.http, ws)


async def _recorded(harness: Harness, session_id: str, participant_id: str) -> None:
    """Wait until the ending is in the database (it is written beside the switchboard)."""
    since = datetime.now(UTC) - timedelta(hours=1)
    for _ in range(100):
        rows = await call_endings_since(harness.app[DATABASE], since)
        if (session_id, participant_id) in {(s, p) for s, p, _ in rows}:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"ending {session_id}/{participant_id!r} was not recorded")


async def test_security_a_removed_guest_cannot_resume(harness: Harness) -> None:
    booth, advisor, guest, session_id, started, guest_id = await _call_with_guest(harness)
    await advisor.send(type="remove", session_id=session_id, participant_id=guest_id)
    assert (await guest.receive_type("hangup"))["reason"] == "removed"
    for peer in (advisor, booth):
        assert (await peer.receive_type("participant_left"))["participant_id"] == guest_id
    await guest.ws.close()

    again = await _again(harness, guest)
    await again.send(type="resume", session_id=session_id, token=started["resume_token"])
    error = await again.receive_type("error")
    assert error["code"] == "cannot_resume"
    assert "left this call" in error["message"]
    # It cannot reach anybody in the call either, and nobody hears of it.
    await again.send(type="offer", session_id=session_id, sdp="v=0 sneaking back")
    assert (await again.receive_type("error"))["code"] == "not_in_session"
    await advisor.expect_silence()
    await booth.expect_silence()
    await again.close()


async def test_security_a_guest_who_left_cannot_resume(harness: Harness) -> None:
    _, advisor, guest, session_id, started, _ = await _call_with_guest(harness)
    await guest.send(type="hangup", session_id=session_id, reason="hangup")
    await advisor.receive_type("participant_left")
    again = await _again(harness, guest)
    await again.send(type="resume", session_id=session_id, token=started["resume_token"])
    assert (await again.receive_type("error"))["code"] == "cannot_resume"
    await advisor.expect_silence()
    await again.close()


async def test_security_a_removed_guest_cannot_come_back_after_a_restart(
    make_harness: MakeHarness,
) -> None:
    first = await make_harness()
    _, advisor, guest, session_id, started, guest_id = await _call_with_guest(first)
    await advisor.send(type="remove", session_id=session_id, participant_id=guest_id)
    assert (await guest.receive_type("hangup"))["reason"] == "removed"
    await _recorded(first, session_id, guest_id)
    cookies = {c.key: c.value for c in guest.http.cookie_jar}
    for peer in first.peers:
        await peer.close()
    first.peers.clear()
    await first.client.close()

    # The same data directory: the same database and server.key, so the token still verifies.
    second = await make_harness()
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    http.cookie_jar.update_cookies(cookies)
    ws = await http.ws_connect(second.url("/api/v1/ws"))
    comeback = Peer(http, ws)
    second.peers.append(comeback)
    await comeback.send(type="resume", session_id=session_id, token=started["resume_token"])
    assert (await comeback.receive_type("error"))["code"] == "cannot_resume"
    # Its token did not rebuild the call either.
    assert session_id not in second.app[SWITCHBOARD].sessions


async def test_security_an_ended_call_stays_ended_after_a_restart(
    make_harness: MakeHarness,
) -> None:
    first = await make_harness()
    booth_credential = await first.add_booth("Booth A")
    await first.add_advisor("alice")
    advisor = await first.advisor("alice")
    booth = await first.booth(booth_credential)
    await booth.send(type="call_request")
    session_id = (await booth.receive_type("call_waiting"))["session_id"]
    await advisor.send(type="call_accept", session_id=session_id)
    started = await booth.receive_type("call_started")
    await advisor.send(type="hangup", session_id=session_id, reason="advisor_hangup")
    assert (await booth.receive_type("hangup"))["reason"] == "advisor_hangup"
    await _recorded(first, session_id, "")
    for peer in first.peers:
        await peer.close()
    first.peers.clear()
    await first.client.close()

    second = await make_harness()
    booth = await second.booth(booth_credential)
    await booth.send(type="resume", session_id=session_id, token=started["resume_token"])
    error = await booth.receive_type("error")
    assert (error["code"], error["message"]) == ("cannot_resume", "the call has ended")
    assert session_id not in second.app[SWITCHBOARD].sessions
