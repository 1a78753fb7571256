"""Received video released when a frame's last packet is in (kiosk/media/receiver.py): real
H.264 and VP8 frames packetized as aiortc sends them, in order, reordered and with a packet
lost; a real call through it; and the aiortc internals it relies on, which fail loudly here
when a new aiortc changes them."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiortc
import av
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.codecs import depayload, get_capabilities, get_decoder, get_encoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket

from kiosk.media import Stamp, TestPattern, read_stamp
from kiosk.media.receiver import (
    VIDEO_CAPACITY,
    MarkerJitterBuffer,
    receiver_of,
    release_on_marker,
)

CODECS = ["video/H264", "video/VP8"]


def codec_parameters(mime_type: str) -> RTCRtpCodecParameters:
    capability = next(c for c in get_capabilities("video").codecs if c.mimeType == mime_type)
    return RTCRtpCodecParameters(
        mimeType=capability.mimeType,
        clockRate=capability.clockRate,
        payloadType=96,
        parameters=dict(capability.parameters),
    )


@dataclass
class Frame:
    """One encoded frame as RTP packets (the last one marked), and its stamp."""

    packets: list[RtpPacket]
    stamp: Stamp

    @property
    def data(self) -> bytes:
        return b"".join(p._data for p in self.packets)


def frames(mime_type: str, count: int, *, first_sequence: int = 1000) -> Iterator[Frame]:
    """``count`` test-pattern frames encoded and packetized by aiortc's own encoder, as it
    sends them, each of several packets (noise below the stamp, as a camera's)."""
    codec = codec_parameters(mime_type)
    encoder = get_encoder(codec)
    encoder.target_bitrate = 3_000_000
    pattern = TestPattern(640, 480)
    noise = np.random.default_rng(7)
    sequence = first_sequence
    for n in range(count):
        stamp = Stamp(n, 1_000 + 33 * n)
        picture = pattern.render(stamp)
        luma = picture.planes[0]
        rows = np.frombuffer(luma, np.uint8).reshape(-1, luma.line_size).copy()
        rows[160:320, :240] = noise.integers(16, 235, (160, 240), dtype=np.uint8)
        luma.update(rows)
        picture.pts, picture.time_base = n * 3000, fractions.Fraction(1, 90_000)
        payloads, timestamp = encoder.encode(picture, force_keyframe=n == 0)
        packets = []
        for i, payload in enumerate(payloads):
            packet = RtpPacket(
                payload_type=96,
                marker=int(i == len(payloads) - 1),
                sequence_number=sequence % 65536,
                timestamp=timestamp,
                payload=payload,
            )
            # What aiortc's receiver does before it hands a packet to its buffer.
            packet._data = depayload(codec, payload)  # type: ignore[attr-defined]
            packets.append(packet)
            sequence += 1
        yield Frame(packets, stamp)


def decoded_stamps(mime_type: str, released: list[JitterFrame]) -> list[Stamp | None]:
    decoder = get_decoder(codec_parameters(mime_type))
    return [
        read_stamp(picture.to_ndarray(format="rgb24"))
        for frame in released
        for picture in decoder.decode(frame)
    ]


def feed(buffer: JitterBuffer, packets: list[RtpPacket]) -> list[JitterFrame | None]:
    """What the buffer hands on after each packet (at most one frame per packet)."""
    return [buffer.add(packet)[1] for packet in packets]


@pytest.mark.parametrize("mime_type", CODECS)
def test_a_complete_frame_is_released_on_its_marker_packet(mime_type: str) -> None:
    sent = list(frames(mime_type, 3))
    assert min(len(f.packets) for f in sent) >= 4
    buffer = MarkerJitterBuffer()
    released: list[JitterFrame] = []
    for frame in sent:
        handed = feed(buffer, frame.packets)
        assert handed[:-1] == [None] * (len(handed) - 1)  # not before its last packet ...
        last = handed[-1]
        assert last is not None  # ... and on it, not when the next frame begins
        assert last.data == frame.data and last.timestamp == frame.packets[0].timestamp
        released.append(last)
    assert decoded_stamps(mime_type, released) == [f.stamp for f in sent]


@pytest.mark.parametrize("mime_type", CODECS)
def test_aiortc_s_own_buffer_still_waits_for_the_next_frame(mime_type: str) -> None:
    """Why the marker buffer exists: should aiortc release complete frames itself one day,
    this fails, and kiosk/media/receiver.py can go."""
    first, second = frames(mime_type, 2)
    buffer = JitterBuffer(capacity=VIDEO_CAPACITY, is_video=True)
    assert feed(buffer, first.packets) == [None] * len(first.packets)
    released = feed(buffer, second.packets[:1])[0]
    assert released is not None and released.data == first.data


@pytest.mark.parametrize("mime_type", CODECS)
def test_reordered_packets_make_the_frame_when_the_last_missing_one_comes(
    mime_type: str,
) -> None:
    first, second = frames(mime_type, 2)
    buffer = MarkerJitterBuffer()
    packets = first.packets
    # The marker overtakes the packet before it, and the second packet comes last.
    order = [packets[0], *packets[2:-2], packets[-1], packets[-2], packets[1]]
    handed = feed(buffer, order)
    assert handed[:-1] == [None] * (len(order) - 1)
    assert handed[-1] is not None and handed[-1].data == first.data
    # A late duplicate of a packet already handed on changes nothing.
    assert feed(buffer, [packets[1]]) == [None]
    handed = feed(buffer, second.packets)
    assert handed[-1] is not None and handed[-1].data == second.data


@pytest.mark.parametrize("mime_type", CODECS)
def test_a_lost_packet_holds_its_frame_until_it_is_retransmitted(mime_type: str) -> None:
    first, second, third = frames(mime_type, 3)
    buffer = MarkerJitterBuffer()
    assert feed(buffer, first.packets)[-1] is not None
    lost, *rest = second.packets
    assert feed(buffer, rest + third.packets) == [None] * (len(rest) + len(third.packets))
    # The retransmission (aiortc has asked for it with a NACK) completes the frame; the next,
    # complete meanwhile, comes with the next packet that arrives, as in aiortc's buffer.
    released = feed(buffer, [lost])[0]
    assert released is not None and released.data == second.data
    fourth = next(frames(mime_type, 1, first_sequence=third.packets[-1].sequence_number + 1))
    fourth.packets[0].timestamp = third.packets[0].timestamp + 3000
    handed = feed(buffer, fourth.packets[:1])[0]
    assert handed is not None and handed.data == third.data


@pytest.mark.parametrize("mime_type", CODECS)
@pytest.mark.parametrize("seed", range(5))
def test_the_same_frames_as_aiortc_s_buffer_only_sooner(mime_type: str, seed: int) -> None:
    """Packets reordered within a few places and some twice: both buffers hand on the same
    frames in the same order; aiortc's holds the last until another frame begins."""
    sent = list(frames(mime_type, 10))
    packets = [p for frame in sent for p in frame.packets]
    rng = np.random.default_rng(seed)
    # The first packet first: a buffer starts where its first packet is.
    arrival = [0, *sorted(range(1, len(packets)), key=lambda i: i + rng.uniform(0, 4))]
    arrival += [int(i) for i in rng.choice(len(packets), 5)]  # late duplicates
    ours, theirs = MarkerJitterBuffer(), JitterBuffer(capacity=VIDEO_CAPACITY, is_video=True)
    released: dict[str, list[bytes]] = {"ours": [], "theirs": []}
    for i in arrival:
        for name, buffer in (("ours", ours), ("theirs", theirs)):
            handed = buffer.add(packets[i])[1]
            if handed is not None:
                released[name].append(handed.data)
    assert released["ours"] == [frame.data for frame in sent]
    assert released["theirs"] == released["ours"][:-1]


def test_a_packet_never_retransmitted_ends_in_a_keyframe_request() -> None:
    """The gap stays until the buffer overflows: then, as aiortc does, the frames before it
    are dropped, a key frame is asked for (PLI) and complete frames flow again."""
    sent = list(frames("video/VP8", 12))
    buffer = MarkerJitterBuffer(capacity=32)
    assert feed(buffer, sent[0].packets)[-1] is not None
    sequence = sent[1].packets[0].sequence_number
    asked = False
    released: list[JitterFrame] = []
    for frame in sent[1:]:
        for packet in frame.packets:
            if packet.sequence_number == sequence:
                continue  # lost for good
            pli, handed = buffer.add(packet)
            asked = asked or pli
            if handed is not None:
                released.append(handed)
    assert asked
    assert released and released[-1].data == sent[-1].data


def test_padding_after_a_frame_s_marker_is_not_a_frame() -> None:
    """Packets with a frame's timestamp after its marker (padding) are dropped: an empty
    frame would end the decoder's stream."""
    first, second = frames("video/VP8", 2)
    buffer = MarkerJitterBuffer()
    assert feed(buffer, first.packets)[-1] is not None
    marker = first.packets[-1]
    padding = RtpPacket(
        payload_type=96, sequence_number=marker.sequence_number + 1, timestamp=marker.timestamp
    )
    padding._data = b""  # type: ignore[attr-defined]
    for packet in second.packets:
        packet.sequence_number += 1
    handed = feed(buffer, [padding, *second.packets])
    assert handed[:-1] == [None] * len(second.packets)
    assert handed[-1] is not None and handed[-1].data == second.data


# ------------------------------------------------------------------ aiortc's internals


def test_aiortc_is_the_version_the_receiver_was_written_for() -> None:
    assert aiortc.__version__ == "1.16.0", (
        "aiortc changed: check kiosk/media/receiver.py's list of the internals it relies on"
    )


def test_aiortc_s_receiver_hands_its_buffer_each_packet_and_decodes_what_it_returns() -> None:
    handler = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    assert "packet._data = depayload(codec, packet.payload)" in handler
    assert "pli_flag, encoded_frame = self.__jitter_buffer.add(packet)" in handler
    assert "self.__decoder_queue.put((codec, encoded_frame))" in handler
    add = inspect.getsource(JitterBuffer.add)
    assert "return pli_flag, self._remove_frame(packet.sequence_number)" in add
    assert set(inspect.signature(JitterBuffer.remove).parameters) == {"self", "count"}


async def test_a_video_receiver_s_buffer_is_swapped_and_an_audio_one_is_not() -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        video = pc.addTransceiver("video").receiver
        own = getattr(video, "_RTCRtpReceiver__jitter_buffer")  # noqa: B009 - private, checked
        assert type(own) is JitterBuffer and own.capacity == VIDEO_CAPACITY and own._is_video
        assert own._origin is None and len(own._packets) == VIDEO_CAPACITY
        assert release_on_marker(video)
        assert isinstance(video._RTCRtpReceiver__jitter_buffer, MarkerJitterBuffer)
        assert release_on_marker(video)  # twice changes nothing
        audio = pc.addTransceiver("audio").receiver
        assert not release_on_marker(audio)  # aiortc's audio buffer (16 packets) is kept
        assert type(audio._RTCRtpReceiver__jitter_buffer) is JitterBuffer
    finally:
        await pc.close()


@pytest.mark.parametrize("mime_type", CODECS)
async def test_a_call_s_video_decodes_through_the_marker_buffer(
    mime_type: str, loopback_ice: None
) -> None:
    """aiortc to aiortc on loopback, the receiver's buffer swapped when its track shows."""
    sender = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    decoded: list[Any] = []
    swapped: list[bool] = []
    consumers: list[asyncio.Future[None]] = []

    async def consume(track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                decoded.append(await track.recv())

    def on_track(track: MediaStreamTrack) -> None:
        swapped.append(release_on_marker(receiver_of(receiver, track)))
        consumers.append(asyncio.ensure_future(consume(track)))

    receiver.on("track", on_track)
    try:
        pattern = StampedTrack()
        transceiver = sender.addTransceiver(pattern, direction="sendonly")
        transceiver.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == mime_type]
        )
        await sender.setLocalDescription(await sender.createOffer())
        await receiver.setRemoteDescription(sender.localDescription)
        await receiver.setLocalDescription(await receiver.createAnswer())
        await sender.setRemoteDescription(
            RTCSessionDescription(receiver.localDescription.sdp, "answer")
        )
        for _ in range(300):
            if len(decoded) >= 10:
                break
            await asyncio.sleep(0.05)
        assert swapped == [True]
        assert len(decoded) >= 10
        stamps = [read_stamp(frame.to_ndarray(format="rgb24")) for frame in decoded]
        numbers = [s.frame_number for s in stamps if s is not None]
        assert len(numbers) == len(decoded) and numbers == sorted(numbers)
    finally:
        await sender.close()
        await receiver.close()
        for consumer in consumers:
            await consumer


class StampedTrack(MediaStreamTrack):
    """Test-pattern frames (320x240, stamped) as fast as aiortc takes them, 30 a second."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self._pattern = TestPattern(320, 240)
        self._n = 0

    async def recv(self) -> av.VideoFrame:
        await asyncio.sleep(1 / 30)
        frame = self._pattern.render(Stamp(self._n, self._n))
        frame.pts, frame.time_base = self._n * 3000, fractions.Fraction(1, 90_000)
        self._n += 1
        return frame
