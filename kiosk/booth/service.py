"""Technician mode on the booth's screen: what it shows (software, server, clock, camera,
microphone level, buttons and lights, ALSA), a network check and a test tone."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import av
from aiortc.mediastreams import MediaStreamError

from kiosk.audio import loudspeaker_factory, open_microphone
from kiosk.booth.camera import CameraFollower
from kiosk.booth.media import close_track
from kiosk.clock import CLOCK_NOT_SET_BRIEFLY, ClockReading
from kiosk.config import BoothConfig
from kiosk.hardware import BoothHardware
from kiosk.identity import ServerAccess
from kiosk.link import ServerLink
from kiosk.media.audio import AudioError
from kiosk.media.tracks import ToneTrack
from kiosk.platform import PlatformReport
from kiosk.technician import network_checks, software_version

log = logging.getLogger(__name__)


class TechnicianMode:
    """What the technician screen needs while it is shown."""

    def __init__(
        self,
        *,
        config: BoothConfig,
        access: ServerAccess,
        link: ServerLink,
        camera: CameraFollower,
        hardware: BoothHardware,
        clock: Callable[[], ClockReading],
        on_audio_error: Callable[[AudioError], None],
    ) -> None:
        self._config = config
        self._access = access
        self._link = link
        self._camera = camera
        self._hardware = hardware
        self._clock = clock
        self._on_audio_error = on_audio_error
        self._task: asyncio.Task[None] | None = None
        #: The microphone's level while the screen is shown; the last network check's lines.
        self.mic_level: float | None = None
        self.network_report: list[str] = []

    def follow(self, shown: bool) -> None:
        """While the technician screen is shown, the microphone's level is measured."""
        if shown and self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._measure_microphone(), name="technician-microphone"
            )
        elif not shown and self._task is not None:
            self._task.cancel()
            self._task = None
            self.mic_level = None

    async def _measure_microphone(self) -> None:
        track = open_microphone(self._config.audio, self._on_audio_error)
        try:
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.AudioFrame)
                samples = frame.to_ndarray().astype("float64") / 32768.0
                self.mic_level = float((samples**2).mean() ** 0.5) if samples.size else 0.0
        except MediaStreamError:
            self.mic_level = None
        finally:
            await close_track(track)

    async def run_network_check(self) -> None:
        self.network_report = ["…"]
        checks = await network_checks(self._access, clock=self._clock)
        self.network_report = [f"{'OK' if c.ok else 'FAULT'} {c.name}: {c.detail}" for c in checks]

    async def play_test_tone(self, seconds: float = 1.5) -> None:
        """A short tone through the loudspeaker."""
        make = loudspeaker_factory(self._config.audio, self._on_audio_error)
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

    def info(self, *, audio_fault: str | None, platform: PlatformReport | None) -> dict[str, str]:
        identity = self._access.identity
        config, camera = self._config, self._camera
        info = {
            "version": software_version(),
            "booth": identity.name
            if identity
            else ("development secret" if self._access.credential else "not enrolled"),
            "branch": config.branch or "-",
            "server": f"{config.server_url} ({self._link.state})" + self._link_problem(),
            "clock": self._clock().describe(),
            "camera": camera.fault or ("on" if camera.fanout else "off"),
            "microphone": audio_fault
            or (f"level {self.mic_level:.3f}" if self.mic_level is not None else "-"),
            "buttons and lights": self._describe_gpio(),
        }
        alsa = platform.audio.summary() if platform is not None else None
        if alsa is not None:
            info["ALSA"] = alsa
        for index, line in enumerate(self.network_report):
            info[f"check {index + 1}"] = line
        return info

    def _link_problem(self) -> str:
        problem = self._link.problem
        if problem is None:
            return ""
        if problem.startswith("clock not set"):
            return f": {CLOCK_NOT_SET_BRIEFLY}"  # the clock's own line says the rest
        return f": {problem}"

    def _describe_gpio(self) -> str:
        """The pin driver and the lights' read-back, or why there are no buttons and lights."""
        hardware = self._hardware
        if hardware.pin_driver == "none":
            return f"off ({hardware.unavailable})" if hardware.unavailable else "off"
        if not hardware.readback:
            return f"pins driven by {hardware.pin_driver}"
        bad = [name for name, ok in hardware.readback.items() if not ok]
        lines = f"FAULT: {', '.join(bad)} did not read back" if bad else "lights read back ok"
        return f"pins driven by {hardware.pin_driver}; {lines}"
