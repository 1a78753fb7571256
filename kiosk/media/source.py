"""Video sources: each produces encoded frames of one codec, encoded once, whatever the camera.

A camera's source hands out H.264 :class:`EncodedFrame` objects (Annex B, one per frame, SPS/PPS
before every IDR). Sources that capture raw frames (the test pattern, USB cameras through PyAV)
share :class:`EncoderSource`: capture and libx264 run in one worker thread, never on the event
loop. The picamera2 source encodes in the camera stack instead and only posts finished frames.

Every source also shows its pictures, unencoded, to whoever watches them
(:meth:`VideoSource.watch_pictures`, on the event loop): the VP8 encoder for peers without
H.264 (:class:`kiosk.media.vp8_source.Vp8Source`) encodes the same pictures once more.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import av
import numpy as np

from kiosk.errors import BoothError
from kiosk.media.h264 import NAL_IDR, H264Encoder, nal_unit_types

log = logging.getLogger(__name__)

VIDEO_CLOCK_RATE = 90_000
#: The codecs' names as WebRTC (and aiortc's codec capabilities) spell them.
H264, VP8 = "video/H264", "video/VP8"

#: Called on the event loop with each picture a source captured (see watch_pictures).
PictureWatcher = Callable[[av.VideoFrame], None]


@dataclass(frozen=True)
class EncodedFrame:
    """One encoded frame: an H.264 access unit, or a VP8 frame from a VP8 source."""

    data: bytes
    #: Presentation time in 1/90000 s since the source started.
    pts: int
    #: An IDR (a VP8 key frame), decodable without what came before.
    keyframe: bool
    #: Wall-clock time of capture (seconds), for latency measurements.
    capture_time: float
    width: int
    height: int


def is_idr(data: bytes) -> bool:
    return NAL_IDR in nal_unit_types(data)


class SourceError(BoothError, RuntimeError):
    """A video source cannot start or has failed; the message says why."""


class VideoSource(ABC):
    """Produces encoded frames for every peer of a call; see :class:`VideoFanout`."""

    #: Short name for logs and the technician's status page.
    name = "video"
    #: What :meth:`read` hands out, as WebRTC names the codec.
    codec = H264

    def __init__(self, *, width: int, height: int, fps: int, bitrate: int) -> None:
        self.width, self.height, self.fps = width, height, fps
        self._bitrate = bitrate
        self._keyframe_pending = False
        self.frames_encoded = 0
        self.keyframes_requested = 0
        #: The newest captured frame, unencoded, for the booth's self-view (None before one).
        self.latest_preview: av.VideoFrame | None = None
        self._blanked = False
        self._picture_watchers: list[PictureWatcher] = []

    def watch_pictures(self, watcher: PictureWatcher) -> Callable[[], None]:
        """Call ``watcher`` on the event loop with every picture captured from now on, black
        while :attr:`blanked`; returns the function that stops it.

        The pictures are those the source encodes (or shows as the self-view when it encodes
        elsewhere, as the Pi camera does); a watcher must not change their pixels.
        """
        self._picture_watchers.append(watcher)

        def unwatch() -> None:
            with contextlib.suppress(ValueError):
                self._picture_watchers.remove(watcher)

        return unwatch

    def _show_picture(self, picture: av.VideoFrame | None) -> None:
        """Hand ``picture`` to the watchers (on the event loop)."""
        if picture is not None:
            for watcher in list(self._picture_watchers):
                watcher(picture)

    @property
    def blanked(self) -> bool:
        """The citizen turned the camera off: black pictures go out instead of the camera's.

        Every source keeps this promise (the contract, tested for each in
        tests/security/test_security_camera_blanking.py): once set, no picture captured
        afterwards is sent, and the self-view (:attr:`latest_preview`) turns black too. Frames
        captured before may still follow for a moment; the call goes on with black pictures.
        """
        return self._blanked

    @blanked.setter
    def blanked(self, value: bool) -> None:
        if value == self._blanked:
            return
        self._blanked = value
        log.info("%s source: camera %s", self.name, "off (black pictures)" if value else "on")
        self._blanking_changed(value)

    def _blanking_changed(self, blanked: bool) -> None:  # noqa: B027 - an optional hook
        """Called on the event loop when :attr:`blanked` changes; sources whose pictures are
        made elsewhere (the Pi camera's own encoder) act on it here."""

    def request_keyframe(self) -> None:
        """Make the next frame an IDR (several requests before it make one IDR)."""
        self.keyframes_requested += 1
        self._keyframe_pending = True

    def _take_keyframe_request(self) -> bool:
        pending, self._keyframe_pending = self._keyframe_pending, False
        return pending

    @property
    def bitrate(self) -> int:
        return self._bitrate

    @bitrate.setter
    def bitrate(self, value: int) -> None:
        self._bitrate = value

    def set_resolution(self, width: int, height: int) -> None:
        """Send frames of this size from the next frame on (the rate controller's last resort)."""
        self.width, self.height = width, height

    @abstractmethod
    async def start(self) -> None:
        """Open the camera; raise :class:`SourceError` when it cannot be used."""

    @abstractmethod
    async def read(self) -> EncodedFrame:
        """The next access unit, when the camera has it."""

    @abstractmethod
    async def next_preview(self) -> None:
        """Wait for the next self-view frame (:attr:`latest_preview`) while nobody reads encoded
        frames: the waiting screen's self-view and the QR code scanner need pictures before
        any call has a peer. Raises :class:`SourceError` like :meth:`read`."""

    @abstractmethod
    async def stop(self) -> None:
        """Close the camera; safe to call twice."""


class EncoderSource(VideoSource):
    """A source of raw frames encoded once by libx264, both in one worker thread.

    Subclasses implement :meth:`_capture` (runs in the worker) and may override
    :meth:`_wait_for_frame` (runs on the loop) to pace a source that has no clock of its own.
    """

    def __init__(self, *, width: int, height: int, fps: int, bitrate: int) -> None:
        super().__init__(width=width, height=height, fps=fps, bitrate=bitrate)
        self._executor: ThreadPoolExecutor | None = None
        self._encoder: H264Encoder | None = None
        self._started_at = 0.0
        self._last_pts = -1
        #: Frames taken from the camera, for the self-view or to be encoded.
        self.frames_captured = 0

    @abstractmethod
    def _capture(self) -> av.VideoFrame:
        """The next raw frame (blocking; runs in the worker thread)."""

    #: Pictures come in real time (a camera, or a source paced to its frame rate): their
    #: timestamps are their capture times. False: read as fast as it goes, counted.
    _live = True

    async def _wait_for_frame(self) -> None:
        """Wait until the next frame is due; cameras with their own clock need not."""

    def _open_capture(self) -> None:
        """Open the camera (in the worker thread); raise :class:`SourceError` if impossible."""

    def _close_capture(self) -> None:
        """Close the camera (in the worker thread)."""

    async def start(self) -> None:
        if self._executor is not None:
            return
        # One worker: frames must reach x264 in order, and it must never block the loop.
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{self.name}")
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._open_capture)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._executor = executor
        self._started_at = time.monotonic()
        log.info("%s source started at %dx%d@%d", self.name, self.width, self.height, self.fps)

    def _next_picture(self) -> av.VideoFrame:
        """The next frame at the size to send, black while :attr:`blanked` (worker thread)."""
        raw = self._capture()
        self.frames_captured += 1
        width, height = self.width, self.height
        # Read after the capture: a frame captured before "camera off" but sent after is black.
        if self._blanked:
            # "Camera off" on the booth: the call goes on with black pictures.
            return _black(width, height)
        if (raw.width, raw.height) != (width, height) or raw.format.name != "yuv420p":
            # Scaled once, by swscale, to the size the rate controller chose.
            raw = raw.reformat(width=width, height=height, format="yuv420p")
        return raw

    def _preview_next(self) -> None:
        self.latest_preview = self._next_picture()

    def _encode_next(self, keyframe: bool) -> EncodedFrame | None:
        raw = self._next_picture()
        capture_time, captured = time.time(), time.monotonic()
        width, height = raw.width, raw.height
        encoder = self._encoder
        if encoder is None or (encoder.width, encoder.height) != (width, height):
            encoder = self._encoder = H264Encoder(width, height, self.fps, self._bitrate)
            keyframe = True
        encoder.bitrate = self._bitrate
        packets: list[Any] = encoder.encode(raw, keyframe=keyframe)
        self.latest_preview = raw
        if not packets:
            return None
        data = b"".join(bytes(p) for p in packets)
        # The time of capture, not a frame count: a receiver's jitter buffer reads how late a
        # frame arrives against its timestamp, so a picture captured late (the loop was busy)
        # must say so, or its lateness counts as network jitter and every frame waits longer.
        # A source read as fast as it goes (a file, unpaced) has only its frame count.
        elapsed = captured - self._started_at if self._live else self.frames_encoded / self.fps
        pts = self._last_pts = max(self._last_pts + 1, round(elapsed * VIDEO_CLOCK_RATE))
        self.frames_encoded += 1
        return EncodedFrame(
            data=data,
            pts=pts,
            keyframe=is_idr(data),
            capture_time=capture_time,
            width=width,
            height=height,
        )

    async def next_preview(self) -> None:
        executor = self._executor
        if executor is None:
            raise SourceError(f"the {self.name} source is not started")
        await self._wait_for_frame()
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._preview_next)
        except SourceError:
            raise
        except RuntimeError as exc:  # the executor was shut down by stop()
            raise SourceError(f"the {self.name} source stopped") from exc
        self._show_picture(self.latest_preview)

    async def read(self) -> EncodedFrame:
        executor = self._executor
        if executor is None:
            raise SourceError(f"the {self.name} source is not started")
        loop = asyncio.get_running_loop()
        while True:
            await self._wait_for_frame()
            keyframe = self._take_keyframe_request()
            try:
                frame = await loop.run_in_executor(executor, self._encode_next, keyframe)
            except SourceError:
                raise
            except RuntimeError as exc:  # the executor was shut down by stop()
                raise SourceError(f"the {self.name} source stopped") from exc
            self._show_picture(self.latest_preview)
            if frame is not None:
                return frame
            self._keyframe_pending = self._keyframe_pending or keyframe

    async def stop(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._close_capture)
        finally:
            executor.shutdown(wait=False)
            self.latest_preview = None
            log.info(
                "%s source stopped after %d frames captured, %d encoded",
                self.name,
                self.frames_captured,
                self.frames_encoded,
            )


def _black(width: int, height: int) -> av.VideoFrame:
    # A new frame each time: encoders set a frame's pts and picture type, and two of them
    # (x264 here, libvpx in its own thread) may hold the same picture.
    return av.VideoFrame.from_ndarray(_black_yuv420p(width, height), format="yuv420p")


@functools.lru_cache(maxsize=4)
def _black_yuv420p(width: int, height: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
    picture = np.zeros((height, width, 3), dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
    return np.asarray(frame.to_ndarray(), dtype=np.uint8)
