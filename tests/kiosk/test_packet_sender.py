"""The booth's RTP loop for pre-encoded H.264: the same packets as aiortc's own loop, byte for
byte (payloads, headers, extensions, markers, retransmissions); keyframe requests still reach
the source; and the aiortc internals it relies on, which fail loudly here when aiortc changes."""

from __future__ import annotations

import asyncio
import datetime
import fractions
import inspect
import os
from typing import Any

import aiortc
import av
import numpy as np
import pytest
from aiortc import RTCRtpSender
from aiortc.clock import datetime_to_ntp
from aiortc.codecs.h264 import PACKET_MAX
from aiortc.codecs.h264 import H264Encoder as AiortcH264Encoder
from aiortc.rtcrtpparameters import (
    RTCRtcpParameters,
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpSendParameters,
)
from aiortc.rtp import (
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RTP_HISTORY_SIZE,
    HeaderExtensionsMap,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtpPacket,
    is_rtcp,
)

from kiosk.media import EncodedFrame, H264Encoder, Stamp, TestPattern, VideoFanout, VideoSource
from kiosk.media import packet_sender as packet_sender_module
from kiosk.media.packet_sender import PacketSender, RtpHeaderWriter, h264_payloads, ntp_now

MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
H264_CODEC = RTCRtpCodecParameters(
    mimeType="video/H264",
    clockRate=90_000,
    payloadType=102,
    parameters={"packetization-mode": "1", "profile-level-id": "42e01f"},
)
RTX_CODEC = RTCRtpCodecParameters(
    mimeType="video/rtx", clockRate=90_000, payloadType=103, parameters={"apt": 102}
)


def _aiortc_payloads(data: bytes) -> list[bytes]:
    packet = av.Packet(data)
    packet.pts = 0
    packet.time_base = fractions.Fraction(1, 90_000)
    payloads, _ = AiortcH264Encoder().pack(packet)
    return payloads


def _encoded(width: int, height: int, frames: int, bitrate: int, noise: bool) -> list[bytes]:
    pattern = TestPattern(width, height)
    encoder = H264Encoder(width, height, 30, bitrate)
    rng = np.random.default_rng(1)
    units = []
    for n in range(frames):
        frame = pattern.render(Stamp(n, 0))
        if noise:  # pictures that do not compress: access units of several packets
            planes = frame.to_ndarray()
            planes[: height // 2] = rng.integers(0, 255, planes[: height // 2].shape)
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        units.append(b"".join(bytes(p) for p in encoder.encode(frame, keyframe=n % 10 == 0)))
    return units


@pytest.fixture(scope="module")
def access_units() -> list[bytes]:
    """Real x264 access units (IDR with SPS and PPS, small and large P frames), and made-up
    ones at the payloader's edges (one packet exactly full, one byte over, 4-byte start codes,
    many small NAL units for STAP-A)."""
    units = _encoded(320, 240, 12, 300_000, noise=False)
    units += _encoded(320, 240, 12, 2_000_000, noise=True)

    def nal(kind: int, size: int) -> bytes:
        return bytes([0x60 | kind]) + os.urandom(size - 1).replace(b"\x00", b"\x01")

    long, short = b"\x00\x00\x00\x01", b"\x00\x00\x01"  # the two start codes
    units += [
        short + nal(1, PACKET_MAX),
        short + nal(1, PACKET_MAX + 1),
        long + nal(1, 700),
        long + nal(7, 12) + long + nal(8, 4) + short + nal(5, 5000),
        b"".join(short + nal(6, 20) for _ in range(12)),
        short + nal(1, 3 * PACKET_MAX),
    ]
    return units


def test_payloads_are_aiortc_s(access_units: list[bytes]) -> None:
    for data in access_units:
        assert h264_payloads(data) == _aiortc_payloads(data)


@pytest.mark.parametrize(
    "unix_micros", [0, 1, 999_999, 1_765_000_000_123_456, 1_765_000_000_999_999]
)
def test_ntp_time_is_aiortc_s(unix_micros: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packet_sender_module.time, "time_ns", lambda: unix_micros * 1000 + 999)
    moment = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(
        microseconds=unix_micros
    )
    assert ntp_now() == datetime_to_ntp(moment)


def extensions_map(*uris: str) -> HeaderExtensionsMap:
    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpSendParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=n, uri=uri) for n, uri in enumerate(uris, 1)
            ]
        )
    )
    return extensions


