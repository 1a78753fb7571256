"""VP8 of the camera's pictures: the source that peers without H.264 are sent.

The camera's source encodes H.264 once for every peer that takes it; a peer that cannot (Debian's
Firefox ESR) is answered with VP8, and this source encodes the camera's pictures once more for
all such peers: one libvpx encoder in one worker thread, fed the pictures the camera's source
shows its watchers (:meth:`VideoSource.watch_pictures`, black while the camera is off). It is
read through a :class:`kiosk.media.fanout.VideoFanout` of its own, like the camera's source.

It encodes only while read. Without a reader (no VP8 peer) the fan-out waits in
:meth:`next_preview`, which encodes nothing and lets libvpx go. When the encoder is slower than
the camera, the newest picture is encoded and those before it are skipped.

Its bit rate is the camera's (:attr:`bitrate` reads it), which the call's rate controller sets
for both codecs; its size is the pictures'. A picture is taken at the size the camera's source
encodes (the test pattern, V4L2 cameras), or at the size of its self-view (the Pi camera, whose
full-size pictures only its own encoder sees; see :mod:`kiosk.media.picamera2_source`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import av
from av.video.reformatter import VideoReformatter

from kiosk.media.encoder import EncoderError
from kiosk.media.source import VIDEO_CLOCK_RATE, VP8, EncodedFrame, SourceError, VideoSource
from kiosk.media.vp8 import Vp8Encoder, is_vp8_keyframe

log = logging.getLogger(__name__)


class Vp8Source(VideoSource):
    """VP8 frames of ``camera``'s pictures; ``picture_timeout``: how long the camera may show
    none before :meth:`read` fails."""

    name = "vp8"
    codec = VP8

    def __init__(self, camera: VideoSource, *, picture_timeout: float = 5.0) -> None:
        super().__init__(
            width=camera.width, height=camera.height, fps=camera.fps, bitrate=camera.bitrate
        )
        self.camera = camera
        self.picture_timeout = picture_timeout
        self._executor: ThreadPoolExecutor | None = None
        self._encoder: Vp8Encoder | None = None
        # The worker thread's own swscale context: a picture's own (``picture.reformat``) is
        # shared with the screen, which converts the same self-view picture on the loop.
        self._reformatter = VideoReformatter()
        self._unwatch: Callable[[], None] | None = None
        # The newest picture not yet encoded, with when it arrived; only ever one.
        self._picture: tuple[av.VideoFrame, float] | None = None
        self._arrived = asyncio.Event()
        self._started_at = 0.0
        self._last_pts = self._last_interval = -1
        #: Pictures the camera showed that were not encoded (the encoder was busy, or idle).
        self.pictures_skipped = 0

    @property
    def bitrate(self) -> int:
        """The camera's bit rate: the call's rate controller steers both codecs at once."""
        return self.camera.bitrate

    @bitrate.setter
    def bitrate(self, value: int) -> None:
        self.camera.bitrate = value

    @property
    def blanked(self) -> bool:
        """The camera's: its pictures are black while it is off, and so are these."""
        return self.camera.blanked

    @blanked.setter
    def blanked(self, value: bool) -> None:
        self.camera.blanked = value

    @property
    def encoding(self) -> bool:
        """libvpx is open: a VP8 peer reads, or did until the last picture."""
        return self._encoder is not None

    async def start(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vp8")
        self._started_at = time.monotonic()
        self._unwatch = self.camera.watch_pictures(self._take_picture)
        log.info("VP8 source started on the %s source's pictures", self.camera.name)

    def _take_picture(self, picture: av.VideoFrame) -> None:
        if self._picture is not None:
            self.pictures_skipped += 1
        self._picture = (picture, time.monotonic())
        self._arrived.set()

    async def _next_picture(self) -> tuple[av.VideoFrame, float]:
        if self._executor is None:
            raise SourceError(f"the {self.name} source is not started")
        # asyncio.timeout, not wait_for: in Python 3.11 wait_for can swallow a cancellation
        # that comes as the picture arrives, and the fan-out's pump would never end.
        try:
            async with asyncio.timeout(self.picture_timeout):
                await self._arrived.wait()
        except TimeoutError:
            raise SourceError(
                f"the {self.camera.name} source showed no picture for {self.picture_timeout:g} s"
            ) from None
        self._arrived.clear()
        picture, self._picture = self._picture, None
        if picture is None:  # woken by stop()
            raise SourceError(f"the {self.name} source stopped")
        return picture

    async def read(self) -> EncodedFrame:
        loop = asyncio.get_running_loop()
        while True:
            picture, arrived = await self._next_picture()
            executor = self._executor
            if executor is None:
                raise SourceError(f"the {self.name} source stopped")
            keyframe = self._take_keyframe_request()
            try:
                frame = await loop.run_in_executor(
                    executor, self._encode, picture, arrived, keyframe
                )
            except EncoderError as exc:
                raise SourceError(str(exc)) from exc
            except RuntimeError as exc:  # the executor was shut down by stop()
                raise SourceError(f"the {self.name} source stopped") from exc
            if frame is not None:
                return frame
            self._keyframe_pending = self._keyframe_pending or keyframe

    def _encode(
        self, picture: av.VideoFrame, arrived: float, keyframe: bool
    ) -> EncodedFrame | None:
        """Encode one picture (in the worker thread)."""
        width, height = picture.width, picture.height
        if picture.format.name != "yuv420p":
            picture = self._reformatter.reformat(picture, format="yuv420p")
        encoder = self._encoder
        if encoder is None or (encoder.width, encoder.height) != (width, height):
            encoder = self._encoder = Vp8Encoder(width, height, self.fps, self.bitrate)
            keyframe = True
        encoder.bitrate = self.bitrate
        # Timestamps from the pictures' arrival: pictures skipped leave their gap.
        elapsed = arrived - self._started_at
        pts = self._last_pts = max(self._last_pts + 1, round(elapsed * VIDEO_CLOCK_RATE))
        interval = self._last_interval = max(self._last_interval + 1, round(elapsed * self.fps))
        packets: list[Any] = encoder.encode(picture, keyframe=keyframe, pts=interval)
        if not packets:
            return None
        data = b"".join(bytes(p) for p in packets)
        self.frames_encoded += 1
        self.width, self.height = width, height
        return EncodedFrame(
            data=data,
            pts=pts,
            keyframe=is_vp8_keyframe(data),
            capture_time=time.time(),
            width=width,
            height=height,
        )

    async def next_preview(self) -> None:
        # Nobody reads VP8: nothing is encoded, and libvpx is let go (a reader that comes
        # back starts with a key frame of a new encoder).
        self._encoder = None
        await self._next_picture()
        self.pictures_skipped += 1

    async def stop(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        executor.shutdown(wait=False)
        self._encoder = None
        self._picture = None
        self._arrived.set()  # a reader waiting now finds the source stopped
        log.info("VP8 source stopped after %d frames encoded", self.frames_encoded)
