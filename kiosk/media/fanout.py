"""One encode, many peers: a source's access units go to every peer connection of a call.

Each peer connection gets its own :class:`FanoutTrack`; all of them share one
:class:`VideoSource`, read by one pump. A track starts at an IDR (it asks for one), and a
keyframe request from any receiver reaches the source. Without a peer the pump encodes
nothing but keeps the self-view fresh (:meth:`VideoSource.next_preview`). A track can move to
another fan-out (:meth:`FanoutTrack.move_to`): a peer that answered VP8 takes the VP8 source's.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from kiosk.media.source import VIDEO_CLOCK_RATE, EncodedFrame, SourceError, VideoSource

log = logging.getLogger(__name__)

VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)
#: Frames a peer may fall behind before it is resynchronised at the next IDR.
TRACK_QUEUE_FRAMES = 8


class FanoutTrack(MediaStreamTrack):
    """The video track of one peer connection; ``recv()`` returns ``av.Packet`` access units."""

    kind = "video"

    def __init__(self, fanout: VideoFanout) -> None:
        super().__init__()
        self._fanout = fanout
        self._queue: asyncio.Queue[EncodedFrame | None] = asyncio.Queue(TRACK_QUEUE_FRAMES)
        self._needs_keyframe = True
        self.frames_sent = 0
        self.frames_dropped = 0

    @property
    def source(self) -> VideoSource:
        return self._fanout.source

    @property
    def codec(self) -> str:
        """The codec of the packets this track hands out (its source's)."""
        return self._fanout.source.codec

    def move_to(self, fanout: VideoFanout) -> None:
        """Take packets from ``fanout`` from now on (another codec's, once the peer answered),
        starting at its next key frame, which it asks for; none of the old fan-out's are left."""
        if fanout is self._fanout:
            return
        self._fanout._unsubscribe(self)
        while not self._queue.empty():
            if self._queue.get_nowait() is None:
                self._queue.put_nowait(None)  # an ended track stays ended
                break
        self._fanout = fanout
        self._needs_keyframe = True
        fanout._add(self)

    def _offer(self, frame: EncodedFrame | None) -> None:
        if frame is None:
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(None)
            return
        if self._needs_keyframe and not frame.keyframe:
            self.frames_dropped += 1
            return
        self._needs_keyframe = False
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            # This peer fell behind; a gap breaks its decoder, so restart it at an IDR. Before
            # its first read (the connection is still being set up) that is expected.
            if self.frames_sent:
                log.warning("a peer fell %d frames behind; resynchronising", self._queue.qsize())
            while not self._queue.empty():
                self._queue.get_nowait()
                self.frames_dropped += 1
            self._needs_keyframe = True
            self._fanout.source.request_keyframe()

    async def next_frame(self) -> EncodedFrame:
        """The next access unit as the source made it (:meth:`recv` without the ``av.Packet``,
        for :class:`kiosk.media.packet_sender.PacketSender`)."""
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self._queue.get()
        if frame is None or self.readyState != "live":
            raise MediaStreamError
        self.frames_sent += 1
        return frame

    async def recv(self) -> av.Packet[Any]:
        frame = await self.next_frame()
        packet = av.Packet(frame.data)
        packet.pts = frame.pts
        packet.time_base = VIDEO_TIME_BASE
        return packet

    def install_keyframe_hook(self, sender: Any) -> None:
        """Route PLI/FIR arriving at ``sender`` to the shared source.

        aiortc hands keyframe requests to the private ``RTCRtpSender._send_keyframe``, which
        only reaches its own encoders; it is wrapped on this sender instance (aiortc is pinned).
        """
        original = sender._send_keyframe

        def send_keyframe() -> None:
            # The source of the moment: the track may have moved to another codec's.
            self._fanout.source.request_keyframe()
            original()

        sender._send_keyframe = send_keyframe

    def stop(self) -> None:
        super().stop()
        self._fanout._unsubscribe(self)
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)


class VideoFanout:
    """Reads a source once and hands every access unit to each subscribed track."""

    def __init__(self, source: VideoSource) -> None:
        self.source = source
        self._tracks: list[FanoutTrack] = []
        self._pump: asyncio.Task[None] | None = None
        self._started = False

    @property
    def subscribers(self) -> int:
        return len(self._tracks)

    async def start(self) -> None:
        """Open the source; raise :class:`SourceError` if the camera cannot be used."""
        if not self._started:
            await self.source.start()
            self._started = True
            self._pump = asyncio.create_task(self._run(), name=f"fanout-{self.source.name}")

    def subscribe(self) -> FanoutTrack:
        """A new track for one more peer; it starts at the next IDR, which it asks for."""
        track = FanoutTrack(self)
        self._add(track)
        return track

    def _add(self, track: FanoutTrack) -> None:
        self._tracks.append(track)
        if self.source.frames_encoded:
            self.source.request_keyframe()  # the encoder's first frame is an IDR anyway

    def _unsubscribe(self, track: FanoutTrack) -> None:
        with contextlib.suppress(ValueError):
            self._tracks.remove(track)

    async def _run(self) -> None:
        try:
            while True:
                if not self._tracks:
                    # No peer, no encoding; but the self-view and the QR code scanner (the
                    # waiting, code-entry and enrolment screens) still need the camera's frames.
                    await self.source.next_preview()
                    continue
                frame = await self.source.read()
                for track in list(self._tracks):
                    track._offer(frame)
        except SourceError as exc:
            log.error("video source ended: %s", exc)
        finally:
            for track in list(self._tracks):
                track._offer(None)

    async def close(self) -> None:
        """Stop the pump and the source (the camera turns off); safe to call twice."""
        for track in list(self._tracks):
            track.stop()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None
        if self._started:
            self._started = False
            await self.source.stop()
