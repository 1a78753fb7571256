"""The booth's peer connection: which relay aiortc uses (only the first TURN server it is
given); which video codec a peer gets (H.264 when it takes it, VP8 when not)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiortc import (
    AudioStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcicetransport import connection_kwargs
from aiortc.sdp import SessionDescription

from kiosk.media import MarkerJitterBuffer, TestPatternSource, VideoFanout, VideoFeeds, read_stamp
from kiosk.peerlink import PeerLink
from protocol import CallStarted, IceServer, IceTransportPolicy, Offer, Peer, Role

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


# ------------------------------------------------------------------ video codecs


@pytest.fixture
async def feeds() -> AsyncIterator[VideoFeeds]:
    camera = VideoFanout(TestPatternSource(width=320, height=240, fps=30, bitrate=300_000))
    await camera.start()
    feeds = VideoFeeds(camera)
    yield feeds
    await feeds.close()
    await camera.close()


def call_link(feeds: VideoFeeds, offers: list[Offer], *, marker_release: bool = True) -> PeerLink:
    started = CallStarted(
        session_id="s1",
        offerer=True,
        ice_servers=[],
        ice_transport_policy=IceTransportPolicy.ALL,
        peer=Peer(participant_id="p1", role=Role.ADVISOR, name="Alex"),
    )

    def send(message: Any) -> bool:
        offers.append(message)
        return True

    return PeerLink(
        started=started,
        video_track=feeds.subscribe(),
        audio_track=AudioStreamTrack(),
        send=send,
        on_connected=lambda: None,
        on_failed=lambda reason: None,
        video_feeds=feeds,
        marker_release=marker_release,
    )


def video_codecs(sdp: str) -> list[str]:
    media = next(m for m in SessionDescription.parse(sdp).media if m.kind == "video")
    return [codec.mimeType for codec in media.rtp.codecs]


async def test_the_offer_lists_h264_then_vp8(feeds: VideoFeeds) -> None:
    offers: list[Offer] = []
    booth = call_link(feeds, offers)
    try:
        await booth.start()
        codecs = video_codecs(offers[0].sdp)
        plain = [c for c in codecs if c != "video/rtx"]
        assert plain[0] == "video/H264" and set(plain) == {"video/H264", "video/VP8"}
        assert plain.index("video/VP8") > max(i for i, c in enumerate(plain) if c == "video/H264")
        assert "video/rtx" in codecs
    finally:
        await booth.close()


async def _answer(
    feeds: VideoFeeds, codecs: tuple[str, ...], *, marker_release: bool = True
) -> tuple[PeerLink, RTCPeerConnection, list[Any]]:
    """A booth's peer link answered by an aiortc peer that takes ``codecs`` only and sends its
    own camera (aiortc's test picture); returns what it decodes of the booth's video."""
    offers: list[Offer] = []
    booth = call_link(feeds, offers, marker_release=marker_release)
    # No ICE servers: aiortc's default is a public STUN server, whose name lookup would wait
    # on a machine without a network (and hold up the loop's end).
    answerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    decoded: list[Any] = []

    async def consume(track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if track.kind == "video":
                    decoded.append(frame)

    answerer.on("track", lambda track: asyncio.ensure_future(consume(track)))
    # An answerer's codec preferences count only when set before the offer is applied.
    video = answerer.addTransceiver(VideoStreamTrack(), direction="sendrecv")
    capabilities = RTCRtpSender.getCapabilities("video").codecs
    video.setCodecPreferences([c for c in capabilities if c.mimeType in (*codecs, "video/rtx")])
    answerer.addTransceiver(AudioStreamTrack(), direction="sendrecv")
    await booth.start()
    await answerer.setRemoteDescription(RTCSessionDescription(offers[0].sdp, "offer"))
    await answerer.setLocalDescription(await answerer.createAnswer())
    await booth.accept_answer(answerer.localDescription.sdp)
    return booth, answerer, decoded


async def _until(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


async def test_a_peer_without_h264_gets_vp8_both_ways(
    feeds: VideoFeeds, loopback_ice: None
) -> None:
    booth, answerer, decoded = await _answer(feeds, ("video/VP8",))
    try:
        assert booth.video_codec == "video/VP8"
        assert booth.video_track.codec == "video/VP8"
        await _until(lambda: len(decoded) >= 20, "the peer to decode 20 of the booth's frames")
        assert read_stamp(decoded[-1].to_ndarray(format="rgb24")) is not None
        await _until(lambda: booth.received.video_frames >= 10, "the booth to decode VP8")
        stats = await booth.stats()
        assert stats["video_codec"] == "video/VP8"
        assert feeds.vp8 is not None and feeds.vp8.source.frames_encoded >= 20
    finally:
        await booth.close()
        await answerer.close()


async def test_a_peer_with_h264_keeps_h264(feeds: VideoFeeds, loopback_ice: None) -> None:
    booth, answerer, decoded = await _answer(feeds, ("video/VP8", "video/H264"))
    try:
        assert booth.video_codec == "video/H264"  # the booth's preference, not the answer's
        await _until(lambda: len(decoded) >= 10, "the peer to decode 10 of the booth's frames")
        assert feeds.vp8 is None  # nothing encoded twice
    finally:
        await booth.close()
        await answerer.close()


async def test_a_connection_made_anew_with_a_vp8_peer_shares_the_encoder(
    feeds: VideoFeeds, loopback_ice: None
) -> None:
    first, first_peer, _ = await _answer(feeds, ("video/VP8",))
    second: PeerLink | None = None
    second_peer: RTCPeerConnection | None = None
    try:
        await _until(lambda: first.video_track.frames_sent >= 5, "the first connection's video")
        vp8 = feeds.vp8
        # What the connection keeper does: a new connection, then the old one closes.
        second, second_peer, decoded = await _answer(feeds, ("video/VP8",))
        await first.close()
        await _until(lambda: len(decoded) >= 10, "the new connection's peer to decode VP8")
        assert feeds.vp8 is vp8  # the same encoder went on
        assert vp8 is not None and vp8.subscribers == 1
    finally:
        for link in (first, second):
            if link is not None:
                await link.close()
        for peer in (first_peer, second_peer):
            if peer is not None:
                await peer.close()


@pytest.mark.parametrize("codecs", [("video/H264",), ("video/VP8",)])
@pytest.mark.parametrize("marker_release", [True, False])
async def test_the_peer_s_video_is_decoded_as_each_frame_s_last_packet_is_in(
    feeds: VideoFeeds, loopback_ice: None, codecs: tuple[str, ...], marker_release: bool
) -> None:
    """kiosk/media/receiver.py's buffer on the booth's video receiver; aiortc's own when the
    booth's configuration says ``receiver = "aiortc"``."""
    booth, answerer, _ = await _answer(feeds, codecs, marker_release=marker_release)
    try:
        receiver = booth.pc.getTransceivers()[0].receiver
        buffer = receiver._RTCRtpReceiver__jitter_buffer
        assert isinstance(buffer, MarkerJitterBuffer) is marker_release
        await _until(lambda: booth.received.video_frames >= 10, "the booth to decode video")
    finally:
        await booth.close()
        await answerer.close()
