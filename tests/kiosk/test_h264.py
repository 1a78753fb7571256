"""The H.264 encoder: a WebRTC-friendly stream (IDRs with headers, baseline, decodable)."""

from __future__ import annotations

import av
import numpy as np
import pytest

from kiosk.media import H264Encoder, Stamp, TestPattern, nal_unit_types
from kiosk.media.h264 import NAL_IDR, NAL_PPS, NAL_SPS

WIDTH, HEIGHT = 320, 240


def _frames(count: int, start: int = 0) -> list[av.VideoFrame]:
    pattern = TestPattern(WIDTH, HEIGHT)
    return [pattern.render(Stamp(n, n)) for n in range(start, start + count)]


def _is_idr_with_headers(data: bytes) -> bool:
    types = nal_unit_types(data)
    if NAL_IDR not in types:
        return False
    idr = types.index(NAL_IDR)
    return NAL_SPS in types[:idr] and NAL_PPS in types[:idr]


def test_nal_unit_types_splits_annex_b() -> None:
    data = b"\x00\x00\x00\x01\x67\x42\x00\x00\x01\x68\xce\x00\x00\x00\x01\x65\x88\x00\x00\x01\x41"
    assert nal_unit_types(data) == [7, 8, 5, 1]
    assert nal_unit_types(b"") == []


def test_first_packet_is_idr_with_sps_and_pps_first() -> None:
    encoder = H264Encoder(WIDTH, HEIGHT, 30, 500_000)
    packets = encoder.encode(_frames(1)[0])
    assert len(packets) == 1
    types = nal_unit_types(bytes(packets[0]))
    assert types[:2] == [NAL_SPS, NAL_PPS]
    assert _is_idr_with_headers(bytes(packets[0]))
    assert encoder.frames_encoded == 1


def test_sps_is_constrained_baseline_level_3_1() -> None:
    encoder = H264Encoder(WIDTH, HEIGHT, 30, 500_000)
    data = bytes(encoder.encode(_frames(1)[0])[0])
    sps = data.index(b"\x00\x00\x01\x67") + 4
    profile_idc, constraints, level_idc = data[sps : sps + 3]
    assert profile_idc == 66  # baseline
    assert constraints & 0x40  # constraint_set1: decodable as main, i.e. constrained baseline
    assert level_idc == 31


def test_one_access_unit_per_frame_and_an_idr_every_two_seconds() -> None:
    fps = 10
    encoder = H264Encoder(WIDTH, HEIGHT, fps, 500_000)
    units = [encoder.encode(frame) for frame in _frames(5 * fps)]
    assert all(len(packets) == 1 for packets in units)  # no encoder delay, no B-frames
    idrs = [i for i, packets in enumerate(units) if NAL_IDR in nal_unit_types(bytes(packets[0]))]
    assert idrs[0] == 0
    assert max(np.diff(idrs)) <= 2 * fps
    assert all(_is_idr_with_headers(bytes(units[i][0])) for i in idrs)
    # Headers only travel with IDRs.
    others = [bytes(packets[0]) for i, packets in enumerate(units) if i not in idrs]
    assert all(NAL_SPS not in nal_unit_types(data) for data in others)


def test_forced_keyframe_is_the_very_next_packet() -> None:
    encoder = H264Encoder(WIDTH, HEIGHT, 30, 500_000)
    frames = _frames(12)
    for frame in frames[:5]:
        encoder.encode(frame)
    assert not _is_idr_with_headers(bytes(encoder.encode(frames[5])[0]))
    assert _is_idr_with_headers(bytes(encoder.encode(frames[6], keyframe=True)[0]))
    # A frame handed back in keeps its pict_type: the next one must not be an IDR again.
    assert not _is_idr_with_headers(bytes(encoder.encode(frames[6])[0]))


def test_stream_decodes_with_pyav() -> None:
    encoder = H264Encoder(WIDTH, HEIGHT, 30, 500_000)
    decoder = av.CodecContext.create("h264", "r")
    decoded = []
    for index, frame in enumerate(_frames(40)):
        for packet in encoder.encode(frame, keyframe=index == 20):
            decoded.extend(decoder.decode(packet))
    assert len(decoded) == 40
    assert all((f.width, f.height) == (WIDTH, HEIGHT) for f in decoded)


def test_bitrate_change_takes_effect() -> None:
    rng = np.random.default_rng(3)
    fps = 30
    encoder = H264Encoder(WIDTH, HEIGHT, fps, 2_000_000)

    def noisy_sizes(count: int) -> list[int]:
        # Noise needs every bit it can get, so the output follows the target closely.
        sizes = []
        for _ in range(count):
            rgb = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            sizes.extend(len(bytes(p)) for p in encoder.encode(frame))
        return sizes

    high = noisy_sizes(20)
    encoder.bitrate = 200_000
    assert encoder.bitrate == 200_000
    low = noisy_sizes(20)
    # Skip each run's opening IDR; compare the steady state.
    high_rate = sum(high[5:]) * 8 * fps / len(high[5:])
    low_rate = sum(low[5:]) * 8 * fps / len(low[5:])
    assert low_rate < high_rate / 4, (high_rate, low_rate)
    assert low_rate < 400_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((321, 240, 30, 500_000), "must be positive and even"),
        ((320, 240, 0, 500_000), "fps must be positive"),
        ((320, 240, 30, 500), "bitrate is in bit/s"),
    ],
)
def test_bad_settings_are_refused(args: tuple[int, int, int, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        H264Encoder(*args)


def test_frame_of_the_wrong_size_is_refused() -> None:
    encoder = H264Encoder(640, 480, 30, 500_000)
    with pytest.raises(ValueError, match="frame is 320x240, the encoder 640x480"):
        encoder.encode(_frames(1)[0])
