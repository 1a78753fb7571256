"""Cameras and inputs that PyAV can open: USB webcams (V4L2), files, pipes of raw frames.

A webcam is opened with its own format and options, for example::

    PyAVSource.v4l2("/dev/video0", input_format="mjpeg", width=1280, height=720, fps=30)

which is ``url="/dev/video0", format="v4l2", options={"input_format": "mjpeg",
"video_size": "1280x720", "framerate": "30"}``. Outside measurement tools feed raw frames through
a pipe or a file::

    PyAVSource(url="pipe:0", format="rawvideo",
               options={"video_size": "640x480", "pixel_format": "yuv420p", "framerate": "30"})

Frames are decoded in the worker thread of :class:`EncoderSource`, which scales them once to the
target size and encodes them with libx264.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterator
from typing import Any

import av

from kiosk.media.pacing import Pacer
from kiosk.media.source import EncoderSource, SourceError

log = logging.getLogger(__name__)

_V4L2_FORMATS = frozenset({"v4l2", "video4linux2"})

# What a technician can do about the usual reasons a device does not open.
_OPEN_ERRORS = {
    errno.ENOENT: "does not exist",
    errno.ENODEV: "does not exist (no such device)",
    errno.ENXIO: "does not exist (no such device)",
    errno.EBUSY: "is busy (another program is using it)",
    errno.EACCES: "is not accessible (permission denied; is the booth user in the 'video' group?)",
    errno.EPERM: "is not accessible (operation not permitted)",
}


class PyAVSource(EncoderSource):
    """Frames from anything PyAV opens, encoded once by libx264.

    ``url``, ``format`` and ``options`` are passed to ``av.open``. ``pace`` reads at ``fps``
    instead of as fast as the input delivers: ``None`` paces regular files only, since cameras,
    pipes and network streams bring their own clock. At the end of the input, ``loop`` starts it
    again (files only); otherwise :meth:`read` raises :class:`SourceError` ("input ended").

    The input should deliver about ``fps`` frames a second (set the camera's ``framerate``):
    every frame read is encoded, and timestamps advance by ``1/fps`` per frame.
    """

    name = "pyav"

    def __init__(
        self,
        *,
        url: str,
        format: str | None = None,  # av.open's name for it, though it shadows the builtin
        options: dict[str, str] | None = None,
        width: int = 640,
        height: int = 480,
        fps: int = 30,
        bitrate: int = 1_000_000,
        loop: bool = False,
        pace: bool | None = None,
    ) -> None:
        super().__init__(width=width, height=height, fps=fps, bitrate=bitrate)
        self.url = url
        self.format = format
        self.options = dict(options or {})
        self.loop = loop
        self._is_camera = format in _V4L2_FORMATS
        if self._is_camera:
            self.name = "v4l2"
        self._pace = os.path.isfile(url) if pace is None else pace
        self._live = self._pace or self._is_camera
        self._pacer = Pacer(1 / fps)
        self._container: Any = None
        self._frames: Iterator[av.VideoFrame] | None = None
        #: Times the input was started again from its beginning (``loop``).
        self.restarts = 0

    @classmethod
    def v4l2(
        cls,
        device: str = "/dev/video0",
        *,
        input_format: str | None = None,
        width: int = 640,
        height: int = 480,
        fps: int = 30,
        bitrate: int = 1_000_000,
    ) -> PyAVSource:
        """A V4L2 camera asked for ``width`` x ``height`` at ``fps``.

        ``input_format`` is what the camera sends (``"mjpeg"`` or ``"yuyv422"``); ``None`` takes
        the camera's default. A camera that cannot deliver the size sends its nearest; the
        frames are scaled to ``width`` x ``height`` anyway.
        """
        options = {"video_size": f"{width}x{height}", "framerate": str(fps)}
        if input_format:
            options["input_format"] = input_format
        return cls(
            url=device,
            format="v4l2",
            options=options,
            width=width,
            height=height,
            fps=fps,
            bitrate=bitrate,
        )

    @property
    def _what(self) -> str:
        return f"camera {self.url}" if self._is_camera else self.url

    async def _wait_for_frame(self) -> None:
        if self._pace:
            await self._pacer.next_slot()

    def _open_capture(self) -> None:
        try:
            container: Any = av.open(self.url, format=self.format, options=self.options)
        except av.FFmpegError as exc:
            reason = _OPEN_ERRORS.get(exc.errno or 0)
            if reason is None:
                reason = f"cannot be opened: {exc.strerror or exc}"
            raise SourceError(f"{self._what} {reason}") from exc
        except ValueError as exc:  # an unknown format name
            raise SourceError(f"{self._what} cannot be opened: {exc}") from exc
        if not container.streams.video:
            container.close()
            raise SourceError(f"{self._what} has no video stream")
        stream = container.streams.video[0]
        self._container = container
        self._frames = container.decode(stream)
        log.info(
            "%s opened: %s %dx%d, %s",
            self._what,
            stream.codec_context.name,
            stream.codec_context.width,
            stream.codec_context.height,
            stream.average_rate or "no frame rate",
        )

    def _capture(self) -> av.VideoFrame:
        frames = self._frames
        if frames is None:
            raise SourceError(f"{self._what} is not open")
        restarted = False
        while True:
            try:
                return next(frames)
            except StopIteration:
                pass
            except av.FFmpegError as exc:
                raise SourceError(f"{self._what} failed: {exc.strerror or exc}") from exc
            # Looping an input that yields nothing would spin: stop instead.
            if not self.loop or restarted:
                raise SourceError(f"{self._what}: input ended")
            log.debug("%s ended; starting it again", self._what)
            self._close_capture()
            self._open_capture()
            frames = self._frames
            assert frames is not None
            self.restarts += 1
            restarted = True

    def _close_capture(self) -> None:
        container, self._container, self._frames = self._container, None, None
        if container is not None:
            container.close()
