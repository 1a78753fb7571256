"""The booth's health: the start self-tests (pin driver, lights, ALSA, clock), faults found
while running (a lost microphone), the last self-test, and the heartbeat that carries them to
the fleet view."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from kiosk.audio import check_audio
from kiosk.clock import ClockReading
from kiosk.config import BoothConfig
from kiosk.hardware import BoothHardware
from kiosk.health import collect_health
from kiosk.media.audio import AudioError
from kiosk.platform import LIGHT_SETTINGS, PlatformReport
from kiosk.updates import Slots
from protocol import Heartbeat

log = logging.getLogger(__name__)


class BoothHealth:
    """What the fleet's health view and technician mode learn about the booth."""

    def __init__(
        self,
        *,
        config: BoothConfig,
        hardware: BoothHardware,
        clock: Callable[[], ClockReading],
        session_id: Callable[[], str | None],
    ) -> None:
        self._config = config
        self._hardware = hardware
        self._clock = clock
        self._session_id = session_id
        #: The start self-tests' results (pin driver, lights, ALSA, clock); None until done.
        self.platform: PlatformReport | None = None
        #: A microphone or loudspeaker lost while running; None while all is well.
        self.audio_fault: str | None = None
        #: When the booth started, its last self-test, the server's round trip.
        self.started_at = time.monotonic()
        self.self_test: dict[str, bool | None] = {}
        self.server_rtt_ms: float | None = None
        #: The root slots (A/B) as RAUC last said; None where there are none.
        self.slots: Slots | None = None

    def on_audio_error(self, error: AudioError) -> None:
        # A lost microphone or loudspeaker is reported, not fatal: the call goes on with video
        # and chat, and the fleet's health check shows the fault.
        log.error("session %s: %s", self._session_id(), error)
        self.audio_fault = str(error)

    async def check_platform(self) -> PlatformReport:
        """The start self-tests: the pin driver and the lights' read-back (done when the pins
        were opened), the configured ALSA devices, the clock; then the platform line."""
        audio = await check_audio(self._config.audio)
        clock = await asyncio.to_thread(self._clock)
        if not clock.synchronised:
            log.warning("clock: %s", clock.describe())
        hardware = self._config.hardware
        report = PlatformReport(
            pin_driver=self._hardware.pin_driver,
            readback=dict(self._hardware.readback),
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

    def heartbeat(self, state: str) -> Heartbeat:
        """The heartbeat for the flow's ``state``, with the booth's health."""
        audio_problem = self.audio_fault
        if audio_problem is None and self.platform is not None:
            audio_problem = self.platform.audio.problem
        identity_dir = self._config.identity_dir
        try:
            health = collect_health(
                state,
                self.started_at,
                self.self_test,
                self.server_rtt_ms,
                data_dir=identity_dir if identity_dir.exists() else Path("."),
                pin_driver=self._hardware.pin_driver,
                clock_synchronised=self._clock().synchronised,
                audio_problem=audio_problem,
                slot=self.slots.booted if self.slots is not None else None,
                slot_good=self.slots.booted_good if self.slots is not None else None,
            )
        except ValueError as exc:  # a reading out of bounds: the heartbeat goes without it
            log.warning("health report left out: %s", exc)
            return Heartbeat(state=state)
        return Heartbeat(state=state, health=health)
