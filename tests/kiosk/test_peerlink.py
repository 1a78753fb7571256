"""The booth's peer connection: which relay aiortc uses (only the first TURN server it is
given)."""

from __future__ import annotations

from typing import Any

from aiortc.rtcicetransport import connection_kwargs

from kiosk.peerlink import PeerLink
from protocol import CallStarted, IceServer, IceTransportPolicy, Peer, Role

RELAYS = [
    IceServer(urls=[f"turn:{name}.example:3478?transport=udp"], username="1:s1", credential="c")
    for name in ("a", "b")
]


def link(relay_turn: int) -> PeerLink:
    started = CallStarted(
        session_id="s1",
        offerer=True,
        ice_servers=RELAYS,
        ice_transport_policy=IceTransportPolicy.RELAY,
        peer=Peer(participant_id="p1", role=Role.ADVISOR, name="Alex"),
    )
    nothing: Any = None
    return PeerLink(
        started=started,
        video_track=nothing,
        audio_track=nothing,
        send=lambda message: True,
        on_connected=lambda: None,
        on_failed=lambda reason: None,
        relay_turn=relay_turn,
    )


async def test_a_connection_made_anew_goes_through_the_next_relay() -> None:
    used = []
    for turn in range(3):
        peer_link = link(turn)
        servers = peer_link.configuration.iceServers
        assert len(servers) == 2  # both are given; aiortc takes the first
        used.append(connection_kwargs(servers)["turn_server"])
        await peer_link.pc.close()
    assert used == [("a.example", 3478), ("b.example", 3478), ("a.example", 3478)]
