"""The headless booth: link to the server, the call, the booth's state, its status report."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from enum import StrEnum
from pathlib import Path
from typing import Any

from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack

from kiosk.audio import loudspeaker_factory, open_microphone
from kiosk.call import Call, CallError
from kiosk.callstats import CallStatsSampler
from kiosk.config import BoothConfig
from kiosk.link import LinkState, ServerLink
from kiosk.media import SourceError, VideoFanout
from kiosk.media.audio import AudioError
from kiosk.media.choose import CameraChoice, CameraKind, open_video_source
from kiosk.media.ratecontrol import RateController
from protocol import (
    Answer,
    CallRequest,
    CallStarted,
    CallWaiting,
    Chat,
    Error,
    Hangup,
    IceCandidate,
    Message,
    ParticipantJoined,
    ParticipantLeft,
    Peer,
    QueuePosition,
    Welcome,
)

log = logging.getLogger(__name__)

STATUS_INTERVAL = 0.5
REPEAT_DELAY = 2.0


class BoothState(StrEnum):
    STARTING = "starting"
    OFFLINE = "offline"
    IDLE = "idle"
    WAITING = "waiting"
    CONNECTING = "connecting"
    IN_CALL = "in_call"
    OUT_OF_SERVICE = "out_of_service"


class Booth:
    """Runs the booth until :meth:`stop`; one instance per process."""

    def __init__(self, config: BoothConfig) -> None:
        self.config = config
        self._state = BoothState.STARTING
        self.session_id: str | None = None
        #: The peer connection with the advisor ...
        self.call: Call | None = None
        #: ... and one with each further participant the advisor admitted (an interpreter).
        self.others: dict[str, Call] = {}
        #: The microphone, opened once per call and shared by every peer connection.
        self.microphone: MediaStreamTrack | None = None
        self._audio_relay: MediaRelay | None = None
        #: The camera, encoded once for every peer; open only while a call runs.
        self.fanout: VideoFanout | None = None
        self.rate: RateController | None = None
        self._stats_task: asyncio.Task[None] | None = None
        self.last_stats: dict[str, Any] | None = None
        self.audio_fault: str | None = None
        #: While waiting: (place in the queue, estimated wait in seconds).
        self.queue_position: tuple[int, int] | None = None
        self.participant_id: str | None = None
        self.calls_completed = 0
        self.last_call_ended: dict[str, Any] | None = None
        self.call_requested_at: float | None = None  # wall clock, for set-up time measurements
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._stopped = asyncio.Event()
        self._requested_once = False
        self.link = ServerLink(
            url=config.websocket_url,
            credential=config.credential,
            on_message=self._inbox.put_nowait,
            on_state=self._on_link_state,
            heartbeat_state=lambda: str(self._state),
            heartbeat_seconds=config.heartbeat_seconds,
            reconnect_max_seconds=config.reconnect_max_seconds,
        )

    # ------------------------------------------------------------ state

    @property
    def state(self) -> BoothState:
        return self._state

    def _set_state(self, state: BoothState) -> None:
        if state is not self._state:
            log.info("booth %s -> %s", self._state, state)
            self._state = state

    # ------------------------------------------------------------ running

    async def run(self) -> None:
        """Run until :meth:`stop` is called."""
        tasks = [
            asyncio.create_task(self.link.run(), name="link"),
            asyncio.create_task(self._process_inbox(), name="inbox"),
        ]
        if self.config.status_file is not None:
            tasks.append(asyncio.create_task(self._write_status(self.config.status_file)))
        try:
            await self._stopped.wait()
        finally:
            await self._end_call("booth_shutdown", notify=True)
            await self.link.close()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self.config.status_file is not None:
                await self._write_status_once(self.config.status_file)

    def stop(self) -> None:
        self._stopped.set()

    def request_call(self) -> bool:
        """Ask for an advisor (the call button); False when the booth cannot now."""
        if self._state is not BoothState.IDLE:
            log.info("call request ignored in state %s", self._state)
            return False
        if not self.link.send(CallRequest()):
            return False
        self.call_requested_at = time.time()
        self._set_state(BoothState.WAITING)
        return True

    async def hang_up(self) -> None:
        """End the call or the wait (the end button)."""
        await self._end_call("hangup", notify=True)

    # ------------------------------------------------------------ events

    def _on_link_state(self, state: LinkState) -> None:
        if state is LinkState.ONLINE:
            if self._state in (BoothState.STARTING, BoothState.OFFLINE, BoothState.OUT_OF_SERVICE):
                self._set_state(BoothState.IDLE)
                self._maybe_request_call()
        elif state is LinkState.REFUSED:
            self._set_state(BoothState.OUT_OF_SERVICE)
            self._inbox.put_nowait(Hangup(session_id="local", reason="link_refused"))
        elif state in (LinkState.OFFLINE, LinkState.CONNECTING) and self._state not in (
            BoothState.OFFLINE,
            BoothState.STARTING,
            BoothState.OUT_OF_SERVICE,
        ):
            # The server ends a session whose participant disconnects; follow it.
            self._set_state(BoothState.OFFLINE)
            self._inbox.put_nowait(Hangup(session_id="local", reason="server_unreachable"))

    def _maybe_request_call(self) -> None:
        if self.config.call_on_start and (self.config.repeat_calls or not self._requested_once):
            self._requested_once = True
            self.request_call()

    async def _process_inbox(self) -> None:
        # One consumer, so offer, answer and candidates are applied in the order they came.
        while True:
            message = await self._inbox.get()
            try:
                await self._handle(message)
            except CallError as exc:
                log.error("session %s: %s", self.session_id, exc)
                await self._end_call("call_error", notify=True)
            except Exception:
                log.exception("failed to handle %s", message.type)

    async def _handle(self, message: Message) -> None:
        match message:
            case Welcome():
                self.participant_id = message.participant_id
            case QueuePosition() if message.session_id == self.session_id:
                self.queue_position = (message.position, message.estimated_wait_seconds)
            case CallWaiting():
                self.session_id = message.session_id
                log.info("session %s: waiting for an advisor", message.session_id)
            case CallStarted():
                self.queue_position = None
                await self._start_call(message)
            case Answer() if (leg := self._leg(message.session_id, message.sender)) is not None:
                await leg.accept_answer(message.sdp)
            case IceCandidate() if (
                leg := self._leg(message.session_id, message.sender)
            ) is not None:
                await leg.add_candidate(message)
            case ParticipantJoined() if self.call and message.session_id == self.call.session_id:
                await self._add_participant(message.peer)
            case ParticipantLeft() if message.participant_id in self.others:
                leg = self.others.pop(message.participant_id)
                log.info("session %s: %s left (%s)", leg.session_id, leg.peer.name, message.reason)
                await leg.close()
            case Chat() if self.call and message.session_id == self.call.session_id:
                self.call.chat.append(message)
            case Hangup():
                if message.session_id in ("local", self.session_id):
                    await self._end_call(message.reason, notify=False)
            case Error():
                log.warning("server refused %s: %s %s", message.ref, message.code, message.message)
            case _:
                log.debug("ignored %s", message.type)

    def _leg(self, session_id: str, sender: str | None) -> Call | None:
        """The peer connection a relayed answer or candidate belongs to."""
        if self.call is None or session_id != self.call.session_id:
            return None
        if sender is None or sender == self.call.peer.participant_id:
            return self.call
        return self.others.get(sender)

    def _new_leg(self, started: CallStarted, peer: Peer) -> Call:
        assert self.fanout is not None
        assert self._audio_relay is not None
        assert self.microphone is not None
        primary = self.call is None
        return Call(
            started=started,
            peer=peer,
            video_track=self.fanout.subscribe(),
            audio_track=self._audio_relay.subscribe(self.microphone),
            # Each participant's voice gets its own sink; the playback device mixes them.
            loudspeaker=loudspeaker_factory(self.config.audio, self._on_audio_error),
            send=self.link.send,
            on_connected=(lambda: self._set_state(BoothState.IN_CALL)) if primary else _nothing,
            on_failed=(
                (lambda reason: self._inbox.put_nowait(Hangup(session_id="local", reason=reason)))
                if primary
                else lambda reason: self._inbox.put_nowait(
                    ParticipantLeft(
                        session_id=started.session_id,
                        participant_id=peer.participant_id,
                        reason=reason,
                    )
                )
            ),
        )

    async def _add_participant(self, peer: Peer) -> None:
        """Someone joined the running call: offer a peer connection to them too."""
        assert self.call is not None
        if peer.participant_id in self.others:
            return
        log.info("session %s: %s joins; offering to them", self.call.session_id, peer.name)
        leg = self._new_leg(self.call.started, peer)
        self.others[peer.participant_id] = leg
        await leg.start()

    async def _start_call(self, started: CallStarted) -> None:
        if self.call is not None:
            await self._end_call("replaced", notify=False)
        self.session_id = started.session_id
        self._set_state(BoothState.CONNECTING)
        log.info(
            "session %s: %s accepted; ICE policy %s with %d server(s)",
            started.session_id,
            started.peer.name,
            started.ice_transport_policy,
            len(started.ice_servers),
        )
        video, camera = self.config.video, self.config.camera
        try:
            source = await open_video_source(
                CameraChoice(
                    kind=CameraKind(camera.kind),
                    device=camera.device,
                    input_format=camera.input_format,
                ),
                fps=video.fps,
                width=video.width,
                height=video.height,
                bitrate=video.bitrate,
                allow_test_pattern=camera.allow_test_pattern,
            )
            self.fanout = VideoFanout(source)
            await self.fanout.start()
        except SourceError as exc:
            raise CallError(f"the camera cannot be used: {exc}") from exc
        self.microphone = open_microphone(self.config.audio, self._on_audio_error)
        self._audio_relay = MediaRelay()
        call = self._new_leg(started, started.peer)
        self.call = call
        await call.start()
        self.rate = RateController(
            source=self.fanout.source,
            min_bitrate=video.min_bitrate,
            max_bitrate=video.max_bitrate,
        )
        self.rate.watch(call.video_sender)
        self.rate.start()
        self._stats_task = asyncio.create_task(self._report_stats(call), name="call-stats")

    def _on_audio_error(self, error: AudioError) -> None:
        # A lost microphone or loudspeaker is reported, not fatal: the call goes on with video
        # and chat, and the fleet's health check shows the fault.
        log.error("session %s: %s", self.session_id, error)
        self.audio_fault = str(error)

    async def _report_stats(self, call: Call) -> None:
        sampler = CallStatsSampler(call)
        while True:
            stats = await sampler.sample()
            self.last_stats = stats.model_dump(mode="json", include={"sent", "received"})
            if call.connected_at is not None:
                self.link.send(stats)
            await asyncio.sleep(self.config.stats_seconds)

    async def _end_call(self, reason: str, *, notify: bool) -> None:
        call, session_id = self.call, self.session_id
        if session_id is None and call is None:
            return
        if notify and session_id is not None:
            self.link.send(Hangup(session_id=session_id, reason=reason))
        if self._stats_task is not None:
            self._stats_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stats_task
            self._stats_task = None
        self.last_stats = None
        summary: dict[str, Any] = {"reason": reason, "ended_at": time.time()}
        if call is not None:
            summary["stats"] = await call.stats()
            await call.close()
            summary["peer_connection_state"] = call.pc.connectionState
            self.calls_completed += 1
        others, self.others = self.others, {}
        for leg in others.values():
            await leg.close()
        summary["other_participants"] = len(others)
        if self.microphone is not None:
            # A microphone must be released before the next call opens it again.
            close = getattr(self.microphone, "close", None)
            if close is not None:
                await close()
            else:
                self.microphone.stop()
            self.microphone = None
        self._audio_relay = None
        if self.rate is not None:
            await self.rate.stop()
            self.rate = None
        if self.fanout is not None:
            await self.fanout.close()  # the camera stops with the call
            self.fanout = None
        # Leaving a call wipes everything about it.
        self.call = None
        self.session_id = None
        self.call_requested_at = None
        self.queue_position = None
        self.last_call_ended = summary
        log.info("session %s ended: %s", session_id, reason)
        if self._state not in (BoothState.OFFLINE, BoothState.OUT_OF_SERVICE):
            self._set_state(BoothState.IDLE)
            if self.config.repeat_calls and self.config.call_on_start:
                asyncio.get_running_loop().call_later(REPEAT_DELAY, self._maybe_request_call)

    # ------------------------------------------------------------ status

    async def status(self) -> dict[str, Any]:
        """The booth's live status (no personal data: there is none to report)."""
        status: dict[str, Any] = {
            "pid": os.getpid(),
            "state": str(self._state),
            "link": str(self.link.state),
            "session_id": self.session_id,
            "call_requested_at": self.call_requested_at,
            "calls_completed": self.calls_completed,
            "camera_streaming": self.fanout is not None,
            "queue_position": self.queue_position,
            "audio_fault": self.audio_fault,
            "last_call_ended": self.last_call_ended,
            "updated_at": time.time(),
        }
        if self.call is not None:
            status["call"] = await self.call.stats()
            status["call"]["live"] = self.last_stats
            status["others"] = [await leg.stats() for leg in self.others.values()]
        return status

    async def _write_status(self, path: Path) -> None:
        while True:
            await self._write_status_once(path)
            await asyncio.sleep(STATUS_INTERVAL)

    async def _write_status_once(self, path: Path) -> None:
        text = json.dumps(await self.status(), indent=1, default=str)
        await asyncio.to_thread(_write_atomically, path, text)


def _nothing() -> None:
    pass


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
