"""The test pattern: it moves, shows the frame number legibly, carries the stamp, is cheap."""

from __future__ import annotations

import time

import numpy as np
import pytest

from kiosk.media import Stamp, TestPattern, read_stamp
from kiosk.media.testpattern import _FONT, _GLYPH_H, _GLYPH_W, MIN_DIGITS


def _luma(pattern: TestPattern, stamp: Stamp) -> np.ndarray:
    frame = pattern.render(stamp)
    assert (frame.format.name, frame.width, frame.height) == ("yuv420p", 640, 480)
    return frame.to_ndarray()[: pattern.height]


def _read_digits(luma: np.ndarray, count: int) -> str:
    """OCR by the font grid: sample the centre of each font pixel, match against the font."""
    scale, cell = 640 // 80, 640 // 40
    left, top = cell + scale, 7 * cell + scale
    text = ""
    for index in range(count):
        x0 = left + index * (_GLYPH_W + 1) * scale
        lit = tuple(
            "".join(
                "#"
                if luma[top + row * scale + scale // 2, x0 + col * scale + scale // 2] > 128
                else " "
                for col in range(_GLYPH_W)
            )
            for row in range(_GLYPH_H)
        )
        matches = [char for char, rows in _FONT.items() if rows == lit]
        text += matches[0] if matches else "?"
    return text


def test_content_moves_between_frames() -> None:
    pattern = TestPattern()
    first = _luma(pattern, Stamp(10, 0)).copy()
    second = _luma(pattern, Stamp(11, 0))
    # Below the stamp and the digits (y >= 192) only the sweeping bar can differ.
    moved = np.abs(first[192:].astype(int) - second[192:].astype(int)) > 50
    assert moved.sum() > 1000


def test_frame_number_is_printed_in_digits() -> None:
    pattern = TestPattern()
    assert _read_digits(_luma(pattern, Stamp(7, 0)), MIN_DIGITS) == "000007"
    assert _read_digits(_luma(pattern, Stamp(1_234_567_890, 0)), 10) == "1234567890"


def test_frame_carries_the_stamp() -> None:
    pattern = TestPattern(1280, 720)
    stamp = Stamp(99, 123_456_789)
    assert read_stamp(pattern.render(stamp).to_ndarray(format="rgb24")) == stamp


def test_rendering_is_cheap() -> None:
    pattern = TestPattern()
    start = time.perf_counter()
    for n in range(60):
        pattern.render(Stamp(n, n))
    per_frame = (time.perf_counter() - start) / 60
    assert per_frame < 0.02, f"{per_frame * 1000:.1f} ms per frame"  # loose: shared CI machines


@pytest.mark.parametrize(("width", "height"), [(641, 480), (640, 100)])
def test_unusable_sizes_are_refused(width: int, height: int) -> None:
    with pytest.raises(ValueError, match=f"{width}x{height}"):
        TestPattern(width, height)
