"""An administrator's commands from the fleet view (out of service, back in service, a
self-test, a restart), and the self-test itself."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiortc.mediastreams import MediaStreamError

from kiosk import flow as booth_flow
from kiosk.audio import open_microphone
from kiosk.booth.camera import CameraFollower
from kiosk.booth.lights import BoothLights
from kiosk.booth.media import close_track
from kiosk.config import AudioConfig
from kiosk.flow import Flow, State
from kiosk.hardware import BoothHardware
from kiosk.media import SourceError
from kiosk.media.audio import AudioError
from kiosk.media.audio_playback import AlsaOutput
from protocol import BoothCommand, CommandResult, Message

log = logging.getLogger(__name__)

#: How long a restart waits for its answer to go out.
RESTART_GRACE_SECONDS = 0.5


class RemoteCommands:
    """Carries out the fleet view's commands; every one is answered."""

    def __init__(
        self,
        *,
        flow: Flow,
        post: Callable[[booth_flow.Event], None],
        send: Callable[[Message], bool],
        self_test: Callable[[], Awaitable[dict[str, bool | None]]],
        restart: Callable[[], None],
    ) -> None:
        self._flow = flow
        self._post = post
        self._send = send
        self._self_test = self_test
        self._restart = restart
        #: Out of service was asked for while a citizen used the booth: once they are done.
        self.out_of_service_after_visit = False

    async def handle(self, command: BoothCommand) -> None:
        flow = self._flow
        ok, detail = True, ""
        busy = flow.busy or flow.state in (State.TECHNICIAN, State.TECHNICIAN_PIN)
        match command.command:
            case "out_of_service" if flow.busy:
                # A citizen is using the booth: out of service once the visit is over.
                self.out_of_service_after_visit = True
                detail = "after the current visit"
            case "out_of_service":
                self._post(booth_flow.OutOfService(reason="remote"))
                detail = "out of service"
            case "in_service":
                self.out_of_service_after_visit = False
                if flow.service_reason == "remote":
                    self._post(booth_flow.BackInService())
                    detail = "in service"
                elif flow.in_service:
                    detail = "was not out of service"
                else:
                    ok, detail = False, f"out of service because: {flow.service_reason}"
            case "self_test" if busy:
                ok, detail = False, "someone is using the booth; try again later"
            case "self_test":
                results = await self._self_test()
                ok = all(v is not False for v in results.values())
                detail = ", ".join(
                    f"{name} {'ok' if v else 'FAULT' if v is False else '-'}"
                    for name, v in results.items()
                )
            case "restart" if busy:
                ok, detail = False, "someone is using the booth; try again later"
            case "restart":
                detail = "restarting"
        self._send(CommandResult(command_id=command.command_id, ok=ok, detail=detail))
        if command.command == "restart" and ok:
            await asyncio.sleep(RESTART_GRACE_SECONDS)  # let the answer go out
            self._restart()

    def visit_over(self) -> None:
        """After every event: a deferred out of service, once nobody uses the booth."""
        if self.out_of_service_after_visit and not self._flow.busy:
            self.out_of_service_after_visit = False
            self._post(booth_flow.OutOfService(reason="remote"))


def _why(exc: BaseException, timed_out: str) -> str:
    """What the log says of a failed part: a timeout says nothing by itself."""
    if isinstance(exc, TimeoutError) and not str(exc):
        return timed_out
    return str(exc) or type(exc).__name__


async def run_self_test(
    *,
    camera: CameraFollower,
    audio: AudioConfig,
    on_audio_error: Callable[[AudioError], None],
    hardware: BoothHardware,
    lights: BoothLights,
) -> dict[str, bool | None]:
    """Camera, microphone and loudspeaker: can each be opened and does it deliver? The
    lights: does each line read back as driven?"""
    results: dict[str, bool | None] = {}
    if camera.fanout is not None:
        results["camera"] = camera.fault is None
    else:
        try:
            source = await camera.open_camera()
            await source.start()
            try:
                async with asyncio.timeout(5):
                    await source.read()
            finally:
                await source.stop()
            results["camera"] = True
        except (SourceError, TimeoutError) as exc:
            log.error("self-test: camera: %s", _why(exc, "no picture within 5 s"))
            results["camera"] = False
    track = open_microphone(audio, on_audio_error)
    try:
        async with asyncio.timeout(3):
            await track.recv()
        results["microphone"] = True
    except (MediaStreamError, TimeoutError, AudioError) as exc:
        log.error("self-test: microphone: %s", _why(exc, "no sound within 3 s"))
        results["microphone"] = False
    finally:
        await close_track(track)
    if audio.playback == "none":
        results["speaker"] = None
    else:
        output = AlsaOutput(audio.playback)
        try:
            await asyncio.to_thread(output.open, 48_000, 1)
            results["speaker"] = True
        except AudioError as exc:
            log.error("self-test: speaker: %s", exc)
            results["speaker"] = False
        finally:
            await asyncio.to_thread(output.close)
    readback = await asyncio.to_thread(hardware.check_lights)
    # The check left the lights off: show what they showed before.
    lights.refresh()
    camera.relight()
    if readback:
        results["lights"] = all(readback.values())
    return results
