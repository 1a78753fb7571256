"""Sending a fan-out's pre-encoded H.264 with less work per frame than aiortc's sender loop.

With a hardware encoder the booth's CPU only moves packets, and profiling the sender
(``py-spy`` and ``perf`` on ``./scripts/bench``'s pre-encoded path) showed where that goes:
about 70 % of the process in the Python interpreter, spread over aiortc's general sender
loop (``RTCRtpSender._run_rtp``: a new ``av.Packet`` per frame, the H.264 payloader re-parsing
it through generators and ``Fraction`` time bases, an ``RtpPacket`` with a header-extension
object per packet serialized through a generic extension map, two ``datetime`` clock readings
per packet) and the four coroutines between it and the socket (DTLS transport, SRTP,
aioice's connection and protocol, asyncio's datagram transport). Each frame is a separate
wake-up of an otherwise idle process, so all of that runs with cold caches: a bare asyncio
loop waking 30 times a second already costs about 0.005 CPU-s per second on the 2-core
machine, a plain ``time.sleep`` loop 0.002. The encryption (libsrtp) and the ``sendto``
system calls themselves are a small share.

:func:`send_packets` replaces, on one :class:`aiortc.RTCRtpSender` whose track is a
:class:`kiosk.media.FanoutTrack`, the RTP loop with one that sends the same packets with less
Python per frame: it reads :class:`kiosk.media.EncodedFrame` objects straight from the track
(no ``av.Packet``), payloads an access unit of one NAL unit without re-parsing it (others
through aiortc's own payloader), writes the RTP header from a template made by aiortc's own
serializer, and hands the packet to the transport. The payloads, sequence numbers,
timestamps, marker bits, header extensions and pacing are aiortc's (tested byte for byte in
``tests/kiosk/test_packet_sender.py``); retransmissions (NACK, RTX) and keyframe requests go
through aiortc's own RTCP handling. A sender whose negotiated codec is not H.264 (VP8) keeps
aiortc's loop.

The aiortc internals relied on (aiortc is pinned; ``tests/kiosk/test_packet_sender.py`` fails
when any of them changes):

* ``RTCRtpSender.send()`` starts the loop as ``self._run_rtp(codec)`` (an instance attribute
  set before it wins) and ``stop()`` waits for the events ``__rtp_started`` and
  ``__rtp_exited``; the loop stops the track and clears ``__track`` when it ends.
* ``RTCRtpSender._retransmit(sequence_number)`` answers a NACK from ``__rtp_history`` (a dict
  of ``RTP_HISTORY_SIZE`` slots, sequence number modulo the size, of ``RtpPacket``), wrapped in
  RTX with ``__rtx_payload_type``, ``__rtx_sequence_number`` and ``_rtx_ssrc``.
* The sender reports (RTCP SR, ``getStats``) read ``__ntp_timestamp``, ``__rtp_timestamp``,
  ``__packet_count`` and ``__octet_count``; the packets carry the ``__mid`` and abs-send-time
  header extensions through ``__rtp_header_extensions_map``.
* ``RTCDtlsTransport._send_rtp(data)`` protects (SRTP) and sends one RTP packet.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiortc import RTCRtpSender
from aiortc.codecs.h264 import PACKET_MAX
from aiortc.codecs.h264 import H264Encoder as AiortcH264Encoder
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpsender import random_sequence_number
from aiortc.rtp import RTP_HISTORY_SIZE, HeaderExtensionsMap, RtpPacket
from aiortc.utils import random32

from kiosk.media.source import H264, EncodedFrame

__all__ = ["PacketSender", "RtpHeaderWriter", "h264_payloads", "ntp_now", "send_packets"]

log = logging.getLogger(__name__)

_START_CODE = b"\x00\x00\x01"
#: Seconds from the NTP epoch (1900) to the Unix epoch (1970).
_NTP_UNIX_OFFSET = 2_208_988_800
_RTP_HEAD = struct.Struct("!BBHLL")
#: What aiortc's sender reports (RTCP SR, getStats) read, as its private attributes are named.
_NTP_TIMESTAMP, _RTP_TIMESTAMP = "_RTCRtpSender__ntp_timestamp", "_RTCRtpSender__rtp_timestamp"
_PACKET_COUNT, _OCTET_COUNT = "_RTCRtpSender__packet_count", "_RTCRtpSender__octet_count"


class PacketTrack(Protocol):
    """What the loop reads: a :class:`kiosk.media.FanoutTrack`."""

    async def next_frame(self) -> EncodedFrame: ...

    def stop(self) -> None: ...


def h264_payloads(data: bytes) -> list[bytes]:
    """The RTP payloads (RFC 6184) of one Annex B access unit, exactly as aiortc makes them.

    An access unit of one NAL unit that fits a packet (most frames between key frames) is its
    own payload; anything else (SPS and PPS before an IDR, a unit split into fragments) goes
    through aiortc's payloader.
    """
    start = data.find(_START_CODE)
    if start != -1 and data.find(_START_CODE, start + 3) == -1:
        nal = data[start + 3 :]
        if 0 < len(nal) <= PACKET_MAX:
            return [nal]
    return AiortcH264Encoder._packetize(AiortcH264Encoder._split_bitstream(data))


def ntp_now() -> int:
    """The wall clock as a 64-bit NTP time, as ``aiortc.clock.current_ntp_time`` reads it
    (microseconds), without going through ``datetime``."""
    micros = time.time_ns() // 1000
    seconds, micros = divmod(micros, 1_000_000)
    return ((seconds + _NTP_UNIX_OFFSET) << 32) | ((micros << 32) // 1_000_000)


def _appended(header: bytes, elements: bytes) -> bytes:
    """``header`` (an RTP header without CSRCs, and its extensions, no payload) with
    ``elements`` added to its one-byte-header extension block (RFC 8285), which is made if
    there is none."""
    if not elements:
        return header
    first, block = header[0], header[12:]
    kept = b""
    if first & 0x10:
        if block[:2] != b"\xbe\xde":
            raise RuntimeError("aiortc's header extensions are not one-byte headers")
        raw = block[4 : 4 + 4 * int.from_bytes(block[2:4], "big")]
        at = 0
        while at < len(raw):  # the elements, without their padding
            if raw[at] == 0:
                at += 1
                continue
            end = at + 2 + (raw[at] & 0x0F)
            kept += raw[at:end]
            at = end
    body = kept + elements
    body += bytes(-len(body) % 4)
    return b"".join(
        (
            bytes([first | 0x10]),
            header[1:12],
            b"\xbe\xde",
            (len(body) // 4).to_bytes(2, "big"),
            body,
        )
    )


class RtpHeaderWriter:
    """Whole RTP packets of one sender, header and extensions as aiortc serializes them.

    The header extensions (the ``mid``, and abs-send-time when negotiated) are laid out once by
    aiortc's own serializer; per packet only the marker, sequence number, timestamp and the
    three bytes of abs-send-time change.
    """

    def __init__(
        self,
        *,
        payload_type: int,
        ssrc: int,
        mid: str | None,
        extensions: HeaderExtensionsMap,
        extra: bytes = b"",
    ) -> None:
        """``extra``: further elements of the one-byte-header extension block, after aiortc's
        (the playout delay: kiosk.media.playout), the same in every packet."""
        self.payload_type, self.ssrc = payload_type, ssrc
        probe = RtpPacket(payload_type=payload_type, ssrc=ssrc)
        probe.extensions.mid = mid
        probe.extensions.abs_send_time = 0
        zeros = _appended(probe.serialize(extensions), extra)
        probe.extensions.abs_send_time = 0xFFFFFF
        ones = _appended(probe.serialize(extensions), extra)
        changed = [i for i, (a, b) in enumerate(zip(zeros, ones, strict=True)) if a != b]
        self._first_byte = zeros[0]
        if changed:
            at = changed[0]
            if changed != [at, at + 1, at + 2]:
                raise RuntimeError("aiortc lays out abs-send-time differently than expected")
            self._before, self._after = zeros[12:at], zeros[at + 3 :]
        else:  # abs-send-time not negotiated
            self._before, self._after = zeros[12:], b""
        self.abs_send_time = bool(changed)

    def packet(
        self, payload: bytes, *, sequence_number: int, timestamp: int, marker: bool, ntp: int
    ) -> bytes:
        """One serialized RTP packet; ``ntp`` is the send time (:func:`ntp_now`)."""
        head = _RTP_HEAD.pack(
            self._first_byte,
            (0x80 if marker else 0) | self.payload_type,
            sequence_number,
            timestamp,
            self.ssrc,
        )
        if self.abs_send_time:
            send_time = ((ntp >> 14) & 0xFFFFFF).to_bytes(3, "big")
            return b"".join((head, self._before, send_time, self._after, payload))
        return b"".join((head, self._before, payload))


class PacketSender:
    """The RTP loop of one video sender of pre-encoded H.264 (see the module's docstring)."""

    def __init__(self, sender: RTCRtpSender) -> None:
        self._sender = sender
        self._aiortc_run_rtp: Callable[[RTCRtpCodecParameters], Awaitable[None]] = sender._run_rtp
        self._aiortc_retransmit: Callable[[int], Awaitable[None]] = sender._retransmit
        #: The packets sent last, for retransmission: (sequence number, timestamp, marker,
        #: send time, payload) in slots of the sequence number modulo aiortc's history size.
        self._history: list[tuple[int, int, bool, int, bytes] | None] = [None] * RTP_HISTORY_SIZE
        #: The negotiated H.264 payload type, once this loop sends.
        self._payload_type: int | None = None
        self.frames_sent = 0
        #: Elements put into every packet's header extensions besides aiortc's (the playout
        #: delay the answer accepted: kiosk.media.playout); set before the sender starts.
        self.extra_extensions = b""

    def install(self) -> None:
        """Take the sender's RTP loop and retransmissions over; before the sender starts."""
        sender: Any = self._sender
        sender._run_rtp = self._run_rtp
        sender._retransmit = self._retransmit

    def _private(self, name: str) -> Any:
        return getattr(self._sender, f"_RTCRtpSender__{name}")

    def _set_private(self, name: str, value: Any) -> None:
        setattr(self._sender, f"_RTCRtpSender__{name}", value)

    async def _run_rtp(self, codec: RTCRtpCodecParameters) -> None:
        if codec.mimeType != H264 or codec.payloadType is None:
            await self._aiortc_run_rtp(codec)
            return
        self._payload_type = codec.payloadType
        sender = self._sender
        self._private("rtp_started").set()
        writer = RtpHeaderWriter(
            payload_type=self._payload_type,
            ssrc=sender._ssrc,
            mid=self._private("mid"),
            extensions=self._private("rtp_header_extensions_map"),
            extra=self.extra_extensions,
        )
        history = self._history
        state = vars(sender)  # the reports' counters are name-mangled instance attributes
        send_rtp = sender.transport._send_rtp
        packet = writer.packet
        sequence_number = random_sequence_number()
        timestamp_origin = random32()
        packets = octets = 0
        try:
            while True:
                track: PacketTrack | None = sender.track  # type: ignore[assignment]
                if track is None:
                    await asyncio.sleep(0.02)
                    continue
                frame = await track.next_frame()
                if not sender._enabled:
                    continue
                timestamp = (timestamp_origin + frame.pts) & 0xFFFFFFFF
                payloads = h264_payloads(frame.data)
                last = len(payloads) - 1
                for i, payload in enumerate(payloads):
                    ntp = ntp_now()
                    marker = i == last
                    history[sequence_number % RTP_HISTORY_SIZE] = (
                        sequence_number,
                        timestamp,
                        marker,
                        ntp,
                        payload,
                    )
                    await send_rtp(
                        packet(
                            payload,
                            sequence_number=sequence_number,
                            timestamp=timestamp,
                            marker=marker,
                            ntp=ntp,
                        )
                    )
                    packets += 1
                    octets += len(payload)
                    sequence_number = (sequence_number + 1) & 0xFFFF
                # The sender reports read these between frames (nothing above yields).
                state[_NTP_TIMESTAMP] = ntp_now()
                state[_RTP_TIMESTAMP] = timestamp
                state[_PACKET_COUNT] = packets
                state[_OCTET_COUNT] = octets
                self.frames_sent += 1
        except (asyncio.CancelledError, ConnectionError, MediaStreamError):
            pass
        except Exception:
            # As aiortc's loop: stop() waits for the exit event, so never leave without it.
            log.warning("video sender stopped: %s", traceback.format_exc())
        if sender.track is not None:
            sender.track.stop()
            self._set_private("track", None)
        self._private("rtp_exited").set()

    def _history_packet(self, sequence_number: int) -> RtpPacket | None:
        """The packet sent with ``sequence_number`` as aiortc would have kept it, if still kept."""
        entry = self._history[sequence_number % RTP_HISTORY_SIZE]
        if self._payload_type is None or entry is None or entry[0] != sequence_number:
            return None
        _, timestamp, marker, ntp, payload = entry
        packet = RtpPacket(
            payload_type=self._payload_type,
            marker=int(marker),
            sequence_number=sequence_number,
            timestamp=timestamp,
            ssrc=self._sender._ssrc,
            payload=payload,
        )
        packet.extensions.abs_send_time = (ntp >> 14) & 0x00FFFFFF
        packet.extensions.mid = self._private("mid")
        return packet

    async def _retransmit(self, sequence_number: int) -> None:
        """aiortc's own retransmission (RTX when negotiated) of a packet this loop sent."""
        if self._payload_type is None:
            await self._aiortc_retransmit(sequence_number)
            return
        packet = self._history_packet(sequence_number)
        if packet is None:
            return
        # aiortc's history holds this packet while its own _retransmit answers, nothing longer.
        history: dict[int, RtpPacket] = self._private("rtp_history")
        slot = sequence_number % RTP_HISTORY_SIZE
        history[slot] = packet
        try:
            await self._aiortc_retransmit(sequence_number)
        finally:
            history.pop(slot, None)


def send_packets(sender: RTCRtpSender) -> PacketSender:
    """Send ``sender``'s pre-encoded H.264 through a :class:`PacketSender`; call before the
    connection's descriptions are applied (before aiortc starts the sender). Its track must be
    a :class:`kiosk.media.FanoutTrack`."""
    packet_sender = PacketSender(sender)
    packet_sender.install()
    return packet_sender