@pytest.mark.parametrize("uris", [(MID, ABS_SEND_TIME), (ABS_SEND_TIME, MID), (MID,), ()])
def test_packets_are_serialized_as_aiortc_does(uris: tuple[str, ...]) -> None:
    extensions = extensions_map(*uris)
    writer = RtpHeaderWriter(payload_type=102, ssrc=0xDEADBEEF, mid="0", extensions=extensions)
    for sequence_number, timestamp, marker, ntp in [
        (0, 0, False, 0),
        (65535, 0xFFFFFFFF, True, (1 << 64) - 1),
        (1234, 90_000, True, ntp_now()),
    ]:
        packet = RtpPacket(
            payload_type=102,
            marker=int(marker),
            sequence_number=sequence_number,
            timestamp=timestamp,
            ssrc=0xDEADBEEF,
            payload=b"payload",
        )
        packet.extensions.mid = "0"
        packet.extensions.abs_send_time = (ntp >> 14) & 0x00FFFFFF
        assert writer.packet(
            b"payload", sequence_number=sequence_number, timestamp=timestamp, marker=marker, ntp=ntp
        ) == packet.serialize(extensions)


# ------------------------------------------------------------------ a sender, whole


class ListSource(VideoSource):
    """Hands out a fixed list of access units, one every few milliseconds."""

    name = "list"

    def __init__(self, units: list[bytes]) -> None:
        super().__init__(width=320, height=240, fps=30, bitrate=300_000)
        self._units = iter(units)
        self._index = 0

    async def start(self) -> None:
        pass

    async def read(self) -> EncodedFrame:
        await asyncio.sleep(0.002)
        data = next(self._units, None)
        if data is None:
            await asyncio.Event().wait()  # the list is sent
            raise AssertionError("unreachable")
        self._index += 1
        return EncodedFrame(
            data=data,
            pts=self._index * 3000,
            keyframe=self._index == 1,
            capture_time=0.0,
            width=320,
            height=240,
        )

    async def next_preview(self) -> None:
        await asyncio.sleep(0.002)

    async def stop(self) -> None:
        pass


class RecordingTransport:
    """The DTLS transport as an RTP sender sees it, keeping what it is given to send."""

    state = "connected"
    _stats_id = "transport"

    def __init__(self) -> None:
        self.rtp: list[bytes] = []
        self.rtcp: list[bytes] = []

    def _register_rtp_sender(self, sender: Any, parameters: Any) -> None:
        pass

    def _unregister_rtp_sender(self, sender: Any) -> None:
        pass

    def _get_stats(self) -> dict[str, Any]:
        return {}

    async def _send_rtp(self, data: bytes) -> None:
        (self.rtcp if is_rtcp(data) else self.rtp).append(data)


def _parameters(*uris: str) -> RTCRtpSendParameters:
    return RTCRtpSendParameters(
        codecs=[H264_CODEC, RTX_CODEC],
        headerExtensions=[
            RTCRtpHeaderExtensionParameters(id=n, uri=uri) for n, uri in enumerate(uris, 1)
        ],
        muxId="0",
        rtcp=RTCRtcpParameters(cname="booth", mux=True),
    )


