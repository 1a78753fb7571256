"""Login limits hold against bursts and spellings. The abuse: 200 wrong logins sent at once
from one address were all checked (the failure was counted only after the password hash);
"carol " logged in while "carol" was locked (two normalisations); and a burst from many
addresses ran so many password hashes at once that a correct login elsewhere took 9.5 s."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp

from server.app import LOGIN_FAILURES, PASSWORD_SLOTS
from server.keys import PASSWORD_WORK
from server.websocket import CODE_GUESSES
from tests.security.conftest import Harness
from tests.server.conftest import PASSWORD


async def _login(
    http: aiohttp.ClientSession, harness: Harness, username: str, password: str
) -> int:
    async with http.post(
        harness.url("/api/v1/auth/login"), json={"username": username, "password": password}
    ) as response:
        await response.read()
        return response.status


def _from(address: str) -> aiohttp.ClientSession:
    """A client whose connections come from ``address`` (any 127.x.y.z is loopback)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)))


async def test_security_a_burst_of_wrong_logins_meets_the_limit(harness: Harness) -> None:
    await harness.add_advisor("carol")
    async with _from("127.0.0.1") as http:
        statuses = await asyncio.gather(
            *(_login(http, harness, f"user{i}", "wrong password!") for i in range(200))
        )
    counts = Counter(statuses)
    print(f"\n200 wrong logins at once from one address: {dict(counts)}")
    # Only as many passwords were checked as the limit allows; the rest were refused unchecked.
    assert counts[401] <= LOGIN_FAILURES
    assert counts[401] + counts[429] + counts[503] == 200


async def test_security_one_spelling_of_a_username_for_the_limit(harness: Harness) -> None:
    await harness.add_advisor("carol")
    for n in range(LOGIN_FAILURES):
        async with _from(f"127.0.1.{n + 1}") as http:  # other addresses: the account's key
            assert await _login(http, harness, "carol", "wrong password!") == 401
    for spelling in ("carol", "carol ", " CAROL", "Carol", "\uff43\uff41\uff52\uff4f\uff4c"):
        async with _from("127.0.2.1") as http:
            assert await _login(http, harness, spelling, PASSWORD) == 429, spelling


async def test_security_a_burst_from_many_addresses_runs_few_password_checks_at_once(
    harness: Harness,
) -> None:
    await harness.add_advisor("carol")
    clients = [_from(f"127.0.3.{n + 1}") for n in range(40)]
    try:
        burst = asyncio.gather(
            *(_login(clients[n % 40], harness, f"user{n}", "wrong password!") for n in range(200))
        )
        # Meanwhile carol logs in from elsewhere; told the server is busy, she tries again.
        async with _from("127.0.4.1") as http:
            tries = []
            while not tries or tries[-1] != 200:
                tries.append(await _login(http, harness, "carol", PASSWORD))
                assert tries[-1] in (200, 503), tries
                if tries[-1] == 503:
                    await asyncio.sleep(0.2)
        statuses = Counter(await burst)
    finally:
        for client in clients:
            await client.close()
    gate = harness.app[PASSWORD_WORK]
    print(
        f"\nburst from 40 addresses: {dict(statuses)}; carol's tries: {tries}; "
        f"password checks at once at most {gate.peak}, refused as busy {gate.refused}"
    )
    assert set(statuses) <= {401, 503}
    assert gate.peak <= PASSWORD_SLOTS


async def test_security_a_burst_of_booth_codes_meets_the_limit(harness: Harness) -> None:
    credential = await harness.add_booth("Booth A")
    headers = {"Authorization": f"Bearer {credential}"}

    async def guess(http: aiohttp.ClientSession, n: int) -> int:
        async with http.post(
            harness.url("/api/v1/booth/code-check"), json={"code": f"{n:08d}"}, headers=headers
        ) as response:
            await response.read()
            return response.status

    async with aiohttp.ClientSession() as http:
        statuses = Counter(await asyncio.gather(*(guess(http, n) for n in range(30))))
    print(f"\n30 codes at once from one booth: {dict(statuses)}")
    assert statuses[404] <= CODE_GUESSES  # only as many looked up as the limit allows
    assert statuses[404] + statuses[429] == 30
