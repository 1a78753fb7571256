"""The call's media: one :class:`PeerLink` with the advisor and one with each further
participant, the microphone they share, the camera's bit rate, the citizen's in-call controls
(mute, volume) and the call's statistics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack

from kiosk.audio import loudspeaker_factory, open_microphone
from kiosk.booth.camera import CameraFollower
from kiosk.booth.keeper import Repair, RepairStep
from kiosk.callstats import CallStatsSampler
from kiosk.config import BoothConfig, VideoReceiver
from kiosk.media.audio import AudioError
from kiosk.media.ratecontrol import RateController
from kiosk.media.tracks import MuteableTrack
from kiosk.peerlink import CallError, PeerLink
from protocol import CallStarted, IceServer, Message, Peer

log = logging.getLogger(__name__)


class CallMedia:
    """The peer connections of the running call, if any, and what they share."""

    def __init__(
        self,
        *,
        config: BoothConfig,
        camera: CameraFollower,
        send: Callable[[Message], bool],
        on_audio_error: Callable[[AudioError], None],
        ice_servers: Callable[[], list[IceServer] | None],
    ) -> None:
        self._config = config
        self._camera = camera
        self._send = send
        self._on_audio_error = on_audio_error
        self._ice_servers = ice_servers
        #: The peer connection with the advisor ...
        self.call: PeerLink | None = None
        #: ... and one with each further participant the advisor admitted (an interpreter).
        self.others: dict[str, PeerLink] = {}
        #: Whether the media of a call run (between the server's call_started and the end).
        self.connected = False
        #: The microphone, opened once per call and shared by every peer connection.
        self.microphone: MuteableTrack | None = None
        #: The citizen's in-call controls; reset when the visit ends.
        self.muted = False
        self.volume = config.audio.volume
        self._audio_relay: MediaRelay | None = None
        #: Set whenever a video frame of any participant arrives (the screen waits on it).
        self.video_arrived = asyncio.Event()
        self.rate: RateController | None = None
        self._stats_task: asyncio.Task[None] | None = None
        self.last_stats: dict[str, Any] | None = None
        self.calls_completed = 0
        #: Peer connections made anew in this call (diagnostics, tests).
        self.repairs = 0
        #: Replacements made ready (candidates gathered, offer made and held) for a
        #: participant whose path is interrupted, by participant id.
        self._spares: dict[str, _Spare] = {}

    # ------------------------------------------------------------ the citizen's controls

    def toggle_mute(self) -> None:
        self.muted = not self.muted
        if self.microphone is not None:
            self.microphone.muted = self.muted

    def change_volume(self, step: float) -> None:
        self.volume = min(1.0, max(0.0, round(self.volume + step, 2)))
        for leg in self.legs():
            if leg.sink is not None:
                leg.sink.volume = self.volume

    # ------------------------------------------------------------ peer connections

    def legs(self) -> list[PeerLink]:
        return [leg for leg in (self.call, *self.others.values()) if leg is not None]

    def leg(self, session_id: str, sender: str | None) -> PeerLink | None:
        """The peer connection a relayed answer or candidate belongs to."""
        if self.call is None or session_id != self.call.session_id:
            return None
        if sender is None or sender == self.call.peer.participant_id:
            return self.call
        return self.others.get(sender)

    async def start(self, started: CallStarted) -> None:
        """Open the microphone and offer a peer connection to the advisor (the camera is open:
        the caller made sure it follows the call)."""
        self.connected = False
        fanout = self._camera.fanout
        if fanout is None:
            raise CallError("the camera cannot be used")
        video = self._config.video
        self.microphone = MuteableTrack(open_microphone(self._config.audio, self._on_audio_error))
        self.microphone.muted = self.muted
        self._audio_relay = MediaRelay()
        call = self._new_leg(started, started.peer, primary=True)
        self.call = call
        await call.start()
        self.rate = RateController(
            source=fanout.source,
            min_bitrate=video.min_bitrate,
            max_bitrate=video.max_bitrate,
        )
        self.rate.watch(call.video_sender)
        self.rate.start()
        self._stats_task = asyncio.create_task(self._report_stats(call), name="call-stats")

    async def add_participant(self, peer: Peer) -> None:
        """Someone joined the running call: offer a peer connection to them too."""
        assert self.call is not None
        if peer.participant_id in self.others:
            return
        log.info("session %s: %s joins; offering to them", self.call.session_id, peer.name)
        leg = self._new_leg(self.call.started, peer, primary=False)
        self.others[peer.participant_id] = leg
        await leg.start()

    async def remove_participant(self, participant_id: str, reason: str) -> None:
        leg = self.others.pop(participant_id)
        log.info("session %s: %s left (%s)", leg.session_id, leg.peer.name, reason)
        await leg.close()

    async def repair(self, repair: Repair, spawn: Callable[[Any], None]) -> None:
        """A step of making the connection with ``repair.participant_id`` anew (aiortc cannot
        restart ICE on a connection): prepare a replacement, switch to it (the other side swaps
        it in when its offer comes), or, the old path having healed, drop the prepared one and
        send a key frame. ``spawn`` runs closings in the background: closing may wait on a relay
        that is gone."""
        old = next(
            (leg for leg in self.legs() if leg.peer.participant_id == repair.participant_id), None
        )
        spare = self._spares.pop(repair.participant_id, None)
        if spare is not None and (
            old is None
            or (repair.relay_turn is not None and spare.leg.relay_turn != repair.relay_turn)
        ):
            spawn(_close_spare(spare))
            spare = None
        if old is None:
            return
        # The old path may have carried media again while this switch waited its turn.
        late = repair.step is RepairStep.SWITCH and _healed_since(old, repair.silent_since)
        if repair.step is RepairStep.HEALED or late:
            if late:
                log.info(
                    "session %s: media from %s came back meanwhile; no new connection",
                    old.session_id,
                    old.peer.name,
                )
            if spare is not None:
                spawn(_close_spare(spare))
            old.video_track.source.request_keyframe()
            return
        relay_turn = old.relay_turn + 1 if repair.relay_turn is None else repair.relay_turn
        if spare is None:
            spare = self._spare(old, relay_turn)
        if repair.step is RepairStep.PREPARE:
            self._spares[repair.participant_id] = spare
            return
        try:
            await spare.ready
        except Exception:
            # The keeper asks again; the call goes on meanwhile.
            log.exception("session %s: a new connection could not be made", old.session_id)
            spawn(_close_spare(spare))
            return
        self._switch(old, spare, spawn)

    def _spare(self, old: PeerLink, relay_turn: int) -> _Spare:
        """A replacement for ``old`` through the relay ``relay_turn``, its offer held."""
        held = _HeldOffer(self._send)
        leg = self._new_leg(
            old.started, old.peer, primary=old is self.call, relay_turn=relay_turn, send=held
        )
        ready = asyncio.ensure_future(leg.start(restart=True))
        log.info(
            "session %s: preparing a new connection with %s (relay %d)",
            old.session_id,
            old.peer.name,
            relay_turn,
        )
        return _Spare(leg=leg, held=held, ready=ready)

    def _switch(self, old: PeerLink, spare: _Spare, spawn: Callable[[Any], None]) -> None:
        leg = spare.leg
        if old is self.call:
            self.call = leg
            self.connected = False
        else:
            self.others[old.peer.participant_id] = leg
        self.repairs += 1
        log.warning(
            "session %s: the connection with %s did not heal; switching to a new one",
            old.session_id,
            old.peer.name,
        )
        spare.held.release()
        # Its time to connect counts from its offer, not from when it was made ready.
        leg.created_at = time.monotonic()
        spawn(old.close())
        if self.rate is not None:
            if old.video_sender is not None:
                self.rate.forget(old.video_sender)
            self.rate.watch(leg.video_sender)
        if leg is self.call and self._stats_task is not None:
            self._stats_task.cancel()
            self._stats_task = asyncio.create_task(self._report_stats(leg), name="call-stats")

    def _new_leg(
        self,
        started: CallStarted,
        peer: Peer,
        *,
        primary: bool,
        relay_turn: int = 0,
        send: Callable[[Message], bool] | None = None,
    ) -> PeerLink:
        feeds = self._camera.feeds
        assert feeds is not None
        assert self._audio_relay is not None
        assert self.microphone is not None
        ice_servers = self._ice_servers()
        if ice_servers is not None:  # fresher relay credentials from a resume
            started = started.model_copy(update={"ice_servers": ice_servers})
        return PeerLink(
            started=started,
            peer=peer,
            video_track=feeds.subscribe(),
            video_feeds=feeds,
            audio_track=self._audio_relay.subscribe(self.microphone),
            # Each participant's voice gets its own sink; the playback device mixes them.
            loudspeaker=loudspeaker_factory(self._config.audio, self._on_audio_error),
            send=send or self._send,
            on_connected=self._on_connected if primary else _nothing,
            # A failed connection is made anew by the connection keeper.
            on_failed=lambda reason: log.warning("connection with %s: %s", peer.name, reason),
            relay_turn=relay_turn,
            marker_release=self._config.video.receiver is VideoReceiver.MARKER,
            video_arrived=self.video_arrived,
            max_playout_delay_ms=(
                self._config.video.max_playout_delay_ms
                if self._config.video.playout_delay
                else None
            ),
        )

    def _on_connected(self) -> None:
        self.connected = True

    async def _report_stats(self, call: PeerLink) -> None:
        sampler = CallStatsSampler(call)
        while True:
            stats = await sampler.sample()
            self.last_stats = stats.model_dump(mode="json", include={"sent", "received"})
            if call.connected_at is not None:
                self._send(stats)
            await asyncio.sleep(self._config.stats_seconds)

    # ------------------------------------------------------------ the end

    async def stop(self, reason: str) -> dict[str, Any]:
        """Close the call's peer connections and microphone; a summary of the call for the
        status (the camera follows the flow)."""
        if self._stats_task is not None:
            self._stats_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stats_task
        self._stats_task = None
        self.last_stats = None
        call = self.call
        summary: dict[str, Any] = {"reason": reason, "ended_at": time.time()}
        if call is not None:
            summary["stats"] = await call.stats()
            await call.close()
            summary["peer_connection_state"] = call.pc.connectionState
            self.calls_completed += 1
        others, self.others = self.others, {}
        for leg in others.values():
            await leg.close()
        spares, self._spares = self._spares, {}
        for spare in spares.values():
            await _close_spare(spare)
        summary["other_participants"] = len(others)
        summary["repairs"] = self.repairs
        self.repairs = 0
        if self.microphone is not None:
            # A microphone must be released before the next call opens it again.
            await close_track(self.microphone)
            self.microphone = None
        self._audio_relay = None
        if self.rate is not None:
            await self.rate.stop()
            self.rate = None
        if self._camera.feeds is not None:
            await self._camera.feeds.close()  # the VP8 encoder, if a peer took VP8
        # Leaving a call wipes everything about it, the citizen's settings included.
        self.muted = False
        self._camera.reset()
        self.volume = self._config.audio.volume
        self.call = None
        self.connected = False
        return summary

    async def stats(self) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """The running call's statistics and each further participant's; None without one."""
        if self.call is None:
            return None
        call = await self.call.stats()
        call["live"] = self.last_stats
        return call, [await leg.stats() for leg in self.others.values()]


async def close_track(track: MediaStreamTrack) -> None:
    """Release a capture track: a microphone must be closed before it is opened again."""
    close = getattr(track, "close", None)
    if close is not None:
        await close()
    else:
        track.stop()


def _nothing() -> None:
    pass


def _healed_since(leg: PeerLink, silent_since: float | None) -> bool:
    """``leg`` carried media after ``silent_since`` (and its ICE did not give up)."""
    return (
        silent_since is not None
        and leg.pc.connectionState not in ("failed", "closed")
        and leg.media_seen_at() > silent_since
    )


class _HeldOffer:
    """A prepared connection's messages (its offer), held until it takes over."""

    def __init__(self, send: Callable[[Message], bool]) -> None:
        self._send = send
        self._held: list[Message] | None = []

    def __call__(self, message: Message) -> bool:
        if self._held is None:
            return self._send(message)
        self._held.append(message)
        return True

    def release(self) -> None:
        held, self._held = self._held or [], None
        for message in held:
            self._send(message)


@dataclass
class _Spare:
    """A replacement connection being made ready: ``ready`` is its offer being made (the
    relay allocation and candidates)."""

    leg: PeerLink
    held: _HeldOffer
    ready: asyncio.Future[None]


async def _close_spare(spare: _Spare) -> None:
    spare.ready.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await spare.ready
    await spare.leg.close()
