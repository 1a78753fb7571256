"""The playout delay the booth asks the advisor's browser for (kiosk/media/playout.py): offered
in the SDP, read from the answer, written into every packet of the booth's packet sender.

That Chromium takes it and shows the frames at once is measured by bench/to_advisor.py (the
jitter buffer's delay and glass to glass on the real path)."""

from __future__ import annotations

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.rtp import RtpPacket

from kiosk.media.packet_sender import RtpHeaderWriter
from kiosk.media.playout import (
    PLAYOUT_DELAY_URI,
    answered_playout_delay,
    offer_playout_delay,
    playout_delay_element,
)
from kiosk.media.tracks import ToneTrack
from tests.kiosk.test_packet_sender import ABS_SEND_TIME, MID, extensions_map


async def _aiortc_offer() -> str:
    """An offer as the booth's aiortc makes it: audio and video."""
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("video", direction="sendrecv")
        pc.addTransceiver(ToneTrack(), direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()


async def test_the_offer_asks_in_its_video_section_only_under_a_free_id() -> None:
    sdp = await _aiortc_offer()
    offered = offer_playout_delay(sdp)
    video = offered.split("m=video")[1].split("m=audio")[0]
    audio = offered.split("m=audio")[1]
    assert PLAYOUT_DELAY_URI in video and PLAYOUT_DELAY_URI not in audio
    # One id for one extension across the bundle (Chromium refuses a collision).
    extmaps = {line.split()[0].removeprefix("a=extmap:") + " " + line.split()[1]
               for line in offered.splitlines() if line.startswith("a=extmap:")}  # fmt: skip
    ids = [entry.split()[0] for entry in extmaps]
    assert len(ids) == len(set(ids)), extmaps
    # Everything else as aiortc made it, and asking twice asks once.
    assert [line for line in offered.splitlines() if PLAYOUT_DELAY_URI not in line] == [
        line for line in sdp.splitlines()
    ]
    assert offer_playout_delay(offered) == offered
    # aiortc itself takes such an offer (an answer from another booth, a test peer).
    pc = RTCPeerConnection()
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offered, type="offer"))
    finally:
        await pc.close()


def test_the_answer_says_whether_and_under_which_id() -> None:
    answer = (
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
        f"a=extmap:3 {PLAYOUT_DELAY_URI}\r\n"  # not in the video section: not taken
        "m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n"
    )
    assert answered_playout_delay(answer) is None
    taken = answer + f"a=extmap:9 {PLAYOUT_DELAY_URI}\r\n"
    assert answered_playout_delay(taken) == 9
    # A two-byte-header id (15 and up) cannot go into the booth's one-byte block.
    assert answered_playout_delay(answer + f"a=extmap:20 {PLAYOUT_DELAY_URI}\r\n") is None
    assert answered_playout_delay("v=0\r\n") is None


def test_the_element_carries_the_least_and_the_most_delay_in_tens_of_ms() -> None:
    assert playout_delay_element(12, 0) == bytes([0xC2, 0, 0, 0])
    assert playout_delay_element(1, 100, min_ms=20) == bytes([0x12, 0x00, 0x20, 0x0A])
    assert playout_delay_element(14, 40950) == bytes([0xE2, 0x00, 0x0F, 0xFF])
    for bad in [(0, 0, 0), (15, 0, 0), (3, 10, 20), (3, 50_000, 0)]:
        with pytest.raises(ValueError, match=r"^(a one-byte|need 0)"):
            playout_delay_element(bad[0], bad[1], min_ms=bad[2])


def _elements(packet: bytes) -> dict[int, bytes]:
    """The one-byte-header extension elements of ``packet`` by id."""
    assert packet[0] & 0x10, "no header extension"
    assert packet[12:14] == b"\xbe\xde"
    raw = packet[16 : 16 + 4 * int.from_bytes(packet[14:16], "big")]
    found, at = {}, 0
    while at < len(raw):
        if raw[at] == 0:
            at += 1
            continue
        length = (raw[at] & 0x0F) + 1
        found[raw[at] >> 4] = raw[at + 1 : at + 1 + length]
        at += 1 + length
    return found


@pytest.mark.parametrize("uris", [(MID, ABS_SEND_TIME), (ABS_SEND_TIME, MID), (MID,), ()])
def test_every_packet_carries_it_beside_aiortc_s_extensions(uris: tuple[str, ...]) -> None:
    extensions = extensions_map(*uris)
    element = playout_delay_element(7, 0)
    writer = RtpHeaderWriter(
        payload_type=102, ssrc=0xDEADBEEF, mid="0", extensions=extensions, extra=element
    )
    ntp = 0x1234_5678_9ABC_DEF0
    data = writer.packet(b"payload", sequence_number=9, timestamp=90_000, marker=True, ntp=ntp)
    parsed = RtpPacket.parse(data, extensions)
    assert (parsed.payload, parsed.sequence_number, parsed.timestamp, parsed.marker) == (
        b"payload",
        9,
        90_000,
        1,
    )
    if MID in uris:
        assert parsed.extensions.mid == "0"
    if ABS_SEND_TIME in uris:
        assert parsed.extensions.abs_send_time == (ntp >> 14) & 0xFFFFFF
    assert _elements(data)[7] == bytes(3)
