"""A real booth against an in-process server whose connection to the booth breaks: the booth
comes back by itself and takes its wait up again, and when its call ended meanwhile it says the
connection was lost instead of pretending all is well."""

from __future__ import annotations

import pytest

from kiosk.booth import Booth
from kiosk.flow import State
from kiosk.hardware import FakeHardware
from server.keys import SWITCHBOARD
from tests.kiosk.test_booth_lights import LightWatch, _until, booth_with_server  # noqa: F401
from tests.server.conftest import Harness, Peer, make_harness  # noqa: F401

pytestmark = pytest.mark.usefixtures("loopback_ice")

Setup = tuple[Harness, Booth, FakeHardware, LightWatch, Peer]


def _drop_booth(harness: Harness) -> None:
    """The server's side of the booth's connection closes (a network fault, a proxy)."""
    for conn in list(harness.app[SWITCHBOARD].connections.values()):
        if conn.role == "booth":
            conn.close(1011, "dropped by the test")


async def _waiting(booth: Booth, advisor: Peer) -> str:
    assert booth.request_call()
    await _until(lambda: booth.session_id is not None, "the booth to wait")
    queue = await advisor.receive_queue()
    while not queue["waiting"]:
        queue = await advisor.receive_queue()
    assert booth.session_id is not None
    return booth.session_id


async def test_a_waiting_booth_comes_back_and_keeps_its_place(
    booth_with_server: Setup,  # noqa: F811
) -> None:
    harness, booth, _, _, advisor = booth_with_server
    session_id = await _waiting(booth, advisor)
    _drop_booth(harness)
    await _until(lambda: booth.link.state != "online", "the booth to notice")
    assert booth.state is State.WAITING  # the citizen keeps waiting
    await _until(lambda: booth.link.state == "online", "the booth to reconnect")
    await _until(lambda: harness.app[SWITCHBOARD].resumes == 1, "the booth to resume")
    assert booth.session_id == session_id
    await _until(lambda: not booth.reconnecting, "the reconnecting banner to go")
    # Its place is its own: the advisor takes the call and the booth offers.
    await advisor.send(type="call_accept", session_id=session_id)
    await _until(lambda: booth.state is State.IN_CALL, "the call")
    assert (await advisor.receive_type("offer"))["sdp"].startswith("v=0")


async def test_a_call_that_ended_while_the_booth_was_away_ends_there_too(
    booth_with_server: Setup,  # noqa: F811
) -> None:
    harness, booth, _, _, advisor = booth_with_server
    session_id = await _waiting(booth, advisor)
    await advisor.send(type="call_accept", session_id=session_id)
    await _until(lambda: booth.state is State.IN_CALL, "the call")
    # The advisor hangs up while the booth's connection is down: the hang-up never reaches
    # the booth, and its resume is refused.
    switchboard = harness.app[SWITCHBOARD]
    booth_conn = next(c for c in switchboard.connections.values() if c.role == "booth")
    switchboard.unregister(booth_conn)  # away at once, before the booth can reconnect
    await advisor.send(type="hangup", session_id=session_id)
    booth_conn.close(1011, "dropped by the test")
    await _until(lambda: booth.state is State.ENDED, "the booth to end the call")
    assert booth.flow.ended_reason == "connection_lost"
    assert booth.session_id is None and booth.call is None
