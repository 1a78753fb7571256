"""The booth: link to the server, the citizen's flow, the call's media, its status report.

What the citizen sees and may do is :mod:`kiosk.flow` (pure); this module feeds it events —
taps and buttons (:meth:`Booth.post`), the server's messages, the link's state, a tick each
second — and carries out the effects it returns: ask for a call, join an appointment, cancel,
hang up, wipe. The camera runs exactly while the flow wants it (self-view, QR code, call).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import av
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from kiosk import flow as booth_flow
from kiosk import qr
from kiosk.audio import check_audio, loudspeaker_factory, open_microphone
from kiosk.callstats import CallStatsSampler
from kiosk.clock import (
    CLOCK_NOT_SET_BRIEFLY,
    ClockReading,
    explain_connection_error,
    read_clock,
)
from kiosk.codecheck import check_code
from kiosk.config import BoothConfig
from kiosk.flow import Effect, Flow, State
from kiosk.hardware import (
    BUSY,
    FAULT,
    OFF,
    READY,
    BoothHardware,
    CameraLight,
    Pattern,
    StatusLight,
    null_hardware,
)
from kiosk.health import collect_health
from kiosk.identity import (
    EnrolmentRefusedError,
    Identity,
    ServerAccess,
    ServerNotFoundError,
    enrol,
    forget_token,
    load_identity,
    ssl_setting,
)
from kiosk.link import LinkState, ServerLink
from kiosk.media import SourceError, VideoFanout, VideoSource
from kiosk.media.audio import AudioError
from kiosk.media.audio_playback import AlsaOutput
from kiosk.media.choose import CameraChoice, CameraKind, open_video_source
from kiosk.media.ratecontrol import RateController
from kiosk.media.tracks import MuteableTrack, ToneTrack
from kiosk.peerlink import CallError, PeerLink
from kiosk.platform import LIGHT_SETTINGS, PlatformReport
from kiosk.serverinfo import ServerInfo, fetch_server_info
from kiosk.technician import measure_round_trip, network_checks, software_version
from protocol import (
    Answer,
    AppointmentJoin,
    BoothCommand,
    CallCancel,
    CallRequest,
    CallStarted,
    CallWaiting,
    Chat,
    CommandResult,
    Error,
    Hangup,
    HangupReason,
    Heartbeat,
    IceCandidate,
    IceServer,
    Message,
    ParticipantAway,
    ParticipantBack,
    ParticipantJoined,
    ParticipantLeft,
    Peer,
    QueuePosition,
    Resume,
    Resumed,
    Welcome,
)

log = logging.getLogger(__name__)

STATUS_INTERVAL = 0.5
REPEAT_DELAY = 2.0
TICK_SECONDS = 1.0
#: How often topics and branding are fetched again while online: a changed privacy notice
#: reaches every booth within this long.
INFO_REFRESH_SECONDS = 300.0
#: Server refusals that send the citizen back a step (a wrong code, too many tries, ...).
REFUSALS = {"wrong_code", "rate_limited", "unknown_topic", "already_in_call", "not_allowed"}

#: A new peer connection that is not connected after this long counts as broken.
SETUP_SECONDS = 15.0
#: Media silent this long makes the booth look into it (Chrome calls this "disconnected").
MEDIA_SILENCE_SECONDS = 3.0
#: A path that does not heal within this long after the server answered is made anew.
REPAIR_CONFIRM_SECONDS = 2.0
#: A connection made anew gets this long before it is made anew again.
REPAIR_RETRY_SECONDS = 10.0
WATCH_SECONDS = 0.5


@dataclass(frozen=True)
class Repair:
    """Make the peer connection with ``participant_id`` anew (its path did not heal)."""

    participant_id: str


Input = Message | booth_flow.Event | Repair
#: Opens the booth's camera and returns it started (:func:`open_video_source` by default).
CameraOpener = Callable[[], Awaitable[VideoSource]]

#: What the lights show in each state: (status light, call button lamp, end button lamp).
LIGHTS: dict[State, tuple[Pattern, Pattern, Pattern]] = {
    State.IDLE: (READY, READY, OFF),
    State.CHOOSE: (BUSY, READY, READY),
    State.CODE_ENTRY: (BUSY, OFF, READY),
    State.CONSENT: (BUSY, READY, READY),
    State.WAITING: (BUSY, BUSY, READY),
    State.IN_CALL: (READY, OFF, READY),
    State.ENDED: (READY, READY, OFF),
    State.OFFLINE: (FAULT, OFF, OFF),
    State.OUT_OF_SERVICE: (FAULT, OFF, OFF),
    State.TECHNICIAN_PIN: (BUSY, OFF, READY),
    State.TECHNICIAN: (BUSY, OFF, READY),
    # Not set up yet: waiting for the technician's enrolment code; the buttons do nothing.
    State.ENROLMENT: (BUSY, OFF, OFF),
}


class Booth:
    """Runs the booth until :meth:`stop`; one instance per process."""

    def __init__(
        self,
        config: BoothConfig,
        *,
        hardware: BoothHardware | None = None,
        on_state: Callable[[State], None] | None = None,
        camera: CameraOpener | None = None,
        clock: Callable[[], ClockReading] = read_clock,
    ) -> None:
        self.config = config
        #: Reads the booth's clock (synchronised or not); a stand-in in tests.
        self.read_clock = clock
        #: The start self-tests' results (pin driver, lights, ALSA, clock); None until done.
        self.platform: PlatformReport | None = None
        #: Opens the camera; the configured one unless a stand-in is given (tests).
        self._open_camera = camera or self._open_configured_camera
        self.flow = Flow(technician_pin_digest=config.technician_pin_digest)
        self.hardware = hardware or null_hardware("no buttons or lights given")
        self._status_light = StatusLight(self.hardware.status_led)
        self._call_lamp = StatusLight(self.hardware.call_button.light, name="call button lamp")
        self._end_lamp = StatusLight(self.hardware.end_button.light, name="end button lamp")
        #: Lit exactly while the camera's picture can go out: the camera streams and the citizen
        #: has not turned it off (a promise to the citizen, tested as such).
        self.camera_light = CameraLight(self.hardware.camera_led)
        self._on_state = on_state
        self.hardware.call_button.when_pressed = self._on_call_button
        self.hardware.end_button.when_pressed = lambda: self.post(booth_flow.Cancel())
        if self.hardware.presence is not None:
            presence = self.hardware.presence
            presence.when_present = lambda: self.post(booth_flow.Presence(present=True))
            presence.when_absent = lambda: self.post(booth_flow.Presence(present=False))
        #: The topics walk-ins can choose and the branding, fetched from the server when online.
        self.info = ServerInfo()
        self.session_id: str | None = None
        #: Whether the media of a call run (between the server's call_started and the end).
        self.connected = False
        #: The peer connection with the advisor ...
        self.call: PeerLink | None = None
        #: ... and one with each further participant the advisor admitted (an interpreter).
        self.others: dict[str, PeerLink] = {}
        #: The microphone, opened once per call and shared by every peer connection.
        self.microphone: MuteableTrack | None = None
        #: The citizen's in-call controls; reset when the visit ends.
        self.muted = False
        self.camera_off = False
        self.volume = config.audio.volume
        self._audio_relay: MediaRelay | None = None
        #: The camera, encoded once for every peer; open only while a call runs.
        self.fanout: VideoFanout | None = None
        self.rate: RateController | None = None
        self._stats_task: asyncio.Task[None] | None = None
        self.last_stats: dict[str, Any] | None = None
        self.audio_fault: str | None = None
        self.camera_fault: str | None = None
        #: While waiting: (place in the queue, estimated wait in seconds).
        self.queue_position: tuple[int, int] | None = None
        self.participant_id: str | None = None
        self.calls_completed = 0
        self.last_call_ended: dict[str, Any] | None = None
        self.call_requested_at: float | None = None  # wall clock, for set-up time measurements
        #: Takes the call (or the wait) up again after the link to the server was lost.
        self.resume_token: str | None = None
        #: Relay credentials from the latest resume, for connections made anew.
        self._ice_servers: list[IceServer] | None = None
        #: Participants whose own connection to the server is lost for the moment.
        self.away: set[str] = set()
        #: Since when the call's connection is broken (None: it is not); the call ends
        #: after ``reconnect_limit_seconds`` of it.
        self.trouble_since: float | None = None
        self._server_seen_at = 0.0
        self._probe: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        #: Peer connections made anew in this call (diagnostics, tests).
        self.repairs = 0
        self._inbox: asyncio.Queue[Input] = asyncio.Queue()
        self._stopped = asyncio.Event()
        self._requested_once = False
        self._background: set[asyncio.Task[None]] = set()
        self._qr_scan: asyncio.Task[None] | None = None
        #: Technician mode: the microphone level, the last network check, the exit code.
        self._technician_task: asyncio.Task[None] | None = None
        self.mic_level: float | None = None
        self.network_report: list[str] = []
        self.exit_code = 0
        #: For the fleet's health view: when the booth started, its last self-test, the
        #: server's round trip, and the last command's result.
        self.started_at = time.monotonic()
        self.self_test: dict[str, bool | None] = {}
        self.server_rtt_ms: float | None = None
        self._out_of_service_after_visit = False
        self.access = ServerAccess(
            server_url=config.server_url,
            ssl=ssl_setting(config.server_ca_file, config.server_fingerprint),
            credential=config.credential,
        )
        #: The token read from the enrolment QR code, handed to :meth:`_enrolment`.
        self._scanned_tokens: asyncio.Queue[str] = asyncio.Queue()
        self.enrolment_problem: str | None = None
        self.link = ServerLink(
            url=config.websocket_url,
            access=self.access,
            on_message=self._inbox.put_nowait,
            on_state=self._on_link_state,
            heartbeat=self._heartbeat,
            heartbeat_seconds=config.heartbeat_seconds,
            reconnect_max_seconds=config.reconnect_max_seconds,
            clock=clock,
        )

    # ------------------------------------------------------------ state

    @property
    def state(self) -> State:
        return self.flow.state

    def post(self, event: booth_flow.Event) -> None:
        """A tap, a button or a sensor: handled in order with the server's messages."""
        self._inbox.put_nowait(event)

    def _follow_technician(self) -> None:
        """While the technician screen is shown, the microphone's level is measured."""
        wanted = self.flow.state is State.TECHNICIAN
        if wanted and self._technician_task is None:
            self._technician_task = asyncio.get_running_loop().create_task(
                self._measure_microphone(), name="technician-microphone"
            )
        elif not wanted and self._technician_task is not None:
            self._technician_task.cancel()
            self._technician_task = None
            self.mic_level = None

    async def _measure_microphone(self) -> None:
        track = open_microphone(self.config.audio, self._on_audio_error)
        try:
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.AudioFrame)
                samples = frame.to_ndarray().astype("float64") / 32768.0
                self.mic_level = float((samples**2).mean() ** 0.5) if samples.size else 0.0
        except MediaStreamError:
            self.mic_level = None
        finally:
            await _close_track(track)

    async def run_network_check(self) -> None:
        self.network_report = ["…"]
        checks = await network_checks(self.access, clock=self.read_clock)
        self.network_report = [f"{'OK' if c.ok else 'FAULT'} {c.name}: {c.detail}" for c in checks]

    async def play_test_tone(self, seconds: float = 1.5) -> None:
        """A short tone through the loudspeaker (technician mode)."""
        make = loudspeaker_factory(self.config.audio, self._on_audio_error)
        if make is None:
            self.network_report = [*self.network_report, "no loudspeaker configured"]
            return
        sink, tone = make(), ToneTrack()
        task = asyncio.get_running_loop().create_task(sink.run(tone))
        await asyncio.sleep(seconds)
        tone.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, MediaStreamError):
            await task
        await sink.close()

    def restart(self) -> None:
        """Leave with a code that tells systemd to start the booth again."""
        log.warning("restart asked for in technician mode")
        self.exit_code = 3
        self.stop()

    def technician_info(self) -> dict[str, str]:
        identity = self.access.identity
        info = {
            "version": software_version(),
            "booth": identity.name
            if identity
            else ("development secret" if self.access.credential else "not enrolled"),
            "branch": self.config.branch or "-",
            "server": f"{self.config.server_url} ({self.link.state})" + self._link_problem(),
            "clock": self.read_clock().describe(),
            "camera": self.camera_fault or ("on" if self.fanout else "off"),
            "microphone": self.audio_fault
            or (f"level {self.mic_level:.3f}" if self.mic_level is not None else "-"),
            "buttons and lights": self._describe_gpio(),
        }
        alsa = self.platform.audio.summary() if self.platform is not None else None
        if alsa is not None:
            info["ALSA"] = alsa
        for index, line in enumerate(self.network_report):
            info[f"check {index + 1}"] = line
        return info

    def _link_problem(self) -> str:
        problem = self.link.problem
        if problem is None:
            return ""
        if problem.startswith("clock not set"):
            return f": {CLOCK_NOT_SET_BRIEFLY}"  # the clock's own line says the rest
        return f": {problem}"

    def _describe_gpio(self) -> str:
        """The pin driver and the lights' read-back, or why there are no buttons and lights."""
        hardware = self.hardware
        if hardware.pin_driver == "none":
            return f"off ({hardware.unavailable})" if hardware.unavailable else "off"
        if not hardware.readback:
            return f"pins driven by {hardware.pin_driver}"
        bad = [name for name, ok in hardware.readback.items() if not ok]
        lines = f"FAULT: {', '.join(bad)} did not read back" if bad else "lights read back ok"
        return f"pins driven by {hardware.pin_driver}; {lines}"

    def toggle_mute(self) -> None:
        self.muted = not self.muted
        if self.microphone is not None:
            self.microphone.muted = self.muted

    def toggle_camera(self) -> None:
        """The citizen's camera button: black pictures go out, and the camera light goes out."""
        self.camera_off = not self.camera_off
        if self.fanout is not None:
            self.fanout.source.blanked = self.camera_off
        self._light_camera()
        log.info("session %s: camera %s", self.session_id, "off" if self.camera_off else "on")

    def _light_camera(self) -> None:
        """The camera light follows the camera and the citizen's camera button."""
        self.camera_light.camera_streaming(self.fanout is not None and not self.camera_off)

    def change_volume(self, step: float) -> None:
        self.volume = min(1.0, max(0.0, round(self.volume + step, 2)))
        for leg in (self.call, *self.others.values()):
            if leg is not None and leg.sink is not None:
                leg.sink.volume = self.volume

    def _on_call_button(self) -> None:
        """The illuminated call button: with the end button held, the technician's way in;
        otherwise the next step towards an advisor now (three presses from idle, as taps)."""
        if self.hardware.end_button.is_pressed:
            self.post(booth_flow.TechnicianGesture())
            return
        step = {
            State.IDLE: booth_flow.Start(),
            State.ENDED: booth_flow.Start(),
            State.CHOOSE: booth_flow.ChooseWalkIn(topic_id=None),
            State.CONSENT: booth_flow.Consent(),
        }.get(self.flow.state)
        if step is not None:
            self.post(step)

    def _show_state(self) -> None:
        status, call, end = LIGHTS[self.flow.state]
        self._status_light.show(status)
        self._call_lamp.show(call)
        self._end_lamp.show(end)
        if self._on_state is not None:
            self._on_state(self.flow.state)

    # ------------------------------------------------------------ running

    async def run(self) -> None:
        """Run until :meth:`stop` is called."""
        self._show_state()
        tasks = [
            asyncio.create_task(self._connect(), name="link"),
            asyncio.create_task(self._process_inbox(), name="inbox"),
            asyncio.create_task(self._tick(), name="flow-tick"),
            asyncio.create_task(self._keep_info_fresh(), name="server-info"),
            asyncio.create_task(self.check_platform(), name="platform-check"),
        ]
        if self.config.status_file is not None:
            tasks.append(asyncio.create_task(self._write_status(self.config.status_file)))
        try:
            await self._stopped.wait()
        finally:
            if self.session_id is not None:
                self.link.send(
                    Hangup(session_id=self.session_id, reason=HangupReason.BOOTH_SHUTDOWN)
                )
            await self._stop_media(HangupReason.BOOTH_SHUTDOWN)
            await self._close_camera()
            await self.link.close()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self.config.status_file is not None:
                await self._write_status_once(self.config.status_file)

    async def _connect(self) -> None:
        """Make sure the booth has an identity (enrol if not), then keep the link up."""
        if self.access.credential is None:
            self.access.identity = await self._enrolment()
        await self.link.run()

    async def _enrolment(self) -> Identity:
        """The enrolled identity: kept from an earlier boot, or got now with the token from
        booth.toml, or with one read from the enrolment QR code (the screen asks for it)."""
        directory = self.config.identity_dir
        identity = await asyncio.to_thread(load_identity, directory)
        if identity is not None:
            return identity
        token = self.config.enrolment_token
        if token is None:
            self.post(booth_flow.EnrolmentNeeded())
        delay = 1.0
        while True:
            if token is None:
                token = await self._scanned_tokens.get()
            try:
                identity = await enrol(self.access, directory, token)
            except EnrolmentRefusedError as exc:
                # A spent, expired or revoked token: say so and wait for another code.
                log.error("enrolment refused: %s", exc)
                self.enrolment_problem = str(exc)
                self.post(booth_flow.EnrolmentNeeded())
                self.post(booth_flow.EnrolmentFailed(exc.reason))
                token = None
                continue
            except ServerNotFoundError as exc:
                # A wrong address: the screen says so; the card is corrected, or the proxy.
                log.error("cannot enrol: %s; trying again in %.0f s", exc, delay)
                self.enrolment_problem = str(exc)
                self.post(booth_flow.ServerNotFound())
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.config.reconnect_max_seconds)
                continue
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                reason = explain_connection_error(exc, self.read_clock())
                log.warning("cannot enrol yet (%s); trying again in %.0f s", reason, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.config.reconnect_max_seconds)
                continue
            break
        self.enrolment_problem = None
        if self.config.enrolment_token is not None and self.config.source is not None:
            try:
                await asyncio.to_thread(forget_token, self.config.source)
            except OSError as exc:  # a read-only boot partition: the token is spent anyway
                log.warning("could not remove the spent token from %s: %s", self.config.source, exc)
        self.post(booth_flow.Enrolled())
        return identity

    def stop(self) -> None:
        self._stopped.set()

    def request_call(self, topic_id: str | None = None) -> bool:
        """Ask for an advisor now, as a citizen's three taps would (the call button, ``--call``);
        False when the booth cannot now."""
        if self.flow.state is State.ENDED:
            self.post(booth_flow.Start())  # "Done": back to idle first
        elif self.flow.state is not State.IDLE:
            log.info("call request ignored in state %s", self.flow.state)
            return False
        for event in (booth_flow.Start(), booth_flow.ChooseWalkIn(topic_id), booth_flow.Consent()):
            self.post(event)
        return True

    async def hang_up(self) -> None:
        """End the call or the wait (the end button)."""
        self.post(booth_flow.Cancel())

    # ------------------------------------------------------------ events

    def _on_link_state(self, state: LinkState) -> None:
        if state is LinkState.ONLINE:
            self._server_seen_at = time.monotonic()
            if self.session_id is not None and self.resume_token is not None:
                # First of all, before anything else goes out on this connection.
                log.info("session %s: taking the call up again", self.session_id)
                self.link.send(
                    Resume(id="resume", session_id=self.session_id, token=self.resume_token)
                )
            self.post(booth_flow.LinkUp())
            self._spawn(self._refresh_info())
            if self.flow.service_reason == "refused":  # the credential is accepted again
                self.post(booth_flow.BackInService())
            self._spawn(self._maybe_request_call())
        elif state is LinkState.NOT_FOUND:
            self.post(booth_flow.ServerNotFound())
            self.post(booth_flow.LinkDown())
        elif state is LinkState.REFUSED:
            self.post(booth_flow.OutOfService(reason="refused"))
            self.post(booth_flow.LinkDown())
        elif state in (LinkState.OFFLINE, LinkState.CONNECTING):
            # A call or a wait goes on (the booth resumes it); anything else ends.
            self.post(booth_flow.LinkDown())

    async def _refresh_info(self) -> None:
        self.info = await fetch_server_info(self.access, self.info)
        self.server_rtt_ms = await measure_round_trip(self.access)

    async def _keep_info_fresh(self) -> None:
        # Besides every time the link comes up (_on_link_state).
        while True:
            await asyncio.sleep(INFO_REFRESH_SECONDS)
            if self.link.state is LinkState.ONLINE:
                await self._refresh_info()

    async def check_platform(self) -> PlatformReport:
        """The start self-tests: the pin driver and the lights' read-back (done when the pins
        were opened), the configured ALSA devices, the clock; then the platform line."""
        audio = await check_audio(self.config.audio)
        clock = await asyncio.to_thread(self.read_clock)
        if not clock.synchronised:
            log.warning("clock: %s", clock.describe())
        hardware = self.config.hardware
        report = PlatformReport(
            pin_driver=self.hardware.pin_driver,
            readback=dict(self.hardware.readback),
            lights_configured=any(getattr(hardware, name) is not None for name in LIGHT_SETTINGS),
            audio=audio,
            clock=clock,
        )
        self.platform = report
        self.self_test.update(
            microphone=audio.capture.ok, speaker=audio.playback.ok, lights=report.lights_ok
        )
        report.log()
        return report

    def _heartbeat(self) -> Heartbeat:
        state = str(self.flow.state)
        audio_problem = self.audio_fault
        if audio_problem is None and self.platform is not None:
            audio_problem = self.platform.audio.problem
        try:
            health = collect_health(
                state,
                self.started_at,
                self.self_test,
                self.server_rtt_ms,
                data_dir=self.config.identity_dir
                if self.config.identity_dir.exists()
                else Path("."),
                pin_driver=self.hardware.pin_driver,
                clock_synchronised=self.read_clock().synchronised,
                audio_problem=audio_problem,
            )
        except ValueError as exc:  # a reading out of bounds: the heartbeat goes without it
            log.warning("health report left out: %s", exc)
            return Heartbeat(state=state)
        return Heartbeat(state=state, health=health)

    async def _command(self, command: BoothCommand) -> None:
        """An administrator's command from the fleet view; every one is answered."""
        ok, detail = True, ""
        busy = self.flow.busy or self.flow.state in (State.TECHNICIAN, State.TECHNICIAN_PIN)
        match command.command:
            case "out_of_service" if self.flow.busy:
                # A citizen is using the booth: out of service once the visit is over.
                self._out_of_service_after_visit = True
                detail = "after the current visit"
            case "out_of_service":
                self.post(booth_flow.OutOfService(reason="remote"))
                detail = "out of service"
            case "in_service":
                self._out_of_service_after_visit = False
                if self.flow.service_reason == "remote":
                    self.post(booth_flow.BackInService())
                    detail = "in service"
                elif self.flow.in_service:
                    detail = "was not out of service"
                else:
                    ok, detail = False, f"out of service because: {self.flow.service_reason}"
            case "self_test" if busy:
                ok, detail = False, "someone is using the booth; try again later"
            case "self_test":
                self.self_test = await self.run_self_test()
                ok = all(v is not False for v in self.self_test.values())
                detail = ", ".join(
                    f"{name} {'ok' if v else 'FAULT' if v is False else '-'}"
                    for name, v in self.self_test.items()
                )
            case "restart" if busy:
                ok, detail = False, "someone is using the booth; try again later"
            case "restart":
                detail = "restarting"
        self.link.send(CommandResult(command_id=command.command_id, ok=ok, detail=detail))
        if command.command == "restart" and ok:
            await asyncio.sleep(0.5)  # let the answer go out
            self.restart()

    async def run_self_test(self) -> dict[str, bool | None]:
        """Camera, microphone and loudspeaker: can each be opened and does it deliver? The
        lights: does each line read back as driven?"""
        results: dict[str, bool | None] = {}
        if self.fanout is not None:
            results["camera"] = self.camera_fault is None
        else:
            try:
                source = await self._open_camera()
                await source.start()
                try:
                    async with asyncio.timeout(5):
                        await source.read()
                finally:
                    await source.stop()
                results["camera"] = True
            except (SourceError, TimeoutError) as exc:
                log.error("self-test: camera: %s", exc)
                results["camera"] = False
        track = open_microphone(self.config.audio, self._on_audio_error)
        try:
            async with asyncio.timeout(3):
                await track.recv()
            results["microphone"] = True
        except (MediaStreamError, TimeoutError, AudioError) as exc:
            log.error("self-test: microphone: %s", exc)
            results["microphone"] = False
        finally:
            await _close_track(track)
        if self.config.audio.playback == "none":
            results["speaker"] = None
        else:
            output = AlsaOutput(self.config.audio.playback)
            try:
                await asyncio.to_thread(output.open, 48_000, 1)
                results["speaker"] = True
            except AudioError as exc:
                log.error("self-test: speaker: %s", exc)
                results["speaker"] = False
            finally:
                await asyncio.to_thread(output.close)
        readback = await asyncio.to_thread(self.hardware.check_lights)
        # The check left the lights off: show what they showed before.
        for light in (self._status_light, self._call_lamp, self._end_lamp):
            light.refresh()
        self._light_camera()
        if readback:
            results["lights"] = all(readback.values())
        return results

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _maybe_request_call(self, delay: float = 0.0) -> None:
        await asyncio.sleep(delay)
        if self.config.call_on_start and (self.config.repeat_calls or not self._requested_once):
            # Wait for the flow to reach idle (the link's events are queued before this).
            for _ in range(50):
                if self.flow.state in (State.IDLE, State.ENDED):
                    break
                await asyncio.sleep(0.1)
            if self.request_call():
                self._requested_once = True

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            self.post(booth_flow.Tick())

    async def _process_inbox(self) -> None:
        # One consumer, so offer, answer and candidates are applied in the order they came,
        # and taps and server messages reach the flow one at a time.
        while True:
            item = await self._inbox.get()
            try:
                if isinstance(item, booth_flow.Event):
                    await self._feed(item)
                elif isinstance(item, Repair):
                    await self._repair(item.participant_id)
                else:
                    await self._handle(item)
            except CallError as exc:
                log.error("session %s: %s", self.session_id, exc)
                if self.session_id is not None:
                    self.link.send(
                        Hangup(session_id=self.session_id, reason=HangupReason.CALL_ERROR)
                    )
                await self._feed(booth_flow.CallEnded(reason=HangupReason.CALL_ERROR))
            except Exception:
                log.exception("failed to handle %s", type(item).__name__)

    async def _feed(self, event: booth_flow.Event) -> None:
        """Give ``event`` to the flow, carry out its effects, and follow it with the camera."""
        before = self.flow.state
        effects = self.flow.handle(event, time.monotonic())
        if self.flow.state is not before:
            log.info("booth %s -> %s", before, self.flow.state)
            self._show_state()
        for effect in effects:
            await self._apply(effect)
        if self.flow.state not in (State.WAITING, State.IN_CALL) and (
            self.session_id is not None or self.call is not None
        ):
            await self._stop_media(HangupReason.ENDED)  # the visit is over, whatever ended it
        await self._follow_camera()
        self._follow_qr_scan()
        self._follow_technician()
        if self._out_of_service_after_visit and not self.flow.busy:
            self._out_of_service_after_visit = False
            self.post(booth_flow.OutOfService(reason="remote"))
        just_ended = before is not State.ENDED and self.flow.state is State.ENDED
        if just_ended and self.config.repeat_calls and self.config.call_on_start:
            self._spawn(self._maybe_request_call(REPEAT_DELAY))

    async def _apply(self, effect: Effect) -> None:
        match effect:
            case booth_flow.RequestCall():
                self.call_requested_at = time.time()
                if not self.link.send(CallRequest(topic_id=effect.topic_id)):
                    await self._feed(booth_flow.CallEnded(reason=HangupReason.SERVER_UNREACHABLE))
            case booth_flow.CheckCode():
                # The keypad waits; taps and the server's messages go on meanwhile.
                self._spawn(self._check_code(effect.code))
            case booth_flow.JoinAppointment():
                self.call_requested_at = time.time()
                if not self.link.send(AppointmentJoin(code=effect.code)):
                    await self._feed(booth_flow.CallEnded(reason=HangupReason.SERVER_UNREACHABLE))
            case booth_flow.CancelWait():
                if self.session_id is not None:
                    self.link.send(CallCancel(session_id=self.session_id))
                self.session_id = None
            case booth_flow.HangUp():
                self.link.send(Hangup(session_id=effect.session_id, reason=HangupReason.HANGUP))
                await self._stop_media(HangupReason.HANGUP)
            case booth_flow.Enrol():
                self._scanned_tokens.put_nowait(effect.token)
            case booth_flow.WipeVisit():
                await self._stop_media(HangupReason.ENDED)
            case _:  # pragma: no cover - every effect is handled above
                log.error("unhandled effect %s", effect)

    async def _check_code(self, code: str) -> None:
        result = await check_code(self.access, code)
        self.post(booth_flow.CodeChecked(code=code, refusal=result.refusal))

    async def _handle(self, message: Message) -> None:
        match message:
            case Welcome():
                self.participant_id = message.participant_id
            case QueuePosition() if message.session_id == self.session_id:
                self.queue_position = (message.position, message.estimated_wait_seconds)
                await self._feed(
                    booth_flow.QueuePlace(message.position, message.estimated_wait_seconds)
                )
            case CallWaiting():
                if self.flow.state is not State.WAITING:
                    # The citizen gave up before the server answered: withdraw at once.
                    self.link.send(CallCancel(session_id=message.session_id))
                    return
                self.session_id = message.session_id
                self.resume_token = message.resume_token
                self.link.urgent = True
                self._watch()
                log.info("session %s: waiting for an advisor", message.session_id)
                await self._feed(booth_flow.Waiting(session_id=message.session_id))
            case CallStarted():
                if self.flow.state is not State.WAITING:
                    self.link.send(Hangup(session_id=message.session_id, reason=HangupReason.GONE))
                    return
                self.queue_position = None
                self.resume_token = message.resume_token or self.resume_token
                await self._feed(booth_flow.CallStarted(session_id=message.session_id))
                await self._start_call(message)
            case Answer() if (leg := self._leg(message.session_id, message.sender)) is not None:
                await leg.accept_answer(message.sdp)
            case IceCandidate() if (
                leg := self._leg(message.session_id, message.sender)
            ) is not None:
                await leg.add_candidate(message)
            case Resumed() if message.session_id == self.session_id:
                self.participant_id = message.participant_id
                self.away = set(message.away)
                if message.ice_servers:
                    self._ice_servers = message.ice_servers
                log.info("session %s: resumed (%d away)", message.session_id, len(self.away))
            case ParticipantAway() if message.session_id == self.session_id:
                self.away.add(message.participant_id)
            case ParticipantBack() if message.session_id == self.session_id:
                self.away.discard(message.participant_id)
            case ParticipantJoined() if self.call and message.session_id == self.call.session_id:
                await self._add_participant(message.peer)
            case ParticipantLeft() if message.participant_id in self.others:
                leg = self.others.pop(message.participant_id)
                log.info("session %s: %s left (%s)", leg.session_id, leg.peer.name, message.reason)
                await leg.close()
            case Chat() if self.call and message.session_id == self.call.session_id:
                self.call.chat.append(message)
                await self._feed(
                    booth_flow.ChatLine(sender=message.sender_name or "", text=message.text)
                )
            case Hangup():
                if message.session_id in ("local", self.session_id):
                    await self._stop_media(message.reason)
                    await self._feed(booth_flow.CallEnded(reason=message.reason))
            case BoothCommand():
                self._spawn(self._command(message))
            case Error() if message.ref == "resume" and self.session_id is not None:
                # The call ended while the booth was away (or cannot be taken up again).
                log.warning("session %s: cannot resume: %s", self.session_id, message.message)
                await self._stop_media(HangupReason.CONNECTION_LOST)
                await self._feed(booth_flow.CallEnded(reason=HangupReason.CONNECTION_LOST))
            case Error():
                log.warning("server refused %s: %s %s", message.ref, message.code, message.message)
                refused = str(message.code) in REFUSALS
                if refused and self.flow.state is State.WAITING and self.session_id is None:
                    await self._feed(booth_flow.Refused(str(message.code), message.message))
            case _:
                log.debug("ignored %s", message.type)

    def _leg(self, session_id: str, sender: str | None) -> PeerLink | None:
        """The peer connection a relayed answer or candidate belongs to."""
        if self.call is None or session_id != self.call.session_id:
            return None
        if sender is None or sender == self.call.peer.participant_id:
            return self.call
        return self.others.get(sender)

    def _new_leg(self, started: CallStarted, peer: Peer, *, primary: bool) -> PeerLink:
        assert self.fanout is not None
        assert self._audio_relay is not None
        assert self.microphone is not None
        if self._ice_servers is not None:  # fresher relay credentials from a resume
            started = started.model_copy(update={"ice_servers": self._ice_servers})
        return PeerLink(
            started=started,
            peer=peer,
            video_track=self.fanout.subscribe(),
            audio_track=self._audio_relay.subscribe(self.microphone),
            # Each participant's voice gets its own sink; the playback device mixes them.
            loudspeaker=loudspeaker_factory(self.config.audio, self._on_audio_error),
            send=self.link.send,
            on_connected=self._on_connected if primary else _nothing,
            # A failed connection is made anew by the media watchdog (_watch_media).
            on_failed=lambda reason: log.warning("connection with %s: %s", peer.name, reason),
        )

    async def _add_participant(self, peer: Peer) -> None:
        """Someone joined the running call: offer a peer connection to them too."""
        assert self.call is not None
        if peer.participant_id in self.others:
            return
        log.info("session %s: %s joins; offering to them", self.call.session_id, peer.name)
        leg = self._new_leg(self.call.started, peer, primary=False)
        self.others[peer.participant_id] = leg
        await leg.start()

    async def _start_call(self, started: CallStarted) -> None:
        if self.call is not None:
            await self._stop_media(HangupReason.REPLACED)
        self.session_id = started.session_id
        self.connected = False
        log.info(
            "session %s: %s accepted; ICE policy %s with %d server(s)",
            started.session_id,
            started.peer.name,
            started.ice_transport_policy,
            len(started.ice_servers),
        )
        await self._follow_camera()
        if self.fanout is None:
            raise CallError("the camera cannot be used")
        video = self.config.video
        self.microphone = MuteableTrack(open_microphone(self.config.audio, self._on_audio_error))
        self.microphone.muted = self.muted
        self._audio_relay = MediaRelay()
        call = self._new_leg(started, started.peer, primary=True)
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
        self._watch()

    def _on_connected(self) -> None:
        self.connected = True

    # ------------------------------------------------------------ keeping the call up

    @property
    def reconnecting(self) -> bool:
        """The call's connection is broken for the moment (the screens say so)."""
        return self.session_id is not None and (
            self.link.state is not LinkState.ONLINE or self.trouble_since is not None
        )

    def _watch(self) -> None:
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().create_task(
                self._watch_media(), name="media-watchdog"
            )

    def _legs(self) -> list[PeerLink]:
        return [leg for leg in (self.call, *self.others.values()) if leg is not None]

    async def _watch_media(self) -> None:
        """Keep the call up without the citizen: a path that heals by itself (a short outage)
        is left alone; media that stops while the server still answers (a relay restarted, a
        path that will not come back) gets a new peer connection; a call broken for longer
        than ``reconnect_limit_seconds`` ends with a clear message."""
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            now = time.monotonic()
            troubled = self.link.state is not LinkState.ONLINE
            for leg in self._legs():
                failed = leg.pc.connectionState == "failed"
                if leg.connected_at is None and not failed:
                    if now - leg.created_at < SETUP_SECONDS:
                        continue  # still being set up
                    silent_since = leg.created_at
                else:
                    silent_since = max(leg.media_seen_at(), leg.connected_at or 0.0)
                if not failed and now - silent_since < MEDIA_SILENCE_SECONDS:
                    continue
                troubled = True
                peer = leg.peer.participant_id
                if self.link.state is not LinkState.ONLINE or peer in self.away:
                    continue  # nothing can be signalled now; the path may heal meanwhile
                if leg.restart and now - leg.created_at < REPAIR_RETRY_SECONDS:
                    continue  # a connection made anew gets its time
                # The server answering after the media stopped tells a broken media path from
                # a network that is down as a whole (which heals, or ends in failed).
                answered = self._server_seen_at > silent_since
                if failed or (answered and now - self._server_seen_at >= REPAIR_CONFIRM_SECONDS):
                    self._inbox.put_nowait(Repair(peer))
                elif not answered:
                    self._probe_server()
            if not troubled:
                self.trouble_since = None
            elif self.trouble_since is None:
                self.trouble_since = now
                log.warning("session %s: connection interrupted", self.session_id)
            elif now - self.trouble_since >= self.config.reconnect_limit_seconds:
                log.error(
                    "session %s: connection not back after %.0f s; ending the call",
                    self.session_id,
                    now - self.trouble_since,
                )
                if self.session_id is not None:
                    self.link.send(
                        Hangup(session_id=self.session_id, reason=HangupReason.CONNECTION_LOST)
                    )
                self._inbox.put_nowait(
                    Hangup(session_id="local", reason=HangupReason.CONNECTION_LOST)
                )
                self.trouble_since = now  # once, not every half second until it is handled

    def _probe_server(self) -> None:
        if self._probe is not None and not self._probe.done():
            return

        async def probe() -> None:
            try:
                async with asyncio.timeout(2.0):
                    answered = await measure_round_trip(self.access) is not None
            except TimeoutError:
                answered = False
            if answered:
                self._server_seen_at = time.monotonic()

        self._probe = asyncio.get_running_loop().create_task(probe(), name="server-probe")

    async def _repair(self, participant_id: str) -> None:
        """A new peer connection with ``participant_id`` in place of the broken one (aiortc
        cannot restart ICE on a connection); the other side swaps it in."""
        old = next((leg for leg in self._legs() if leg.peer.participant_id == participant_id), None)
        if old is None or self.session_id is None:
            return
        primary = old is self.call
        leg = self._new_leg(old.started, old.peer, primary=primary)
        if primary:
            self.call = leg
            self.connected = False
        else:
            self.others[participant_id] = leg
        self.repairs += 1
        log.warning(
            "session %s: the connection with %s did not heal; making a new one",
            self.session_id,
            old.peer.name,
        )
        # Closing may wait on a relay that is gone: it must not hold up the new connection.
        self._spawn(old.close())
        await leg.start(restart=True)
        if self.rate is not None:
            if old.video_sender is not None:
                self.rate.forget(old.video_sender)
            self.rate.watch(leg.video_sender)
        if primary and self._stats_task is not None:
            self._stats_task.cancel()
            self._stats_task = asyncio.create_task(self._report_stats(leg), name="call-stats")

    async def _follow_camera(self) -> None:
        """Open the camera when the flow's screen shows it; close it when not (the camera
        light follows ``camera_streaming``)."""
        if self.flow.camera_wanted and self.fanout is None:
            # The light goes on before the camera opens (the first frame could come at once).
            self.camera_light.camera_streaming(not self.camera_off)
            try:
                source = await self._open_camera()
                source.blanked = self.camera_off
                fanout = VideoFanout(source)
                await fanout.start()
            except SourceError as exc:
                self.camera_light.camera_streaming(False)
                log.error("the camera cannot be used: %s", exc)
                self.camera_fault = str(exc)
                return
            self.camera_fault = None
            self.fanout = fanout
        elif not self.flow.camera_wanted and self.fanout is not None and self.call is None:
            await self._close_camera()

    def _follow_qr_scan(self) -> None:
        """Read QR codes from the self-view while the code-entry screen is shown."""
        wanted = self.flow.state in (State.CODE_ENTRY, State.ENROLMENT) and self.fanout is not None
        if wanted and self._qr_scan is None:
            fanout = self.fanout

            def latest() -> Any:
                return fanout.source.latest_preview if fanout is not None else None

            self._qr_scan = asyncio.get_running_loop().create_task(
                qr.scan(latest, lambda text: self.post(booth_flow.QrCodeRead(text))),
                name="qr-scan",
            )
        elif not wanted and self._qr_scan is not None:
            self._qr_scan.cancel()
            self._qr_scan = None

    async def _open_configured_camera(self) -> VideoSource:
        video, camera = self.config.video, self.config.camera
        return await open_video_source(
            CameraChoice(
                kind=CameraKind(camera.kind), device=camera.device, input_format=camera.input_format
            ),
            fps=video.fps,
            width=video.width,
            height=video.height,
            bitrate=video.bitrate,
            allow_test_pattern=camera.allow_test_pattern,
        )

    async def _close_camera(self) -> None:
        if self.fanout is not None:
            fanout, self.fanout = self.fanout, None
            await fanout.close()
            self.camera_light.camera_streaming(False)

    def _on_audio_error(self, error: AudioError) -> None:
        # A lost microphone or loudspeaker is reported, not fatal: the call goes on with video
        # and chat, and the fleet's health check shows the fault.
        log.error("session %s: %s", self.session_id, error)
        self.audio_fault = str(error)

    async def _report_stats(self, call: PeerLink) -> None:
        sampler = CallStatsSampler(call)
        while True:
            stats = await sampler.sample()
            self.last_stats = stats.model_dump(mode="json", include={"sent", "received"})
            if call.connected_at is not None:
                self.link.send(stats)
            await asyncio.sleep(self.config.stats_seconds)

    async def _stop_media(self, reason: str) -> None:
        """Close the call's peer connections and microphone; the camera follows the flow."""
        call, session_id = self.call, self.session_id
        if session_id is None and call is None:
            return
        for task in (self._stats_task, self._watchdog, self._probe):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._stats_task = self._watchdog = self._probe = None
        self.link.urgent = False
        self.resume_token = None
        self._ice_servers = None
        self.away = set()
        self.trouble_since = None
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
        summary["repairs"] = self.repairs
        self.repairs = 0
        if self.microphone is not None:
            # A microphone must be released before the next call opens it again.
            await _close_track(self.microphone)
            self.microphone = None
        self._audio_relay = None
        if self.rate is not None:
            await self.rate.stop()
            self.rate = None
        # Leaving a call wipes everything about it, the citizen's settings included.
        self.muted = self.camera_off = False
        if self.fanout is not None:
            self.fanout.source.blanked = False
            self._light_camera()
        self.volume = self.config.audio.volume
        self.call = None
        self.session_id = None
        self.connected = False
        self.call_requested_at = None
        self.queue_position = None
        if call is not None:
            self.last_call_ended = summary
        log.info("session %s ended: %s", session_id, reason)
        await self._follow_camera()

    # ------------------------------------------------------------ status

    async def status(self) -> dict[str, Any]:
        """The booth's live status (no personal data: there is none to report)."""
        status: dict[str, Any] = {
            "pid": os.getpid(),
            "state": str(self.flow.state),
            "media_connected": self.connected,
            "camera_fault": self.camera_fault,
            "link": str(self.link.state),
            "session_id": self.session_id,
            "reconnecting": self.reconnecting,
            "repairs": self.repairs,
            "call_requested_at": self.call_requested_at,
            "calls_completed": self.calls_completed,
            "camera_streaming": self.fanout is not None,
            "camera_light": self.camera_light.streaming,
            "hardware_unavailable": self.hardware.unavailable,
            "platform": self.platform.line() if self.platform is not None else None,
            "link_problem": self.link.problem,
            "topics": len(self.info.topics),
            "booth_id": self.access.identity.booth_id if self.access.identity else None,
            "enrolment_problem": self.enrolment_problem,
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


async def _close_track(track: MediaStreamTrack) -> None:
    """Release a capture track: a microphone must be closed before it is opened again."""
    close = getattr(track, "close", None)
    if close is not None:
        await close()
    else:
        track.stop()


def _nothing() -> None:
    pass


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
