"""aiortc tracks for the booth: the encoded test pattern and a test tone.

The video track yields H.264 ``av.Packet``s that aiortc only packetizes, so keyframe requests
(PLI/FIR), which aiortc hands only to its own encoders, must be routed here with
:meth:`TestPatternTrack.install_keyframe_hook`.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import av
import numpy as np
from aiortc import RTCRtpSender
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from kiosk.media.h264 import H264Encoder
from kiosk.media.stamp import Stamp
from kiosk.media.testpattern import TestPattern

log = logging.getLogger(__name__)

#: RTP clock rate of video, the time base of the packets' ``pts``.
VIDEO_CLOCK_RATE = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)
AUDIO_SAMPLE_RATE = 48_000
AUDIO_TIME_BASE = fractions.Fraction(1, AUDIO_SAMPLE_RATE)
#: Samples per audio frame: 20 ms, the usual Opus packet duration.
AUDIO_SAMPLES = 960


class _Pacer:
    """Hands out frame slots at a fixed period against the event loop's clock.

    Slot ``n`` is due at ``start + n * period``; sleeping until the due time (not for a period)
    keeps rounding and scheduling delays from adding up. A consumer more than a whole period
    late skips the missed slots instead of getting a burst of stale frames.
    """

    def __init__(self, period: float) -> None:
        self._period = period
        self._start: float | None = None
        self._slot = -1

    async def next_slot(self) -> int:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._start is None:
            self._start = now
            self._slot = 0
            return 0
        slot = self._slot + 1
        due = self._start + slot * self._period
        if now - due > self._period:
            slot = int((now - self._start) / self._period)
            due = self._start + slot * self._period
        self._slot = slot
        if due > now:
            await asyncio.sleep(due - now)
        return slot


class TestPatternTrack(MediaStreamTrack):
    """Video track yielding the stamped test pattern as H.264 packets, paced at ``fps``."""

    __test__ = False  # a pytest collection hint: this is not a test class

    kind = "video"

    def __init__(
        self,
        *,
        width: int = 640,
        height: int = 480,
        fps: int = 30,
        bitrate: int = 1_000_000,
    ) -> None:
        super().__init__()
        self.fps = fps
        self._pattern = TestPattern(width, height)
        self._encoder = H264Encoder(width, height, fps, bitrate)
        # One worker: x264 must see frames in order, and it must never block the event loop.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="h264")
        self._pacer = _Pacer(1 / fps)
        self._keyframe_pending = False
        #: Frames handed to the sender so far.
        self.frames_sent = 0
        #: Keyframes asked for by :meth:`request_keyframe` (including PLI/FIR from receivers).
        self.keyframes_requested = 0
        #: The newest frame sent, unencoded, for the booth's self-view; None before the first.
        self.latest_frame: av.VideoFrame | None = None

    @property
    def bitrate(self) -> int:
        """The encoder's target bitrate in bit/s; a change starts with an IDR."""
        return self._encoder.bitrate

    @bitrate.setter
    def bitrate(self, value: int) -> None:
        self._encoder.bitrate = value

    def request_keyframe(self) -> None:
        """Make the next encoded frame an IDR (several requests before it make one IDR)."""
        self.keyframes_requested += 1
        self._keyframe_pending = True

    def install_keyframe_hook(self, sender: RTCRtpSender) -> None:
        """Route the receiver's keyframe requests (PLI/FIR) arriving at ``sender`` to this track.

        aiortc handles them in the private ``RTCRtpSender._send_keyframe``, which only reaches
        its own encoders; it is wrapped on this sender instance (aiortc is pinned to 1.16.0).
        """
        original = sender._send_keyframe

        def send_keyframe() -> None:
            log.debug("keyframe requested by the receiver")
            self.request_keyframe()
            original()

        sender._send_keyframe = send_keyframe  # type: ignore[method-assign]

    def _produce(self, stamp: Stamp, keyframe: bool) -> tuple[av.VideoFrame, list[av.Packet[Any]]]:
        # Runs in the worker thread. Each rendered frame is a new object, so handing it to the
        # self-view after encoding shares nothing the worker will write to again.
        frame = self._pattern.render(stamp)
        return frame, self._encoder.encode(frame, keyframe=keyframe)

    async def recv(self) -> av.Packet[Any]:
        """The next frame as one H.264 access unit, ``pts`` in 1/90000 s."""
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            slot = await self._pacer.next_slot()
            stamp = Stamp(
                frame_number=self.frames_sent & 0xFFFF_FFFF,
                capture_ms=int(time.time() * 1000) & 0xFFFF_FFFF,
            )
            keyframe, self._keyframe_pending = self._keyframe_pending, False
            loop = asyncio.get_running_loop()
            try:
                frame, packets = await loop.run_in_executor(
                    self._executor, self._produce, stamp, keyframe
                )
            except RuntimeError as exc:
                if self.readyState != "live":  # stopped meanwhile: the executor is shut down
                    raise MediaStreamError from exc
                raise
            if self.readyState != "live":
                raise MediaStreamError
            if not packets:
                # Not expected with zerolatency (no encoder delay); keep the request for the
                # next frame rather than losing it.
                self._keyframe_pending = self._keyframe_pending or keyframe
                continue
            packet = packets[0] if len(packets) == 1 else av.Packet(b"".join(map(bytes, packets)))
            packet.pts = slot * VIDEO_CLOCK_RATE // self.fps
            packet.time_base = VIDEO_TIME_BASE
            self.frames_sent += 1
            self.latest_frame = frame
            return packet

    def stop(self) -> None:
        """End the track and release the encoder thread; safe to call twice."""
        super().stop()
        # Not cancel_futures: a frame already queued would then cancel the awaiting recv()
        # with CancelledError; let it finish, recv() then ends with MediaStreamError.
        self._executor.shutdown(wait=False)


class ToneTrack(MediaStreamTrack):
    """Audio track: a continuous sine (440 Hz, -20 dBFS peak), 48 kHz mono s16, 20 ms frames."""

    kind = "audio"

    def __init__(self, *, frequency: float = 440.0, level_dbfs: float = -20.0) -> None:
        super().__init__()
        self._pacer = _Pacer(AUDIO_SAMPLES / AUDIO_SAMPLE_RATE)
        self._step = 2 * math.pi * frequency / AUDIO_SAMPLE_RATE
        self._amplitude = 32767 * 10 ** (level_dbfs / 20)

    async def recv(self) -> av.AudioFrame:
        """The next 20 ms of tone, ``pts`` in samples (1/48000 s)."""
        if self.readyState != "live":
            raise MediaStreamError
        slot = await self._pacer.next_slot()
        start = slot * AUDIO_SAMPLES
        # The phase follows the absolute sample number, like pts: no drift over a long call.
        samples = np.arange(start, start + AUDIO_SAMPLES, dtype=np.float64)
        wave = np.round(self._amplitude * np.sin(self._step * samples)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(wave.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_SAMPLE_RATE
        frame.pts = start
        frame.time_base = AUDIO_TIME_BASE
        return frame
