"""Fuzzing the signalling endpoint: at least 10,000 malformed and hostile messages per run —
random bytes, wrong types, deep nesting, huge values, messages for other people's sessions —
while a real call goes on. The server answers with errors, closes abusive connections, never
crashes, and the call in progress is untouched."""

from __future__ import annotations

import json
import random
import time
from typing import Any

import aiohttp
import pytest

from tests.report import show
from tests.server.conftest import Harness

CASES = 10_000
SEED = 20261128


def _hostile(rng: random.Random, session_id: str, other_participant: str) -> str | bytes:
    kind = rng.randrange(13)
    if kind == 0:
        return bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 200)))
    if kind == 1:
        return "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(1, 100)))
    if kind == 2:
        return "[" * rng.randrange(1, 5000) + "]" * rng.randrange(0, 5000)
    if kind == 3:
        return json.dumps({"v": 1, "type": rng.choice(["offer", "chat", "admit", "x" * 300])})
    if kind == 4:  # someone else's session
        return json.dumps(
            {
                "v": 1,
                "type": rng.choice(["offer", "answer", "hangup", "chat", "call_cancel"]),
                "session_id": session_id,
                "sdp": "v=0",
                "text": "hi",
                "to": other_participant,
            }
        )
    if kind == 5:
        return json.dumps({"v": rng.choice([0, 2, "1", None, 1.5]), "type": "heartbeat"})
    if kind == 6:
        value: Any = rng.choice([10**400, -1, 1e308, True, None, [], {}, "x" * 70_000])
        return json.dumps({"v": 1, "type": "call_request", "topic_id": value}, default=str)
    if kind == 7:
        return json.dumps(
            {
                "v": 1,
                "type": "ice_candidate",
                "session_id": "x" * rng.randrange(65, 300),
                "candidate": "candidate:" + "A" * rng.randrange(0, 2000),
            }
        )
    if kind == 8:
        return json.dumps(
            {
                "v": 1,
                "type": "heartbeat",
                "health": {
                    "version": "1",
                    "state": "idle",
                    "uptime_seconds": rng.choice([-1, 1e99, "x"]),
                },
            }
        )
    if kind == 9:
        return json.dumps(
            {"v": 1, "type": "admit", "session_id": session_id, "participant_id": other_participant}
        )
    if kind == 10:
        return json.dumps({"v": 1, "type": "appointment_join", "code": str(rng.randrange(10**8))})
    if kind == 11:  # taking over someone's call with a forged or mangled resume token
        token = rng.choice(
            [
                "r1.e30.AAAA",
                "r1." + "A" * rng.randrange(1, 3000) + ".x",
                "".join(chr(rng.randrange(33, 127)) for _ in range(rng.randrange(1, 200))),
            ]
        )
        return json.dumps({"v": 1, "type": "resume", "session_id": session_id, "token": token})
    return json.dumps(
        {
            "v": 1,
            "type": "chat",
            "session_id": session_id,
            "text": "\x00" * 10,
            "extra": {"nested": [1] * 100},
        }
    )


async def test_ten_thousand_hostile_messages_leave_the_server_and_the_call_standing(
    harness: Harness, request: pytest.FixtureRequest
) -> None:
    # A real call between a booth and an advisor.
    await harness.add_advisor("alice")
    advisor = await harness.advisor("alice")
    booth = await harness.booth(await harness.add_booth("Booth A"))
    await booth.send(type="call_request")
    session_id = (await booth.receive_type("call_waiting"))["session_id"]
    await advisor.send(type="call_accept", session_id=session_id)
    started = await booth.receive_type("call_started")
    advisor_id = started["peer"]["participant_id"]
    await advisor.receive_type("call_started")

    rng = random.Random(SEED)
    credential = await harness.add_booth("Fuzzer")
    sent = closed = errors = 0
    begun = time.monotonic()
    http = aiohttp.ClientSession(headers={"Authorization": f"Bearer {credential}"})
    try:
        while sent < CASES:
            ws = await http.ws_connect(harness.url("/api/v1/ws"), max_msg_size=8 * 1024 * 1024)
            while sent < CASES and not ws.closed:
                frame = _hostile(rng, session_id, advisor_id)
                try:
                    if isinstance(frame, bytes):
                        await ws.send_bytes(frame)
                    else:
                        await ws.send_str(frame)
                except ConnectionError:
                    break
                sent += 1
                if sent % 25 == 0:  # read what came back so far
                    while True:
                        try:
                            reply = await ws.receive(timeout=0.01)
                        except TimeoutError:
                            break
                        if reply.type is aiohttp.WSMsgType.TEXT:
                            errors += json.loads(reply.data)["type"] == "error"
                        else:
                            break
            closed += 1
            await ws.close()
    finally:
        await http.close()
    elapsed = time.monotonic() - begun
    show(
        request.config,
        [
            "",
            f"fuzz: {sent} hostile messages in {elapsed:.1f} s, {errors} error replies read, "
            f"{closed} connections closed as abusive or ended",
        ],
    )
    assert sent >= CASES
    assert closed > 1  # abusive connections were cut

    # The call is untouched: it still relays, both ways, and only between its two.
    await booth.send(type="offer", session_id=session_id, sdp="v=0 after the fuzz")
    assert (await advisor.receive_type("offer"))["sdp"] == "v=0 after the fuzz"
    await advisor.send(type="chat", session_id=session_id, text="still here")
    assert (await booth.receive_type("chat"))["text"] == "still here"
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.get(harness.url("/api/v1/health")) as r,
    ):
        assert r.status == 200
