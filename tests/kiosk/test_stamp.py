"""The stamp: exact round trip, and it survives H.264 at 300 kbit/s and half-size scaling."""

from __future__ import annotations

import random

import av
import numpy as np
import pytest

from kiosk.media import H264Encoder, Stamp, TestPattern, draw_stamp, read_stamp
from kiosk.media.stamp import check_word

EXTREMES = [
    Stamp(0, 0),
    Stamp(0xFFFF_FFFF, 0xFFFF_FFFF),
    Stamp(1, 0x8000_0000),
    Stamp(123_456, 1_733_000_000_000 & 0xFFFF_FFFF),
]


def _grey(width: int, height: int) -> np.ndarray:
    return np.full((height, width, 3), 128, dtype=np.uint8)


@pytest.mark.parametrize("stamp", EXTREMES)
@pytest.mark.parametrize(("width", "height"), [(640, 480), (1280, 720), (320, 240), (650, 366)])
def test_round_trip_on_raw_rgb(stamp: Stamp, width: int, height: int) -> None:
    rgb = _grey(width, height)
    draw_stamp(rgb, stamp)
    assert read_stamp(rgb) == stamp


def test_layout_at_640_is_as_documented() -> None:
    rgb = _grey(640, 480)
    draw_stamp(rgb, Stamp(0x8000_0000, 0))
    # White border x 16-559, y 16-95; the frame number's top bit is the cell at (32, 32).
    assert (rgb[16:96, 16:560][:, :16] == 255).all()
    assert (rgb[16:32, 16:560] == 255).all()
    assert (rgb[80:96, 16:560] == 255).all()
    assert (rgb[32:48, 32:48] == 0).all()
    assert (rgb[32:48, 48:544] == 255).all()
    assert (rgb[15, :] == 128).all()
    assert (rgb[96, :] == 128).all()
    assert (rgb[:, 560] == 128).all()


def test_check_word_is_crc32_of_big_endian_words() -> None:
    # The value any other reader must reproduce (zlib.crc32(bytes.fromhex("0000000100000002"))).
    assert check_word(1, 2) == 0xB64C_97F5


def test_round_trip_random_stamps() -> None:
    rng = random.Random(7)
    rgb = _grey(640, 480)
    for _ in range(200):
        stamp = Stamp(rng.getrandbits(32), rng.getrandbits(32))
        draw_stamp(rgb, stamp)
        assert read_stamp(rgb) == stamp


def test_draws_into_a_luma_plane() -> None:
    luma = np.full((480, 640), 128, dtype=np.uint8)
    draw_stamp(luma, Stamp(5, 6), black=16, white=235)
    assert read_stamp(np.repeat(luma[:, :, None], 3, axis=2)) == Stamp(5, 6)


def test_survives_h264_at_300_kbits_and_half_size_scaling() -> None:
    pattern = TestPattern(640, 480)
    encoder = H264Encoder(640, 480, 30, 300_000)
    decoder = av.CodecContext.create("h264", "r")
    sent = [Stamp(n, (1_700_000_000_000 + 33 * n) & 0xFFFF_FFFF) for n in range(1000, 1060)]
    full, half = [], []
    for stamp in sent:
        for packet in encoder.encode(pattern.render(stamp)):
            for frame in decoder.decode(packet):
                full.append(read_stamp(frame.to_ndarray(format="rgb24")))
                scaled = frame.reformat(width=320, height=240, format="rgb24")
                half.append(read_stamp(scaled.to_ndarray()))
    assert full == sent
    assert half == sent


def test_survives_h264_at_300_kbits_over_noise() -> None:
    # The worst case for the encoder: every bit it has goes to noise, the quantiser is coarse.
    rng = np.random.default_rng(1)
    encoder = H264Encoder(640, 480, 30, 300_000)
    decoder = av.CodecContext.create("h264", "r")
    sent = [Stamp(n, 7 * n) for n in range(20)]
    received = []
    for stamp in sent:
        rgb = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
        draw_stamp(rgb, stamp)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        for packet in encoder.encode(frame):
            for decoded in decoder.decode(packet):
                half = decoded.reformat(width=320, height=240, format="rgb24")
                received.append(read_stamp(half.to_ndarray()))
    assert received == sent


def test_corrupted_stamp_is_rejected() -> None:
    rgb = _grey(640, 480)
    draw_stamp(rgb, Stamp(42, 4242))
    # Invert one bit cell of the frame number (column 10 of row 2 at 640: x 160-175, y 32-47).
    rgb[32:48, 160:176] = 255 - rgb[32:48, 160:176]
    assert read_stamp(rgb) is None


@pytest.mark.parametrize("value", [0, 255])
def test_no_stamp_is_none(value: int) -> None:
    assert read_stamp(np.full((480, 640, 3), value, dtype=np.uint8)) is None


def test_too_small_or_out_of_range() -> None:
    assert read_stamp(_grey(640, 90)) is None
    with pytest.raises(ValueError, match="too small"):
        draw_stamp(_grey(640, 90), Stamp(1, 1))
    with pytest.raises(ValueError, match="frame_number must fit in 32 bits"):
        Stamp(2**32, 0)
    with pytest.raises(ValueError, match="capture_ms must fit in 32 bits"):
        Stamp(0, -1)
