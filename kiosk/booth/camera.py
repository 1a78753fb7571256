"""The booth's camera follows the flow: open while a screen shows it (the self-view, a QR code
to read, a call), closed otherwise; the camera light is lit exactly while its picture can go
out; QR codes are read from the self-view while a screen asks for one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from kiosk import qr
from kiosk.hardware import CameraLight
from kiosk.media import SourceError, VideoFanout, VideoFeeds, VideoSource

log = logging.getLogger(__name__)

#: Opens the booth's camera and returns it started (:func:`open_video_source` by default).
CameraOpener = Callable[[], Awaitable[VideoSource]]


class CameraFollower:
    """The camera, encoded once for every peer (:attr:`fanout`) and once more for peers
    without H.264 (:attr:`feeds`), and its light."""

    def __init__(
        self, *, open_camera: CameraOpener, light: CameraLight, on_qr_code: Callable[[str], None]
    ) -> None:
        self.open_camera = open_camera
        #: Lit exactly while the camera's picture can go out: the camera streams and the citizen
        #: has not turned it off (a promise to the citizen, tested as such).
        self.light = light
        self._on_qr_code = on_qr_code
        self.fanout: VideoFanout | None = None
        #: The camera's video in each codec peers take; there while :attr:`fanout` is.
        self.feeds: VideoFeeds | None = None
        #: Why the camera cannot be used; None when it can (or was not tried).
        self.fault: str | None = None
        #: The citizen's camera button: black pictures go out, and the light goes out.
        self.off = False
        self._qr_scan: asyncio.Task[None] | None = None

    async def follow(self, *, wanted: bool, in_call: bool) -> None:
        """Open the camera when the flow's screen shows it; close it when not (and no call
        needs it); the camera light follows."""
        if wanted and self.fanout is None:
            # The light goes on before the camera opens (the first frame could come at once);
            # after a failed try it waits for the camera (a broken one's light does not blink
            # at every screen that tries it again).
            if self.fault is None:
                self.light.camera_streaming(not self.off)
            try:
                source = await self.open_camera()
                source.blanked = self.off
                fanout = VideoFanout(source)
                await fanout.start()
            except SourceError as exc:
                self.light.camera_streaming(False)
                log.error("the camera cannot be used: %s", exc)
                self.fault = str(exc)
                return
            self.fault = None
            self.fanout = fanout
            self.feeds = VideoFeeds(fanout)
            self.relight()
        elif not wanted and self.fanout is not None and not in_call:
            await self.close()

    def follow_qr_scan(self, wanted: bool) -> None:
        """Read QR codes from the self-view while ``wanted`` (code entry, enrolment)."""
        wanted = wanted and self.fanout is not None
        if wanted and self._qr_scan is None:
            fanout = self.fanout

            def latest() -> Any:
                return fanout.source.latest_preview if fanout is not None else None

            self._qr_scan = asyncio.get_running_loop().create_task(
                qr.scan(latest, self._on_qr_code), name="qr-scan"
            )
        elif not wanted and self._qr_scan is not None:
            self._qr_scan.cancel()
            self._qr_scan = None

    def set_off(self, off: bool) -> None:
        """The citizen's camera button (False again when the visit ends)."""
        self.off = off
        if self.fanout is not None:
            self.fanout.source.blanked = off
        self.relight()

    def reset(self) -> None:
        """The visit is over: the camera is on again for the next person."""
        self.off = False
        if self.fanout is not None:
            self.fanout.source.blanked = False
            self.relight()

    def relight(self) -> None:
        """The camera light follows the camera and the citizen's camera button."""
        self.light.camera_streaming(self.fanout is not None and not self.off)

    async def close(self) -> None:
        if self.fanout is not None:
            fanout, self.fanout = self.fanout, None
            feeds, self.feeds = self.feeds, None
            if feeds is not None:
                await feeds.close()
            await fanout.close()
            self.light.camera_streaming(False)
