"""A booth checks an appointment code right after it is entered (before the consent screen):
the answer says whether the code opens an appointment now, wrong codes count against the same
limits as joining with them, and a code that is only checked starts nothing."""

from __future__ import annotations

from typing import Any

import aiohttp

from server.keys import SWITCHBOARD
from server.websocket import CODE_GUESSES
from tests.server.conftest import Harness
from tests.server.test_join import _code_for

CHECK = "/api/v1/booth/code-check"


async def _check(harness: Harness, credential: str, code: str) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {credential}"}
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.post(harness.url(CHECK), json={"code": code}) as response,
    ):
        body: dict[str, Any] = await response.json(content_type=None)
        return response.status, body


async def test_a_code_that_opens_an_appointment_is_accepted_and_starts_nothing(
    harness: Harness,
) -> None:
    await harness.add_advisor("alice")
    alice = await harness.advisor("alice")
    await alice.receive_queue()
    code = await _code_for(harness, "alice")
    credential = await harness.add_booth("Checking booth")

    assert await _check(harness, credential, f"{code[:4]} {code[4:]}") == (200, {"valid": True})
    # Checked but never joined: no session, nobody in the advisor's lobby.
    assert harness.app[SWITCHBOARD].sessions == {}
    await alice.expect_silence(0.3)

    # The booth then joins with it as before.
    booth = await harness.booth(credential)
    await booth.send(type="appointment_join", code=code)
    await booth.receive_type("call_waiting")


async def test_a_wrong_code_is_refused_with_a_reason_the_booth_can_show(harness: Harness) -> None:
    credential = await harness.add_booth("Typo booth")
    status, body = await _check(harness, credential, "12345678")
    assert status == 404
    assert body["reason"] == "wrong_code"
    assert body["detail"] == "this code opens no appointment now"
    assert (await _check(harness, credential, "not a code"))[0] == 404


async def test_wrong_codes_count_against_the_same_limits_as_joining(harness: Harness) -> None:
    await harness.add_advisor("alice")
    code = await _code_for(harness, "alice")
    credential = await harness.add_booth("Guessing booth")
    booth = await harness.booth(credential)

    checked = 3
    for guess in range(checked):
        assert (await _check(harness, credential, f"{guess:08d}"))[0] == 404
    for guess in range(checked, CODE_GUESSES):
        await booth.send(type="appointment_join", code=f"{guess:08d}")
        assert (await booth.receive_type("error"))["code"] == "wrong_code"

    # The limit is reached whichever way the codes were tried: both ways now wait, even with
    # the right code.
    status, body = await _check(harness, credential, code)
    assert status == 429
    assert body["reason"] == "rate_limited"
    assert body["retry_after"] > 0
    assert f"try again in {body['retry_after']} seconds" in body["detail"]
    await booth.send(type="appointment_join", code=code)
    assert (await booth.receive_type("error"))["code"] == "rate_limited"

    # The address is limited too: another booth behind it waits as well.
    other = await harness.add_booth("Neighbour booth")
    assert (await _check(harness, other, code))[0] == 429
