"""One peer connection of a call: offer, answer, trickled candidates, received media, stats.

A call is a mesh: the booth holds one :class:`PeerLink` per other participant (the advisor, and
an interpreter the advisor invited). The booth is always the offerer: it proposes H.264 for video
(it sends pre-encoded H.264 packets), then VP8 for a peer without H.264 (Debian's Firefox ESR),
and Opus for audio, both ``sendrecv`` on one bundled transport. aiortc sends the first codec of
the booth's list that the answer accepts; a peer that answered VP8 gets the VP8 feed
(:class:`kiosk.media.VideoFeeds`) from then on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcconfiguration import RTCBundlePolicy, RTCIceTransportPolicy
from aiortc.sdp import candidate_from_sdp

from kiosk.errors import BoothError
from kiosk.media import H264, FanoutTrack, VideoFeeds, receiver_of, release_on_marker
from kiosk.media.audio_playback import BoundedAudioSink
from kiosk.media.packet_sender import PacketSender, send_packets
from kiosk.media.playout import answered_playout_delay, offer_playout_delay, playout_delay_element
from protocol import (
    CallStarted,
    Chat,
    HangupReason,
    IceCandidate,
    IceTransportPolicy,
    Message,
    Offer,
    Peer,
)

log = logging.getLogger(__name__)

#: Window over which the received frame rate is computed.
FPS_WINDOW_SECONDS = 2.0
#: No frame from the other side for this long is an interruption of the media.
GAP_SECONDS = 1.0


@dataclass
class ReceivedMedia:
    """What arrived from the other side, for the display and for diagnostics."""

    video_frames: int = 0
    audio_frames: int = 0
    first_video_at: float | None = None
    #: When the newest frame (video or audio) arrived: media flows while this keeps moving.
    last_at: float | None = None
    #: Interruptions (no frame for :data:`GAP_SECONDS`), and when media last came back (wall
    #: clock; also the first frame of a connection made anew), for diagnostics and tests.
    gaps: int = 0
    resumed_at: float | None = None
    newest_video: Any = None  # av.VideoFrame, only ever the newest
    _video_times: deque[float] = field(default_factory=lambda: deque(maxlen=240))

    def video_fps(self, now: float) -> float:
        recent = [t for t in self._video_times if t > now - FPS_WINDOW_SECONDS]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / (recent[-1] - recent[0])


class CallError(BoothError, RuntimeError):
    """The call cannot go on; the message says why."""


class PeerLink:
    """The booth's side of its peer connection with one other participant of a session."""

    def __init__(
        self,
        *,
        started: CallStarted,
        peer: Peer | None = None,
        video_track: FanoutTrack,
        audio_track: MediaStreamTrack,
        send: Callable[[Message], bool],
        on_connected: Callable[[], None],
        on_failed: Callable[[str], None],
        loudspeaker: Callable[[], BoundedAudioSink] | None = None,
        relay_turn: int = 0,
        video_feeds: VideoFeeds | None = None,
        marker_release: bool = True,
        video_arrived: asyncio.Event | None = None,
        max_playout_delay_ms: int | None = None,
    ) -> None:
        self.session_id = started.session_id
        self.started = started
        #: The participant at the other end (the advisor unless told otherwise).
        self.peer = peer or started.peer
        self._send = send
        self._on_connected = on_connected
        self._on_failed = on_failed
        self.received = ReceivedMedia()
        #: Set at each received video frame: the screen is drawn when one arrives, not at
        #: the next look.
        self._video_arrived = video_arrived
        #: The most the other side's browser may hold the booth's video before showing it
        #: (kiosk.media.playout), None: not asked.
        self.max_playout_delay_ms = max_playout_delay_ms
        self._packets: PacketSender | None = None
        self.created_at = time.monotonic()
        self.connected_at: float | None = None
        self._closed = False
        self._consumers: list[asyncio.Task[None]] = []
        self._loudspeaker = loudspeaker
        #: The call's chat, for the screen; in memory only, gone with the call.
        self.chat: deque[Chat] = deque(maxlen=50)
        self.sink: BoundedAudioSink | None = None
        self.video_sender: RTCRtpSender | None = None
        self._video_transceiver: RTCRtpTransceiver | None = None
        #: Where the codecs other than H.264 come from; without it only H.264 is offered.
        self._video_feeds = video_feeds
        #: Made anew for a connection that did not heal (its offer said "restart").
        self.restart = False
        self._sink_frames = 0
        #: Received video decoded as soon as a frame's last packet is in (not a frame later).
        self.marker_release = marker_release

        #: Which of the relays handed out goes first: aiortc uses only the first TURN server
        #: it is given, so a connection made anew after one that did not heal (whose relay may
        #: be gone) tries the next relay.
        self.relay_turn = relay_turn
        servers = started.ice_servers
        first = relay_turn % len(servers) if servers else 0
        ice_servers = [
            RTCIceServer(urls=s.urls, username=s.username, credential=s.credential)
            for s in servers[first:] + servers[:first]
        ]
        policy = (
            RTCIceTransportPolicy.RELAY
            if started.ice_transport_policy is IceTransportPolicy.RELAY
            else RTCIceTransportPolicy.ALL
        )
        self.configuration = RTCConfiguration(
            iceServers=ice_servers,
            iceTransportPolicy=policy,
            bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
        )
        self.pc = RTCPeerConnection(self.configuration)
        self.video_track = video_track
        self.audio_track = audio_track
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_connection_state)

    async def start(self, *, restart: bool = False) -> None:
        """Add the booth's media, make the offer and send it; ``restart``: this connection
        replaces one with the same participant that broke (the other side swaps it in)."""
        self.restart = restart
        video = self.pc.addTransceiver(self.video_track, direction="sendrecv")
        codecs = self._video_feeds.codecs if self._video_feeds is not None else (H264,)
        capabilities = RTCRtpSender.getCapabilities("video").codecs
        # In the booth's order (aiortc keeps it, and sends the first the answer accepts); each
        # codec's retransmissions (rtx) are added after it.
        video.setCodecPreferences(
            [c for codec in codecs for c in capabilities if c.mimeType == codec]
            + [c for c in capabilities if c.mimeType == "video/rtx"]
        )
        self.video_track.install_keyframe_hook(video.sender)
        # H.264 access units sent with less work than aiortc's loop.
        self._packets = send_packets(video.sender)
        self.video_sender = video.sender
        self._video_transceiver = video
        self.pc.addTransceiver(self.audio_track, direction="sendrecv")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self._send(
            Offer(
                session_id=self.session_id,
                sdp=self._offered(self.pc.localDescription.sdp),
                to=self.peer.participant_id,
                restart=True if restart else None,
            )
        )
        log.info(
            "session %s: %s sent to %s",
            self.session_id,
            "new connection's offer" if restart else "offer",
            self.peer.name,
        )

    def _offered(self, sdp: str) -> str:
        """The offer as sent: with the playout delay asked for (aiortc knows no such
        extension; the booth's packet sender writes it)."""
        return sdp if self.max_playout_delay_ms is None else offer_playout_delay(sdp)

    def _take_playout_delay(self, answer: str) -> None:
        """Before the answer starts the senders: the playout delay into every video packet
        if the answer took the extension."""
        if self._packets is None or self.max_playout_delay_ms is None:
            return
        ext_id = answered_playout_delay(answer)
        self._packets.extra_extensions = (
            b"" if ext_id is None else playout_delay_element(ext_id, self.max_playout_delay_ms)
        )

    async def accept_answer(self, sdp: str) -> None:
        if self.pc.signalingState != "have-local-offer":
            log.warning("session %s: unexpected answer ignored", self.session_id)
            return
        self._take_playout_delay(sdp)
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        except ValueError as exc:
            raise CallError(f"the answer of {self.peer.name} cannot be used: {exc}") from exc
        codec = self.video_codec
        if codec is not None and self._video_feeds is not None:
            # aiortc connects (and then sends) in a task it has only scheduled: the track
            # moves to the codec's feed before that task first runs.
            await self._video_feeds.use(self.video_track, codec)
        log.info("session %s: answer applied, video in %s", self.session_id, codec)

    @property
    def video_codec(self) -> str | None:
        """The video codec the booth sends (``"video/H264"``, ``"video/VP8"``), once answered.

        aiortc keeps the negotiated codecs on the transceiver (``_codecs``, aiortc is pinned)
        and sends the first; before an answer they are the offer's.
        """
        transceiver = self._video_transceiver
        if transceiver is None or self.pc.remoteDescription is None:
            return None
        codecs = [c for c in transceiver._codecs if c.mimeType != "video/rtx"]
        return codecs[0].mimeType if codecs else None

    async def add_candidate(self, message: IceCandidate) -> None:
        if message.candidate is None or message.candidate == "":
            await self.pc.addIceCandidate(None)
            return
        text = message.candidate.removeprefix("candidate:")
        try:
            candidate = candidate_from_sdp(text)
        except (AssertionError, ValueError, IndexError):
            log.warning("session %s: ignored a malformed candidate", self.session_id)
            return
        candidate.sdpMid = message.sdp_mid
        candidate.sdpMLineIndex = message.sdp_mline_index
        if candidate.sdpMid is None and candidate.sdpMLineIndex is None:
            candidate.sdpMLineIndex = 0
        await self.pc.addIceCandidate(candidate)

    def _on_track(self, track: MediaStreamTrack) -> None:
        log.info("session %s: receiving %s", self.session_id, track.kind)
        if track.kind == "video" and self.marker_release:
            release_on_marker(receiver_of(self.pc, track))
        if track.kind == "audio" and self._loudspeaker is not None:
            self.sink = self._loudspeaker()
            self._consumers.append(asyncio.ensure_future(self.sink.run(track)))
            return
        self._consumers.append(asyncio.ensure_future(self._consume(track)))

    async def _consume(self, track: MediaStreamTrack) -> None:
        # Every received track is read to the end: unread tracks pile up frames.
        received = self.received
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                now = time.monotonic()
                if received.last_at is None and self.restart:
                    received.resumed_at = time.time()
                elif received.last_at is not None and now - received.last_at > GAP_SECONDS:
                    received.gaps += 1
                    received.resumed_at = time.time()
                    log.info(
                        "session %s: media from %s again after %.1f s",
                        self.session_id,
                        self.peer.name,
                        now - received.last_at,
                    )
                received.last_at = now
                if track.kind == "video":
                    received.video_frames += 1
                    received._video_times.append(now)
                    received.newest_video = frame
                    if self._video_arrived is not None:
                        self._video_arrived.set()
                    if received.first_video_at is None:
                        received.first_video_at = now
                        log.info(
                            "session %s: first video frame after %.2f s",
                            self.session_id,
                            now - self.created_at,
                        )
                else:
                    received.audio_frames += 1

    def media_seen_at(self) -> float:
        """When media from the other side last arrived (or the connection was made)."""
        if self.sink is not None and self.sink.frames_received != self._sink_frames:
            self._sink_frames = self.sink.frames_received
            self.received.last_at = time.monotonic()
        return self.received.last_at or self.created_at

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        log.info("session %s: connection %s", self.session_id, state)
        if state == "connected" and self.connected_at is None:
            self.connected_at = time.monotonic()
            self._on_connected()
        elif state == "failed" and not self._closed:
            self._on_failed(HangupReason.CONNECTION_FAILED)

    async def stats(self) -> dict[str, Any]:
        """Selected candidate pair and RTP counters, for diagnostics and tests."""
        result: dict[str, Any] = {
            "peer_role": str(self.peer.role),
            "connection_state": self.pc.connectionState,
            "ice_policy": str(self.started.ice_transport_policy),
            "video_frames_received": self.received.video_frames,
            "video_fps_received": round(self.received.video_fps(time.monotonic()), 1),
            "audio_frames_received": (
                self.sink.frames_received if self.sink else self.received.audio_frames
            ),
            "chat_lines": len(self.chat),  # how many, never what
            "media_gaps": self.received.gaps,
            "media_resumed_at": self.received.resumed_at,
            "video_codec": self.video_codec,
            "video_frames_sent": self.video_track.frames_sent,
            "keyframes_requested": self.video_track.source.keyframes_requested,
        }
        pair = selected_pair(self.pc)
        if pair is not None:
            result["selected_pair"] = pair
        if self._closed:
            return result
        report = await self.pc.getStats()
        for stat in report.values():
            if stat.type == "outbound-rtp":
                result[f"{stat.kind}_packets_sent"] = stat.packetsSent
            elif stat.type == "inbound-rtp":
                result[f"{stat.kind}_packets_received"] = stat.packetsReceived
        return result

    async def close(self) -> None:
        """Stop media and the peer connection; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for consumer in self._consumers:
            consumer.cancel()
        await self.pc.close()
        self.video_track.stop()
        # A microphone must be released before the next call opens it again.
        close = getattr(self.audio_track, "close", None)
        if close is not None:
            await close()
        else:
            self.audio_track.stop()
        if self.sink is not None:
            await self.sink.close()
        for consumer in self._consumers:
            with contextlib.suppress(asyncio.CancelledError, MediaStreamError):
                await consumer
        self.received.newest_video = None
        self.chat.clear()
        log.info("session %s: peer connection closed", self.session_id)


def selected_pair(pc: RTCPeerConnection) -> dict[str, Any] | None:
    """The nominated ICE candidate pair of the (bundled) transport, or None before one exists.

    aiortc has no public API for this; it lives in the aioice connection behind the ICE
    transport. Read defensively: a change there makes this return None, not crash.
    """
    for transceiver in pc.getTransceivers():
        try:
            connection = transceiver.sender.transport.transport._connection
            pair = connection._nominated.get(1)
        except AttributeError:
            return None
        if pair is None:
            continue
        local, remote = pair.local_candidate, pair.remote_candidate
        return {
            "local_type": local.type,
            "local_address": f"{local.host}:{local.port}",
            "local_related_address": (
                f"{local.related_address}:{local.related_port}" if local.related_address else None
            ),
            "remote_type": remote.type,
            "remote_address": f"{remote.host}:{remote.port}",
            "protocol": local.transport,
        }
    return None
