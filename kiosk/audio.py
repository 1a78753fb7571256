"""The booth's microphone and loudspeaker, chosen by configuration, and whether they open."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiortc.mediastreams import MediaStreamTrack

from kiosk.config import AudioConfig
from kiosk.media.audio import (
    AlsaConfigError,
    AlsaMicrophoneTrack,
    AudioError,
    WavFileTrack,
    check_capture,
)
from kiosk.media.audio_playback import AlsaOutput, BoundedAudioSink
from kiosk.media.tracks import ToneTrack

log = logging.getLogger(__name__)

#: How long opening one ALSA device may take in the self-test (PipeWire starting up is slow).
CHECK_TIMEOUT = 10.0


@dataclass(frozen=True)
class DeviceCheck:
    """Whether one configured audio device opened."""

    #: The ALSA device; None when the setting names none ("tone", "wav:...", "none").
    device: str | None
    #: True: it opened; False: it did not (see ``detail``); None: not an ALSA device.
    ok: bool | None
    #: "opened", or why not (naming ALSA_CONFIG_DIR when ALSA's configuration is missing).
    detail: str
    #: Why not, in a few words for a screen (the cause and the setting; the log has the rest).
    reason: str = ""


@dataclass(frozen=True)
class AudioCheck:
    """The start self-test of the configured ALSA capture and playback devices."""

    capture: DeviceCheck
    playback: DeviceCheck

    @property
    def alsa(self) -> str:
        """Which ALSA devices opened: "capture+playback", "capture", "playback" or "none"."""
        opened = [name for name, check in self._named() if check.ok]
        return "+".join(opened) or "none"

    @property
    def problem(self) -> str | None:
        """Why a configured device did not open (both, when neither did); None if all did."""
        failures = [check.detail for _, check in self._named() if check.ok is False]
        return "; ".join(failures) or None

    def summary(self) -> str | None:
        """One line for technician mode; None when no ALSA device is configured."""
        named = [(name, check) for name, check in self._named() if check.device is not None]
        if not named:
            return None
        failed = [check.reason for _, check in named if not check.ok]
        if len(failed) > 1 and len(set(failed)) == 1:  # one cause (ALSA's configuration): once
            parts = [
                f"{name} {check.device!r} {'opens' if check.ok else 'FAULT'}"
                for name, check in named
            ]
            return ", ".join(parts) + f": {failed[0]}"
        parts = [
            f"{name} {check.device!r} " + ("opens" if check.ok else f"FAULT: {check.reason}")
            for name, check in named
        ]
        return "; ".join(parts)

    def _named(self) -> list[tuple[str, DeviceCheck]]:
        return [("capture", self.capture), ("playback", self.playback)]


def _capture_device(config: AudioConfig) -> str | None:
    if config.capture == "tone" or config.capture.startswith("wav:"):
        return None
    return config.capture


def _check_playback(device: str) -> None:
    output = AlsaOutput(device)
    try:
        output.open(48_000, 1)
    finally:
        output.close()


async def _check_device(
    device: str | None, label: str, opener: Callable[[str], None], seconds: float
) -> DeviceCheck:
    if device is None:
        return DeviceCheck(None, None, "not an ALSA device")
    try:
        async with asyncio.timeout(seconds):
            await asyncio.to_thread(opener, device)
    except AudioError as exc:
        log.error("audio: the %s %r cannot be opened: %s", label, device, exc)
        if isinstance(exc, AlsaConfigError):
            reason = exc.short
        else:
            reason = str(exc).removeprefix(f"cannot open the {label} {device!r}: ")
        return DeviceCheck(device, False, str(exc), reason)
    except TimeoutError:
        # The worker thread is left to finish; ALSA cannot be interrupted.
        detail = f"the {label} {device!r} did not open within {seconds:g} s"
        log.error("audio: %s", detail)
        return DeviceCheck(device, False, detail, f"did not open within {seconds:g} s")
    log.info("audio: the %s %r opens", label, device)
    return DeviceCheck(device, True, "opened")


async def check_audio(config: AudioConfig, *, seconds: float = CHECK_TIMEOUT) -> AudioCheck:
    """Open and close the configured ALSA capture and playback devices, one after the other,
    each given ``seconds``. Never raises: each result says whether its device opened and, if
    not, why."""
    playback = None if config.playback == "none" else config.playback
    return AudioCheck(
        capture=await _check_device(_capture_device(config), "microphone", check_capture, seconds),
        playback=await _check_device(playback, "loudspeaker", _check_playback, seconds),
    )


def open_microphone(
    config: AudioConfig, on_error: Callable[[AudioError], None]
) -> MediaStreamTrack:
    """A new capture track for one call (a stopped track cannot start again)."""
    if config.capture == "tone":
        return ToneTrack()
    if config.capture.startswith("wav:"):
        return WavFileTrack(Path(config.capture.removeprefix("wav:")), loop=True, on_error=on_error)
    return AlsaMicrophoneTrack(config.capture, on_error=on_error)


def loudspeaker_factory(
    config: AudioConfig, on_error: Callable[[AudioError], None]
) -> Callable[[], BoundedAudioSink] | None:
    """Makes the sink for a call's received audio; None plays nothing (headless, tests)."""
    if config.playback == "none":
        return None

    def make() -> BoundedAudioSink:
        return BoundedAudioSink(
            output=AlsaOutput(config.playback),
            volume=config.volume,
            max_latency=config.max_latency_ms / 1000,
            on_error=on_error,
        )

    return make