@pytest.fixture
def fixed_randomness(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both loops start at the same sequence number and timestamp; one clock for both."""
    for module in (aiortc.rtcrtpsender, packet_sender_module):
        monkeypatch.setattr(module, "random_sequence_number", lambda: 65530)  # wraps soon
        monkeypatch.setattr(module, "random32", lambda: 0xFFFFF000)
    ntp = (3_974_000_000 << 32) | 0x12345678
    monkeypatch.setattr(aiortc.clock, "current_ntp_time", lambda: ntp)
    monkeypatch.setattr(packet_sender_module, "ntp_now", lambda: ntp)


Sent = tuple[RTCRtpSender, RecordingTransport]


async def _send_through_both(units: list[bytes], *uris: str) -> tuple[VideoFanout, Sent, Sent]:
    """aiortc's loop and the booth's, each on its own track of one fan-out of ``units``."""
    fanout = VideoFanout(ListSource(units))
    senders = []
    for ours in (False, True):
        transport = RecordingTransport()
        track = fanout.subscribe()
        sender = RTCRtpSender(track, transport)  # type: ignore[arg-type]
        sender._ssrc, sender._rtx_ssrc = 0x11223344, 0x55667788
        sender._RTCRtpSender__rtx_sequence_number = 777  # type: ignore[attr-defined]
        track.install_keyframe_hook(sender)
        if ours:
            PacketSender(sender).install()
        await sender.send(_parameters(*uris))
        senders.append((sender, transport))
    await fanout.start()
    try:
        for _ in range(500):
            if all(s.track is not None and s.track.frames_sent == len(units) for s, _ in senders):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the senders did not send every access unit")
        await asyncio.sleep(0.05)  # the last frame's packets
    finally:
        await fanout.close()
    return fanout, senders[0], senders[1]


@pytest.mark.parametrize("uris", [(MID, ABS_SEND_TIME), (MID,)])
async def test_the_same_packets_as_aiortc_s_loop(
    access_units: list[bytes], fixed_randomness: None, uris: tuple[str, ...]
) -> None:
    units = access_units
    _, (aiortc_sender, theirs), (booth_sender, ours) = await _send_through_both(units, *uris)
    try:
        assert len(ours.rtp) > len(units)  # some units took several packets
        assert ours.rtp == theirs.rtp
        mine = (await booth_sender.getStats()).values()
        reference = (await aiortc_sender.getStats()).values()
        sent = [(s.packetsSent, s.bytesSent) for s in mine if s.type == "outbound-rtp"]
        assert sent == [(s.packetsSent, s.bytesSent) for s in reference if s.type == "outbound-rtp"]
    finally:
        await aiortc_sender.stop()
        await booth_sender.stop()
    assert booth_sender.track is None  # stopped as aiortc's loop stops its track


async def test_nacked_packets_are_retransmitted_as_aiortc_does(
    access_units: list[bytes], fixed_randomness: None
) -> None:
    units = access_units[:20]
    _, (aiortc_sender, theirs), (booth_sender, ours) = await _send_through_both(
        units, MID, ABS_SEND_TIME
    )
    try:
        newest = RtpPacket.parse(ours.rtp[-1]).sequence_number
        lost = [newest, (newest - 3) & 0xFFFF, (newest - RTP_HISTORY_SIZE + 1) & 0xFFFF]
        forgotten = [(newest - RTP_HISTORY_SIZE) & 0xFFFF, (newest + 1) & 0xFFFF]
        for sender, transport in ((aiortc_sender, theirs), (booth_sender, ours)):
            transport.rtp.clear()
            nack = RtcpRtpfbPacket(
                fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=sender._ssrc, lost=lost + forgotten
            )
            await sender._handle_rtcp_packet(nack)
        assert len(ours.rtp) == len(lost)
        assert ours.rtp == theirs.rtp
        rtx = [RtpPacket.parse(data) for data in ours.rtp]
        assert {p.payload_type for p in rtx} == {RTX_CODEC.payloadType}
        assert [int.from_bytes(p.payload[:2], "big") for p in rtx] == lost
    finally:
        await aiortc_sender.stop()
        await booth_sender.stop()


async def test_a_keyframe_request_reaches_the_source(
    access_units: list[bytes], fixed_randomness: None
) -> None:
    fanout, (aiortc_sender, _), (booth_sender, _) = await _send_through_both(access_units[:3], MID)
    try:
        before = fanout.source.keyframes_requested
        pli = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=booth_sender._ssrc)
        await booth_sender._handle_rtcp_packet(pli)
        assert fanout.source.keyframes_requested == before + 1
    finally:
        await aiortc_sender.stop()
        await booth_sender.stop()


async def test_a_sender_of_another_codec_keeps_aiortc_s_loop() -> None:
    fanout = VideoFanout(ListSource([]))
    sender = RTCRtpSender(fanout.subscribe(), RecordingTransport())  # type: ignore[arg-type]
    packet_sender = PacketSender(sender)
    packet_sender.install()
    vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90_000, payloadType=96)
    await sender.send(RTCRtpSendParameters(codecs=[vp8], muxId="0", rtcp=RTCRtcpParameters()))
    await asyncio.sleep(0.01)
    await sender.stop()
    assert packet_sender.frames_sent == 0


# ------------------------------------------------------------------ aiortc's internals


def test_aiortc_is_the_version_the_packet_sender_was_written_for() -> None:
    assert aiortc.__version__ == "1.16.0", (
        "aiortc changed: check kiosk/media/packet_sender.py's list of the internals it relies on"
    )


async def test_aiortc_s_sender_has_the_internals_the_packet_sender_uses() -> None:
    sender = RTCRtpSender("video", RecordingTransport())  # type: ignore[arg-type]
    for name in (
        "rtp_started",
        "rtp_exited",
        "rtp_history",
        "rtx_payload_type",
        "rtx_sequence_number",
        "ntp_timestamp",
        "rtp_timestamp",
        "packet_count",
        "octet_count",
        "mid",
        "rtp_header_extensions_map",
        "track",
    ):
        assert hasattr(sender, f"_RTCRtpSender__{name}"), name
    assert isinstance(sender._RTCRtpSender__rtp_history, dict)  # type: ignore[attr-defined]
    assert list(inspect.signature(sender._run_rtp).parameters) == ["codec"]
    assert list(inspect.signature(sender._retransmit).parameters) == ["sequence_number"]
    source = inspect.getsource(RTCRtpSender.send)
    assert "self._run_rtp(parameters.codecs[0])" in source
    assert "self.__rtp_history.get(sequence_number % RTP_HISTORY_SIZE)" in inspect.getsource(
        RTCRtpSender._retransmit
    )
    assert "await self._retransmit(seq)" in inspect.getsource(RTCRtpSender._handle_rtcp_packet)
