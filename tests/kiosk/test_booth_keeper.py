"""The connection keeper (kiosk/booth/keeper.py) with a stand-in link and no peer connections:
its recovery state goes steady -> interrupted -> given up while the link stays down, each
transition logged once as ``old -> new``, and ending the call tells the server and the booth."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from kiosk.booth.keeper import ConnectionKeeper, Recovery, Repair
from kiosk.identity import ServerAccess
from kiosk.link import LinkState
from protocol import Hangup, HangupReason, Message


class FakeLink:
    def __init__(self) -> None:
        self.state = LinkState.ONLINE
        self.urgent = False
        self.sent: list[Message] = []

    def send(self, message: Message) -> bool:
        self.sent.append(message)
        return self.state is LinkState.ONLINE


def _keeper(link: FakeLink, posted: list[Repair | Hangup]) -> ConnectionKeeper:
    fake: Any = link
    return ConnectionKeeper(
        link=fake,
        access=ServerAccess(server_url="http://127.0.0.1:9", credential="b.s"),
        session_id=lambda: "s1",
        legs=list,
        post=posted.append,
        reconnect_limit_seconds=60.0,
    )


async def test_a_call_broken_past_the_limit_is_given_up_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="kiosk.booth.keeper")
    link, posted = FakeLink(), []
    keeper = _keeper(link, posted)
    assert keeper.state is Recovery.IDLE
    keeper.keep("resume-token")
    assert keeper.state is Recovery.STEADY and link.urgent
    keeper._check(100.0)
    assert keeper.state is Recovery.STEADY and not keeper.reconnecting

    link.state = LinkState.OFFLINE
    keeper._check(101.0)
    assert keeper.state is Recovery.INTERRUPTED and keeper.reconnecting
    keeper._check(150.0)
    assert keeper.state is Recovery.INTERRUPTED and posted == []
    keeper._check(161.0)
    assert keeper.state is Recovery.GIVEN_UP
    assert posted == [Hangup(session_id="local", reason=HangupReason.CONNECTION_LOST)]
    keeper._check(161.5)
    assert len(posted) == 1  # once, not every half second

    link.state = LinkState.ONLINE
    keeper.link_up()
    assert link.sent[-1].type == "resume"
    await keeper.stop()
    assert keeper.state is Recovery.IDLE and not link.urgent and keeper.resume_token is None
    transitions = [r.getMessage() for r in caplog.records if "recovery" in r.getMessage()]
    assert transitions == [
        "session s1: recovery idle -> steady",
        "session s1: recovery steady -> interrupted",
        "session s1: recovery interrupted -> given_up",
        "session s1: recovery given_up -> idle",
    ]
