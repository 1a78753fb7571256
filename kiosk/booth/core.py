"""The booth: link to the server, the citizen's flow, and the parts that carry out its effects.

What the citizen sees and may do is :mod:`kiosk.flow` (pure); the booth feeds it events — taps
and buttons (:meth:`Booth.post`), the server's messages, the link's state, a tick each second —
one at a time from one inbox, and carries out the effects it returns: ask for a call, join an
appointment, cancel, hang up, wipe. The parts: the camera follows the flow
(:mod:`~kiosk.booth.camera`), the call's media (:mod:`~kiosk.booth.media`) is kept up by the
connection keeper (:mod:`~kiosk.booth.keeper`), enrolment, remote commands and technician mode
have a module each, and :mod:`~kiosk.booth.status` is what the booth reports.

Longer than 500 lines on purpose: the inbox's one consumer, the flow's effects and the server's
messages are one ordered sequence (an answer after its offer, a hang-up after the call that it
ends), and reading it in one place is how that order is checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from kiosk import flow as booth_flow
from kiosk.booth.camera import CameraFollower, CameraOpener
from kiosk.booth.commands import RemoteCommands, run_self_test
from kiosk.booth.enrolment import Enrolment
from kiosk.booth.health import BoothHealth
from kiosk.booth.keeper import ConnectionKeeper, Recovery, Repair
from kiosk.booth.lights import BoothLights
from kiosk.booth.media import CallMedia
from kiosk.booth.prompts import SpokenPrompts
from kiosk.booth.service import TechnicianMode
from kiosk.booth.status import STATUS_INTERVAL, BoothStatus, write_status
from kiosk.booth.updates import BoothUpdates, choose_installer
from kiosk.clock import ClockReading, read_clock
from kiosk.codecheck import check_code
from kiosk.config import BoothConfig
from kiosk.flow import Effect, Flow, State, Timeouts
from kiosk.hardware import BoothHardware, CameraLight, null_hardware
from kiosk.i18n import load_catalogue
from kiosk.identity import ServerAccess, ssl_setting
from kiosk.link import LinkState, ServerLink
from kiosk.media import VideoFanout, VideoSource
from kiosk.media.choose import CameraChoice, CameraKind, open_video_source
from kiosk.peerlink import CallError, PeerLink
from kiosk.platform import PlatformReport
from kiosk.serverinfo import ServerInfo, fetch_server_info
from kiosk.speech import Speaker, Voice, open_voice, speech_output
from kiosk.technician import measure_round_trip
from kiosk.updates import Installer, Slots
from protocol import (
    Answer,
    AppointmentJoin,
    BoothCommand,
    CallCancel,
    CallRequest,
    CallStarted,
    CallWaiting,
    Chat,
    Error,
    Hangup,
    HangupReason,
    Heartbeat,
    IceCandidate,
    Message,
    ParticipantAway,
    ParticipantBack,
    ParticipantJoined,
    ParticipantLeft,
    QueuePosition,
    Resumed,
    UpdateOffer,
    UpdateWithdrawn,
    Welcome,
)

log = logging.getLogger(__name__)

#: The exit code that asks systemd to restart the machine (the image's unit does).
RESTART_MACHINE = 4

REPEAT_DELAY = 2.0
TICK_SECONDS = 1.0
#: How often topics and branding are fetched again while online: a changed privacy notice
#: reaches every booth within this long.
INFO_REFRESH_SECONDS = 300.0
#: Server refusals that send the citizen back a step (a wrong code, too many tries, ...).
REFUSALS = {"wrong_code", "rate_limited", "unknown_topic", "already_in_call", "not_allowed"}

Input = Message | booth_flow.Event | Repair


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
        installer: Installer | None = None,
        voice: Voice | None = None,
    ) -> None:
        self.config = config
        #: Reads the booth's clock (synchronised or not); a stand-in in tests.
        self.read_clock = clock
        self.flow = Flow(
            timeouts=Timeouts(accessible_factor=config.accessibility.timeout_factor),
            technician_pin_digest=config.technician_pin_digest,
        )
        self.hardware = hardware or null_hardware("no buttons or lights given")
        self.lights = BoothLights(self.hardware)
        self._on_state = on_state
        # A short press of the call button acts when it comes up; held, it is the way into
        # the accessibility mode (and, in it, "say that again").
        self._call_press_used = False
        self.hardware.call_button.when_pressed = self._on_call_button
        self.hardware.call_button.when_held = self._on_call_button_held
        self.hardware.call_button.when_released = self._on_call_button_released
        self.hardware.end_button.when_pressed = lambda: self.post(booth_flow.Cancel())
        if self.hardware.presence is not None:
            presence = self.hardware.presence
            presence.when_present = lambda: self.post(booth_flow.Presence(present=True))
            presence.when_absent = lambda: self.post(booth_flow.Presence(present=False))
        #: The topics walk-ins can choose and the branding, fetched from the server when online.
        self.info = ServerInfo()
        self.participant_id: str | None = None
        self.call_requested_at: float | None = None  # wall clock, for set-up time measurements
        self.last_call_ended: dict[str, Any] | None = None
        self._inbox: asyncio.Queue[Input] = asyncio.Queue()
        self._stopped = asyncio.Event()
        self._requested_once = False
        self._background: set[asyncio.Task[None]] = set()
        self.exit_code = 0
        self.health = BoothHealth(
            config=config, hardware=self.hardware, clock=clock, session_id=lambda: self.session_id
        )
        self.access = ServerAccess(
            server_url=config.server_url,
            ssl=ssl_setting(config.server_ca_file, config.server_fingerprint),
            credential=config.credential,
        )
        self.link = ServerLink(
            url=config.websocket_url,
            access=self.access,
            on_message=self._inbox.put_nowait,
            on_state=self._on_link_state,
            heartbeat=self.heartbeat,
            heartbeat_seconds=config.heartbeat_seconds,
            reconnect_max_seconds=config.reconnect_max_seconds,
            clock=clock,
        )
        #: The camera (open only while the flow shows it or a call runs) and its light.
        self.camera = CameraFollower(
            open_camera=camera or self._open_configured_camera,
            light=CameraLight(self.hardware.camera_led),
            on_qr_code=lambda text: self.post(booth_flow.QrCodeRead(text)),
        )
        self.keeper = ConnectionKeeper(
            link=self.link,
            access=self.access,
            session_id=lambda: self.session_id,
            legs=lambda: self.media.legs(),
            post=self._inbox.put_nowait,
            reconnect_limit_seconds=config.reconnect_limit_seconds,
        )
        self.media = CallMedia(
            config=config,
            camera=self.camera,
            send=self.link.send,
            on_audio_error=self.health.on_audio_error,
            ice_servers=lambda: self.keeper.ice_servers,
        )
        self.enrolment = Enrolment(config=config, access=self.access, post=self.post, clock=clock)
        self.commands = RemoteCommands(
            flow=self.flow,
            post=self.post,
            send=self.link.send,
            self_test=self._command_self_test,
            restart=self.restart,
        )
        self.updates = BoothUpdates(
            config=config,
            installer=choose_installer(config) if installer is None else installer,
            access=self.access,
            flow=self.flow,
            post=self.post,
            send=self.link.send,
            self_test=self._command_self_test,
            restart_machine=self.restart_machine,
            on_slots=self._slots_known,
        )
        #: The accessibility mode's spoken prompts (``voice`` given, or the configured one).
        self.prompts = SpokenPrompts(
            voice=voice if voice is not None else open_voice(config.accessibility),
            speaker=Speaker(speech_output(config.audio)),
            catalogue=load_catalogue(),
            call_running=lambda: self.media.connected,
        )
        #: The further participant pinned to the call screen's stage (an interpreter).
        self.pinned: str | None = None
        self.technician = TechnicianMode(
            config=config,
            access=self.access,
            link=self.link,
            camera=self.camera,
            hardware=self.hardware,
            clock=clock,
            on_audio_error=self.health.on_audio_error,
        )

    # ------------------------------------------------------------ what the screens read

    @property
    def state(self) -> State:
        return self.flow.state

    @property
    def session_id(self) -> str | None:
        """The session of the wait or call the flow's visit is in (the flow owns it)."""
        return self.flow.visit.session_id

    @property
    def fanout(self) -> VideoFanout | None:
        """The camera, encoded once for every peer; None while it is closed."""
        return self.camera.fanout

    @property
    def call(self) -> PeerLink | None:
        """The peer connection with the advisor while a call runs."""
        return self.media.call

    @property
    def camera_fault(self) -> str | None:
        return self.camera.fault

    @property
    def reconnecting(self) -> bool:
        """The call's connection is broken for the moment (the screens say so)."""
        return self.keeper.reconnecting

    @property
    def enrolment_problem(self) -> str | None:
        """Why the last enrolment attempt failed, in English (the flow keeps it)."""
        return self.flow.enrolment_detail

    def technician_info(self) -> dict[str, str]:
        return self.technician.info(
            audio_fault=self.health.audio_fault, platform=self.health.platform
        )

    # ------------------------------------------------------------ what the citizen does

    def post(self, event: booth_flow.Event) -> None:
        """A tap, a button or a sensor: handled in order with the server's messages."""
        self._inbox.put_nowait(event)

    def toggle_mute(self) -> None:
        self.media.toggle_mute()

    def toggle_camera(self) -> None:
        """The citizen's camera button: black pictures go out, and the camera light goes out."""
        self.camera.set_off(not self.camera.off)
        log.info("session %s: camera %s", self.session_id, "off" if self.camera.off else "on")

    def change_volume(self, step: float) -> None:
        self.media.change_volume(step)

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

    def repeat_prompt(self) -> None:
        """Say the screen's spoken prompt again (the accessibility mode's repeat)."""
        self.prompts.repeat()

    def toggle_pin(self) -> None:
        """Pin the call's further participant (an interpreter) to the stage, or the advisor
        back: the citizen's tap on the tile."""
        others = list(self.media.others)
        self.pinned = None if self.pinned is not None or not others else others[0]
        log.info("session %s: %s on the stage", self.session_id, self.pinned or "the advisor")

    def _on_call_button(self) -> None:
        """The illuminated call button goes down: with the end button held, the technician's
        way in; otherwise what it means is known when it comes up or is held."""
        self._call_press_used = self.hardware.end_button.is_pressed
        if self._call_press_used:
            self.post(booth_flow.TechnicianGesture())

    def _on_call_button_held(self) -> None:
        """Held (``hardware.hold_seconds``): the accessibility mode, or in it the prompt
        again."""
        if self._call_press_used:
            return
        self._call_press_used = True
        if self.flow.visit.accessible:
            self.repeat_prompt()
        else:
            self.post(booth_flow.AccessibleMode())

    def _on_call_button_released(self) -> None:
        """Up after a short press: the flow takes the next step towards an advisor now."""
        if not self._call_press_used:
            self.post(booth_flow.CallButton())
        self._call_press_used = False

    # ------------------------------------------------------------ technician mode

    async def run_network_check(self) -> None:
        await self.technician.run_network_check()

    async def play_test_tone(self, seconds: float = 1.5) -> None:
        """A short tone through the loudspeaker (technician mode)."""
        await self.technician.play_test_tone(seconds)

    def restart(self) -> None:
        """Leave with a code that tells systemd to start the booth again."""
        log.warning("restart asked for in technician mode")
        self.exit_code = 3
        self.stop()

    def restart_machine(self) -> None:
        """Leave with the code that tells systemd to restart the machine (an update was
        installed into the other slot, or a slot on trial failed its self-test)."""
        log.warning("restarting the machine")
        self.exit_code = RESTART_MACHINE
        self.stop()

    def _slots_known(self, slots: Slots) -> None:
        self.health.slots = slots

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
            await self._stop_media(HangupReason.BOOTH_SHUTDOWN, self.session_id)
            await self.prompts.close()
            await self.camera.close()
            await self.updates.close()
            await self.link.close()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self.config.status_file is not None:
                await write_status(self.config.status_file, await self.status_report())

    def stop(self) -> None:
        self._stopped.set()

    async def _connect(self) -> None:
        """Make sure the booth has an identity (enrol if not), then keep the link up."""
        if self.access.credential is None:
            self.access.identity = await self.enrolment.identity()
        await self.link.run()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            self.post(booth_flow.Tick())

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

    # ------------------------------------------------------------ the inbox

    async def _process_inbox(self) -> None:
        # One consumer, so offer, answer and candidates are applied in the order they came,
        # and taps and server messages reach the flow one at a time.
        while True:
            item = await self._inbox.get()
            try:
                if isinstance(item, booth_flow.Event):
                    await self._feed(item)
                elif isinstance(item, Repair):
                    if self.session_id is not None:
                        await self.media.repair(item, self._spawn)
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
        """Give ``event`` to the flow, carry out its effects, and let the parts follow it."""
        before, session_id = self.flow.state, self.flow.visit.session_id
        effects = self.flow.handle(event, time.monotonic())
        if self.flow.state is not before:
            log.info("booth %s -> %s", before, self.flow.state)
            self._show_state()
        for effect in effects:
            await self._apply(effect, session_id)
        if self.flow.state not in (State.WAITING, State.IN_CALL):
            # The visit is over, whatever ended it.
            await self._stop_media(HangupReason.ENDED, session_id)
        await self._follow_camera()
        self.camera.follow_qr_scan(self.flow.state in (State.CODE_ENTRY, State.ENROLMENT))
        self.technician.follow(self.flow.state is State.TECHNICIAN)
        self.prompts.follow(self.flow.state, self.flow.visit)
        self.commands.visit_over()
        self.updates.flow_changed()
        just_ended = before is not State.ENDED and self.flow.state is State.ENDED
        if just_ended and self.config.repeat_calls and self.config.call_on_start:
            self._spawn(self._maybe_request_call(REPEAT_DELAY))

    async def _apply(self, effect: Effect, session_id: str | None) -> None:
        """Carry out ``effect``; ``session_id``: the visit's session before the event (the
        flow has forgotten it when the visit ended)."""
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
                if effect.session_id is not None:
                    self.link.send(CallCancel(session_id=effect.session_id))
            case booth_flow.HangUp():
                self.link.send(Hangup(session_id=effect.session_id, reason=HangupReason.HANGUP))
                await self._stop_media(HangupReason.HANGUP, effect.session_id)
            case booth_flow.Enrol():
                self.enrolment.token_scanned(effect.token)
            case booth_flow.WipeVisit():
                await self._stop_media(HangupReason.ENDED, session_id)
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
                await self._feed(
                    booth_flow.QueuePlace(message.position, message.estimated_wait_seconds)
                )
            case CallWaiting():
                if self.flow.state is not State.WAITING:
                    # The citizen gave up before the server answered: withdraw at once.
                    self.link.send(CallCancel(session_id=message.session_id))
                    return
                self.keeper.keep(message.resume_token)
                log.info("session %s: waiting for an advisor", message.session_id)
                await self._feed(booth_flow.Waiting(session_id=message.session_id))
            case CallStarted():
                if self.flow.state is not State.WAITING:
                    self.link.send(Hangup(session_id=message.session_id, reason=HangupReason.GONE))
                    return
                if message.resume_token:
                    self.keeper.resume_token = message.resume_token
                await self._feed(booth_flow.CallStarted(session_id=message.session_id))
                await self._start_call(message)
            case Answer() if leg := self.media.leg(message.session_id, message.sender):
                await leg.accept_answer(message.sdp)
            case IceCandidate() if leg := self.media.leg(message.session_id, message.sender):
                await leg.add_candidate(message)
            case Resumed() if message.session_id == self.session_id:
                self.participant_id = message.participant_id
                self.keeper.resumed(message)
            case ParticipantAway() if message.session_id == self.session_id:
                self.keeper.away.add(message.participant_id)
            case ParticipantBack() if message.session_id == self.session_id:
                self.keeper.away.discard(message.participant_id)
            case ParticipantJoined() if (call := self.media.call) and (
                message.session_id == call.session_id
            ):
                await self.media.add_participant(message.peer)
            case ParticipantLeft() if message.participant_id in self.media.others:
                await self.media.remove_participant(message.participant_id, message.reason)
            case Chat() if (call := self.media.call) and message.session_id == call.session_id:
                call.chat.append(message)
                await self._feed(
                    booth_flow.ChatLine(sender=message.sender_name or "", text=message.text)
                )
            case Hangup():
                if message.session_id in ("local", self.session_id):
                    await self._stop_media(message.reason, self.session_id)
                    await self._feed(booth_flow.CallEnded(reason=message.reason))
            case BoothCommand():
                self._spawn(self.commands.handle(message))
            case UpdateOffer():
                self.updates.offered(message)
            case UpdateWithdrawn():
                self.updates.withdrawn(message)
            case Error() if message.ref == "resume" and self.session_id is not None:
                # The call ended while the booth was away (or cannot be taken up again).
                log.warning("session %s: cannot resume: %s", self.session_id, message.message)
                await self._stop_media(HangupReason.CONNECTION_LOST, self.session_id)
                await self._feed(booth_flow.CallEnded(reason=HangupReason.CONNECTION_LOST))
            case Error():
                log.warning("server refused %s: %s %s", message.ref, message.code, message.message)
                refused = str(message.code) in REFUSALS
                if refused and self.flow.state is State.WAITING and self.session_id is None:
                    await self._feed(booth_flow.Refused(str(message.code), message.message))
            case _:
                log.debug("ignored %s", message.type)

    # ------------------------------------------------------------ the call

    async def _start_call(self, started: CallStarted) -> None:
        if self.media.call is not None:
            await self._stop_media(HangupReason.REPLACED, self.media.call.session_id)
        log.info(
            "session %s: %s accepted; ICE policy %s with %d server(s)",
            started.session_id,
            started.peer.name,
            started.ice_transport_policy,
            len(started.ice_servers),
        )
        await self._follow_camera()
        # Watched from the start: a call whose media cannot start is ended like any other.
        self.keeper.watch()
        await self.media.start(started)

    async def _stop_media(self, reason: str, session_id: str | None) -> None:
        """End the wait or the call of ``session_id``: its connections, microphone and keeper
        (the camera follows the flow); nothing when neither runs."""
        call = self.media.call
        if call is None and self.keeper.state is Recovery.IDLE:
            return
        await self.keeper.stop()
        summary = await self.media.stop(reason)
        self.pinned = None
        self.call_requested_at = None
        if call is not None:
            self.last_call_ended = summary
        log.info("session %s ended: %s", session_id, reason)
        await self._follow_camera()

    async def _follow_camera(self) -> None:
        await self.camera.follow(
            wanted=self.flow.camera_wanted, in_call=self.media.call is not None
        )

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

    # ------------------------------------------------------------ the link and the server

    def _show_state(self) -> None:
        self.lights.show(self.flow.state)
        if self._on_state is not None:
            self._on_state(self.flow.state)

    def _on_link_state(self, state: LinkState) -> None:
        if state is LinkState.ONLINE:
            # First of all, before anything else goes out on this connection.
            self.keeper.link_up()
            self.post(booth_flow.LinkUp())
            self._spawn(self._refresh_info())
            self._spawn(self.updates.confirm())
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
        self.health.server_rtt_ms = await measure_round_trip(self.access)

    async def _keep_info_fresh(self) -> None:
        # Besides every time the link comes up (_on_link_state).
        while True:
            await asyncio.sleep(INFO_REFRESH_SECONDS)
            if self.link.state is LinkState.ONLINE:
                await self._refresh_info()

    # ------------------------------------------------------------ health and self-tests

    async def check_platform(self) -> PlatformReport:
        """The start self-tests (see :meth:`BoothHealth.check_platform`)."""
        return await self.health.check_platform()

    async def run_self_test(self) -> dict[str, bool | None]:
        """Camera, microphone and loudspeaker: can each be opened and does it deliver? The
        lights: does each line read back as driven?"""
        return await run_self_test(
            camera=self.camera,
            audio=self.config.audio,
            on_audio_error=self.health.on_audio_error,
            hardware=self.hardware,
            lights=self.lights,
        )

    async def _command_self_test(self) -> dict[str, bool | None]:
        self.health.self_test = await self.run_self_test()
        return self.health.self_test

    def heartbeat(self) -> Heartbeat:
        """The heartbeat the link sends: the flow's state and the booth's health."""
        return self.health.heartbeat(str(self.flow.state))

    # ------------------------------------------------------------ status

    async def status_report(self) -> BoothStatus:
        """The booth's live status (no personal data: there is none to report)."""
        stats = await self.media.stats()
        identity = self.access.identity
        return BoothStatus(
            pid=os.getpid(),
            state=str(self.flow.state),
            media_connected=self.media.connected,
            camera_fault=self.camera.fault,
            link=str(self.link.state),
            session_id=self.session_id,
            reconnecting=self.reconnecting,
            repairs=self.media.repairs,
            call_requested_at=self.call_requested_at,
            calls_completed=self.media.calls_completed,
            camera_streaming=self.camera.fanout is not None,
            camera_light=self.camera.light.streaming,
            hardware_unavailable=self.hardware.unavailable,
            platform=self.health.platform.line() if self.health.platform is not None else None,
            link_problem=self.link.problem,
            topics=len(self.info.topics),
            booth_id=identity.booth_id if identity else None,
            enrolment_problem=self.flow.enrolment_detail,
            queue_position=self.flow.visit.queue_place,
            audio_fault=self.health.audio_fault,
            last_call_ended=self.last_call_ended,
            updated_at=time.time(),
            call=stats[0] if stats is not None else None,
            others=stats[1] if stats is not None else None,
        )

    async def status(self) -> dict[str, Any]:
        """:meth:`status_report` as the status file has it."""
        return (await self.status_report()).model_dump()

    async def _write_status(self, path: Path) -> None:
        while True:
            await write_status(path, await self.status_report())
            await asyncio.sleep(STATUS_INTERVAL)
