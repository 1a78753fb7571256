"""Received video handed to the decoder as soon as a frame's last packet is in.

aiortc's receiver reassembles video frames in its ``JitterBuffer``, which hands a frame on
only when a packet of the *next* frame arrives: every frame waits about one frame interval
(33 ms at 30 frames a second) after it is complete. The sender marks each frame's last packet
with the RTP marker bit (RFC 6184 for H.264, RFC 7741 for VP8; Chromium and aiortc both do), so
a frame whose packets are all in, without a gap from the first to the marked one, is complete
at once. :class:`MarkerJitterBuffer` releases it then, and is otherwise aiortc's buffer: a frame
with a gap waits for the retransmission aiortc asks for (NACK), a buffer that overflows drops
its oldest frames and aiortc asks for a key frame (PLI), a frame that ends without a marker
still ends where the next one begins. It releases exactly the packets aiortc's buffer would,
only earlier.

The aiortc internals relied on (aiortc is pinned; ``tests/kiosk/test_receiver.py`` fails when
any of them changes):

* :class:`aiortc.RTCRtpReceiver` keeps its jitter buffer in the private attribute
  ``__jitter_buffer`` (a video receiver's is ``JitterBuffer(capacity=512, is_video=True)``),
  calls nothing but ``add(packet)`` on it, each packet's depayloaded bytes in ``packet._data``,
  and decodes the frame ``add`` returns (one per call, or None).
* ``JitterBuffer.add`` stores the packet, then returns ``self._remove_frame(...)``; the buffer's
  state is ``_origin`` (the oldest sequence number kept), ``_packets`` (a ring of
  ``_capacity`` slots indexed by sequence number) and ``remove(count)`` drops from the origin.
"""

from __future__ import annotations

import logging
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtp import RtpPacket

__all__ = ["VIDEO_CAPACITY", "MarkerJitterBuffer", "receiver_of", "release_on_marker"]

log = logging.getLogger(__name__)

#: Packets a video receiver keeps, as aiortc's own video buffer.
VIDEO_CAPACITY = 512
#: Where aiortc's receiver keeps its buffer (a private, name-mangled attribute).
_BUFFER_ATTRIBUTE = "_RTCRtpReceiver__jitter_buffer"


class MarkerJitterBuffer(JitterBuffer):
    """aiortc's video jitter buffer, releasing a frame when its marked last packet is in."""

    def __init__(self, capacity: int = VIDEO_CAPACITY) -> None:
        super().__init__(capacity=capacity, is_video=True)
        #: The RTP timestamp of the frame released last.
        self._released: int | None = None

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        while (packets := self._complete_frame()) is not None:
            self.remove(len(packets))
            timestamp = packets[0].timestamp
            # aiortc's receiver sets each packet's depayloaded bytes as _data.
            data = b"".join(packet._data for packet in packets)  # type: ignore[attr-defined]
            # Packets after a frame's marker with its timestamp (padding) come too late to be
            # part of it; an empty frame would end the decoder's stream.
            if timestamp == self._released or not data:
                continue
            self._released = timestamp
            return JitterFrame(data=data, timestamp=timestamp)
        return None

    def _complete_frame(self) -> list[RtpPacket] | None:
        """The packets of the frame at the origin once it is complete: from the origin up to
        its marked packet without a gap, or up to where the next frame begins."""
        assert self._origin is not None  # add() sets it before it looks for a frame
        packets: list[RtpPacket] = []
        for count in range(self.capacity):
            packet = self._packets[(self._origin + count) % self.capacity]
            if packet is None:
                return None  # a gap (or the newest packet): the frame waits
            if packets and packet.timestamp != packets[0].timestamp:
                return packets  # the next frame began: this one ended without a marker
            packets.append(packet)
            if packet.marker:
                return packets
        return None


def release_on_marker(receiver: RTCRtpReceiver) -> bool:
    """Give ``receiver`` (video, before its media flows) a :class:`MarkerJitterBuffer`;
    False, and aiortc's own buffer kept, if this aiortc keeps its buffer elsewhere."""
    current: Any = getattr(receiver, _BUFFER_ATTRIBUTE, None)
    if isinstance(current, MarkerJitterBuffer):
        return True
    if type(current) is not JitterBuffer or current.capacity != VIDEO_CAPACITY:
        log.warning(
            "aiortc's video receiver is not as expected (%r): frames are released as aiortc "
            "does, one frame later",
            current,
        )
        return False
    buffer = MarkerJitterBuffer(current.capacity)
    # Carried over should a packet have come already (none does before the track is seen).
    buffer._origin, buffer._packets = current._origin, current._packets
    setattr(receiver, _BUFFER_ATTRIBUTE, buffer)
    return True


def receiver_of(pc: RTCPeerConnection, track: MediaStreamTrack) -> RTCRtpReceiver:
    """The receiver of ``pc`` whose track ``track`` is (as aiortc's "track" event gives it)."""
    return next(t.receiver for t in pc.getTransceivers() if t.receiver.track is track)
