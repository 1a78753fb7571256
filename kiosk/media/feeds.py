"""The camera's video in each codec a peer takes, each encoded once for all its peers.

Every peer connection starts on the camera's fan-out (H.264: what the booth prefers and, on a
Pi 4, what its hardware encodes). A peer that answered VP8 instead (Debian's Firefox ESR) is
moved to the VP8 fan-out: one :class:`kiosk.media.vp8_source.Vp8Source` on the camera's
pictures, made for the first such peer and idle (encoding nothing) while none reads it. So a
call encodes once per codec in use: a Chromium advisor and a Firefox interpreter cost one x264
and one libvpx encode, whatever their number.
"""

from __future__ import annotations

import logging

from kiosk.media.fanout import FanoutTrack, VideoFanout
from kiosk.media.source import H264, VP8
from kiosk.media.vp8_source import Vp8Source

log = logging.getLogger(__name__)


class VideoFeeds:
    """The camera's fan-out (``camera``, H.264) and, once a peer needs it, a VP8 one."""

    #: The codecs a peer is offered, in the booth's order of preference.
    codecs = (H264, VP8)

    def __init__(self, camera: VideoFanout) -> None:
        if camera.source.codec != H264:
            raise ValueError(f"the camera's fan-out must send H.264, not {camera.source.codec}")
        self.camera = camera
        self.vp8: VideoFanout | None = None

    def subscribe(self) -> FanoutTrack:
        """A track for a new peer connection, on H.264 until the peer answers otherwise."""
        return self.camera.subscribe()

    async def use(self, track: FanoutTrack, codec: str) -> None:
        """Send ``track`` packets of ``codec``, the codec its peer's answer settled on.

        The track moves before anything is awaited: called right after the answer is applied,
        no packet of the other codec reaches its sender.
        """
        if codec == track.codec:
            return
        if codec == H264:
            track.move_to(self.camera)
            return
        if codec != VP8:
            raise ValueError(f"no video feed in {codec}")
        fanout = self.vp8
        if fanout is None:
            fanout = self.vp8 = VideoFanout(Vp8Source(self.camera.source))
            log.info("a peer takes VP8: the camera's pictures are encoded with libvpx too")
        track.move_to(fanout)
        await fanout.start()

    async def close(self) -> None:
        """Stop the VP8 feed, if any (the camera's fan-out is its owner's to close); safe to
        call twice."""
        fanout, self.vp8 = self.vp8, None
        if fanout is not None:
            await fanout.close()
