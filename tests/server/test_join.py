"""A citizen's link: the guest pass, the lobby only the appointment's advisor sees, and limits."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import aiohttp

from server.keys import DATABASE
from server.storage import (
    appointment_by_token,
    authenticate_user,
    create_appointment,
    list_appointments,
)
from server.websocket import CODE_GUESSES, CODE_GUESSES_PER_DAY, CODE_WINDOW
from tests.server.conftest import PASSWORD, Harness, Peer


async def _appointment_for(harness: Harness, username: str, minutes_ahead: int = 5) -> str:
    user = await authenticate_user(harness.app[DATABASE], username, PASSWORD)
    assert user is not None
    _, token, _ = await create_appointment(
        harness.app[DATABASE],
        advisor_id=user.id,
        starts_at=datetime.now(UTC) + timedelta(minutes=minutes_ahead),
        duration_minutes=30,
        channel="either",
    )
    return token


async def _citizen(harness: Harness, token: str) -> Peer:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.post(harness.url("/api/v1/join"), json={"token": token}) as response:
        assert response.status == 200, await response.text()
        assert (await response.json())["advisor_name"] == "alice"
        assert "HttpOnly" in response.headers["Set-Cookie"]
    ws = await http.ws_connect(harness.url("/api/v1/ws"))
    harness.peers.append(Peer(http, ws))
    return harness.peers[-1]


async def test_lobby_is_seen_and_admitted_only_by_the_appointments_advisor(
    harness: Harness,
) -> None:
    await harness.add_advisor("alice")
    await harness.add_advisor("bob")
    alice, bob = await harness.advisor("alice"), await harness.advisor("bob")
    await alice.receive_queue()
    await bob.receive_queue()
    citizen = await _citizen(harness, await _appointment_for(harness, "alice"))

    await citizen.send(type="lobby_join")
    session_id = (await citizen.receive_type("call_waiting"))["session_id"]
    (waiting,) = (await alice.receive_queue())["waiting"]
    assert waiting["caller_role"] == "citizen" and waiting["appointment_id"]
    await bob.expect_silence()  # not bob's appointment: he hears nothing of it
    assert bob.queue.waiting == []

    await bob.send(type="call_accept", session_id=session_id)
    assert (await bob.receive_type("error"))["code"] == "unknown_session"
    await alice.send(type="call_accept", session_id=session_id)
    started = await citizen.receive_type("call_started")
    assert started["offerer"] is True  # the joining side offers, as booths do
    assert started["peer"]["name"] == "alice"


async def test_citizens_cannot_do_what_advisors_and_booths_do(harness: Harness) -> None:
    await harness.add_advisor("alice")
    citizen = await _citizen(harness, await _appointment_for(harness, "alice"))
    for kind in ("call_request", "call_accept"):
        body = {"type": kind} if kind == "call_request" else {"type": kind, "session_id": "x"}
        await citizen.send(**body)
        assert (await citizen.receive_type("error"))["code"] == "not_allowed"


async def test_guessing_links_is_stopped_by_the_rate_limit(harness: Harness) -> None:
    await harness.add_advisor("alice")
    token = await _appointment_for(harness, "alice")
    async with aiohttp.ClientSession() as http:
        statuses = []
        for n in range(12):
            guess = f"guess-{n:026d}"
            async with http.post(harness.url("/api/v1/join"), json={"token": guess}) as r:
                statuses.append(r.status)
        assert statuses[:10] == [404] * 10
        assert statuses[10:] == [429, 429]
        async with http.post(harness.url("/api/v1/join"), json={"token": token}) as r:
            assert r.status == 429  # even the right link waits out the lockout
    # 10 guesses per 5 minutes per address against 2**192 possible tokens: one address
    # would need about 2**192 / 10 * 5 min to find one; the code space (10**8) is for booths.
    print("\nlink guesses allowed: 10 per 5 min per address; token space 2**192")


async def test_a_link_outside_its_window_does_not_open(harness: Harness) -> None:
    await harness.add_advisor("alice")
    token = await _appointment_for(harness, "alice", minutes_ahead=120)
    async with (
        aiohttp.ClientSession() as http,
        http.post(harness.url("/api/v1/join"), json={"token": token}) as r,
    ):
        assert r.status == 409
        refusal = await r.json()
        assert refusal["reason"] == "too_early"
        assert "15 minutes before" in refusal["detail"]
        opens = datetime.fromisoformat(refusal["opens_at"])
        assert timedelta(minutes=104) < opens - datetime.now(UTC) <= timedelta(minutes=105)


async def _code_for(harness: Harness, username: str) -> str:
    user = await authenticate_user(harness.app[DATABASE], username, PASSWORD)
    assert user is not None
    _, _, code = await create_appointment(
        harness.app[DATABASE],
        advisor_id=user.id,
        starts_at=datetime.now(UTC) + timedelta(minutes=5),
        duration_minutes=30,
        channel="either",
    )
    return code


async def test_a_booth_joins_the_appointment_with_its_code(harness: Harness) -> None:
    await harness.add_advisor("alice")
    alice = await harness.advisor("alice")
    await alice.receive_queue()
    code = await _code_for(harness, "alice")
    booth = await harness.booth(await harness.add_booth("Branch 3 booth"))
    await booth.send(type="appointment_join", code=f"{code[:4]} {code[4:]}")  # as typed
    session_id = (await booth.receive_type("call_waiting"))["session_id"]
    (waiting,) = (await alice.receive_queue())["waiting"]
    assert (waiting["caller_role"], waiting["caller_name"]) == ("booth", "Branch 3 booth")
    assert waiting["appointment_id"]
    await alice.send(type="call_accept", session_id=session_id)
    assert (await booth.receive_type("call_started"))["offerer"] is True


async def test_guessing_codes_is_stopped_long_before_one_is_found(harness: Harness) -> None:
    await harness.add_advisor("alice")
    code = await _code_for(harness, "alice")
    booth = await harness.booth(await harness.add_booth("Guessing booth"))
    replies = []
    for guess in range(7):
        await booth.send(type="appointment_join", code=f"{guess:08d}")
        replies.append((await booth.receive_type("error"))["code"])
    assert replies[:5] == ["wrong_code"] * 5
    assert replies[5:] == ["rate_limited"] * 2
    await booth.send(type="appointment_join", code=code)
    assert (await booth.receive_type("error"))["code"] == "rate_limited"

    guesses, window = CODE_GUESSES, CODE_WINDOW
    open_at_once = 1000  # appointments joinable at the same moment, a generous upper bound
    per_guess = open_at_once / 10**8
    per_day = min(guesses * 86_400 / window, CODE_GUESSES_PER_DAY)
    days_for_even_odds = 0.5 / per_guess / per_day
    print(
        f"\ncodes: 10^8; {guesses} wrong codes per {window / 60:.0f} min and "
        f"{CODE_GUESSES_PER_DAY} a day per booth and address = {per_day:.0f} guesses a day; "
        f"with {open_at_once} appointments open at once a guess hits with p = {per_guess:.0e}; "
        f"even odds after {days_for_even_odds:,.0f} days "
        f"({days_for_even_odds / 365:,.0f} years) of one booth guessing nonstop"
    )
    assert days_for_even_odds > 365


async def test_an_appointment_is_done_when_its_call_ends(harness: Harness) -> None:
    await harness.add_advisor("alice")
    alice = await harness.advisor("alice")
    await alice.receive_queue()
    token = await _appointment_for(harness, "alice")
    citizen = await _citizen(harness, token)
    await citizen.send(type="lobby_join")
    session_id = (await citizen.receive_type("call_waiting"))["session_id"]
    await alice.send(type="call_accept", session_id=session_id)
    await citizen.receive_type("call_started")
    await alice.send(type="hangup", session_id=session_id)
    await citizen.receive_type("hangup")
    for _ in range(50):
        if await appointment_by_token(harness.app[DATABASE], token) is None:
            break
        await asyncio.sleep(0.05)
    appointments = await list_appointments(harness.app[DATABASE])
    assert [a.status.value for a in appointments] == ["done"]
