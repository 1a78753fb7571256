"""The VP8 encoder: libvpx in real-time mode, key frames first, on request and after a bit rate
change, every frame decodable by libvpx."""

from __future__ import annotations

import av
import pytest

from kiosk.media import Stamp, TestPattern, Vp8Encoder, is_vp8_keyframe, read_stamp


def _frames(count: int, width: int = 320, height: int = 240) -> list[av.VideoFrame]:
    pattern = TestPattern(width, height)
    return [pattern.render(Stamp(number, 0)) for number in range(count)]


def test_every_frame_is_one_packet_that_libvpx_decodes() -> None:
    encoder = Vp8Encoder(320, 240, 30, 300_000)
    decoder = av.CodecContext.create("libvpx", "r")
    numbers = []
    keyframes = []
    for frame in _frames(10):
        packets = encoder.encode(frame)
        assert len(packets) == 1  # no lag: each frame comes out at once
        keyframes.append(is_vp8_keyframe(bytes(packets[0])))
        for decoded in decoder.decode(packets[0]):
            stamp = read_stamp(decoded.to_ndarray(format="rgb24"))
            assert stamp is not None
            numbers.append(stamp.frame_number)
    assert numbers == list(range(10))
    assert keyframes == [True] + [False] * 9


def test_a_keyframe_on_request_and_after_a_bitrate_change() -> None:
    encoder = Vp8Encoder(320, 240, 30, 300_000)
    frames = _frames(6)
    kinds = [is_vp8_keyframe(bytes(encoder.encode(f)[0])) for f in frames[:2]]
    kinds.append(is_vp8_keyframe(bytes(encoder.encode(frames[2], keyframe=True)[0])))
    kinds.append(is_vp8_keyframe(bytes(encoder.encode(frames[3])[0])))
    encoder.bitrate = 150_000  # libvpx opened again: its first frame is a key frame
    kinds += [is_vp8_keyframe(bytes(encoder.encode(f)[0])) for f in frames[4:]]
    assert kinds == [True, False, True, False, True, False]


def test_bad_arguments_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="positive and even, got 321x240"):
        Vp8Encoder(321, 240, 30, 300_000)
    with pytest.raises(ValueError, match="at least 10000, got 300"):
        Vp8Encoder(320, 240, 30, 300)
    encoder = Vp8Encoder(320, 240, 30, 300_000)
    with pytest.raises(ValueError, match="frame is 640x480, the encoder 320x240"):
        encoder.encode(_frames(1, 640, 480)[0])


def test_the_key_frame_bit() -> None:
    assert is_vp8_keyframe(b"\x10\x02\x00")
    assert not is_vp8_keyframe(b"\x11\x02\x00")
    assert not is_vp8_keyframe(b"")
