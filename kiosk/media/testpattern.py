"""The booth's synthetic camera picture: colour bars, a sweeping bar, the frame number, the stamp.

Frames are composed directly in ``yuv420p`` (the encoder's input format) on top of a background
converted once, so a frame costs a buffer copy and a few small writes: no colour conversion per
frame. All positions are in units of the frame width, like the stamp (see ``kiosk.media.stamp``):
with ``c = W / 40``, the stamp's white box fills y ``c`` to ``6c``, the frame number is printed in
white digits on a black panel at ``(c, 7c)``, and a black-and-white bar ``2c`` wide sweeps left to
right below ``12c``.
"""

from __future__ import annotations

import logging
import time

import av
import numpy as np
import numpy.typing as npt

from kiosk.media.pacing import Pacer
from kiosk.media.source import EncoderSource
from kiosk.media.stamp import CELLS_PER_WIDTH, Stamp, draw_stamp, fits

log = logging.getLogger(__name__)

# Limited-range ("TV") luma and neutral chroma: what swscale produces from RGB by default and
# what decoders (and browsers) expect from video without colour metadata.
_Y_BLACK, _Y_WHITE, _C_NEUTRAL = 16, 235, 128

# 75 % colour bars, left to right: white, yellow, cyan, green, magenta, red, blue.
_BARS = (
    (191, 191, 191),
    (191, 191, 0),
    (0, 191, 191),
    (0, 191, 0),
    (191, 0, 191),
    (191, 0, 0),
    (0, 0, 191),
)

# A 5 x 7 bitmap font, one string per row; "#" is lit.
_FONT = {
    "0": (" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "),
    "1": ("  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "),
    "2": (" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"),
    "3": ("#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "),
    "4": ("   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "),
    "5": ("#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "),
    "6": ("  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "),
    "7": ("#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "),
    "8": (" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "),
    "9": (" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "),
}
_GLYPH_W, _GLYPH_H = 5, 7
#: Digits always shown (leading zeros keep the number from jumping about); a 32-bit frame
#: number has at most 10.
MIN_DIGITS, MAX_DIGITS = 6, 10


class TestPattern:
    """Renders test-pattern frames of ``width`` x ``height`` (both even) carrying a stamp."""

    __test__ = False  # a pytest collection hint: this is not a test class

    def __init__(self, width: int = 640, height: int = 480) -> None:
        if width % 2 or height % 2:
            raise ValueError(f"the frame size must be even, got {width}x{height}")
        if not fits(width, height) or height < 14 * width // CELLS_PER_WIDTH:
            raise ValueError(f"{width}x{height} is too small for the test pattern")
        self.width, self.height = width, height
        cell = width // CELLS_PER_WIDTH
        self._scale = max(1, width // 80)  # font pixel: 8 px at 640 wide
        self._digits_x, self._digits_y = cell + self._scale, 7 * cell + self._scale
        self._advance = (_GLYPH_W + 1) * self._scale
        self._bar_width = 2 * (cell // 2 + cell % 2)  # even: chroma is subsampled by two
        self._bar_top = (12 * cell) & ~1
        self._bar_bottom = (height - cell) & ~1
        self._bar_step = max(2, (cell // 2) & ~1)
        self._glyphs = {
            char: np.where(
                np.kron(
                    np.array([[c == "#" for c in row] for row in rows]),
                    np.ones((self._scale, self._scale), dtype=bool),
                ),
                _Y_WHITE,
                _Y_BLACK,
            ).astype(np.uint8)
            for char, rows in _FONT.items()
        }
        self._background = self._make_background()
        self._buffer = np.empty_like(self._background)

    def _make_background(self) -> npt.NDArray[np.uint8]:
        width, height, scale = self.width, self.height, self._scale
        rgb = np.zeros((height, width, 3), dtype=np.uint8)
        for index, colour in enumerate(_BARS):
            rgb[:, index * width // len(_BARS) : (index + 1) * width // len(_BARS)] = colour
        # A grey ramp along the bottom makes scaling and compression artefacts easy to see.
        rgb[height - height // 12 :, :] = np.linspace(0, 255, width, dtype=np.uint8)[None, :, None]
        # The black panel behind the digits, wide enough for the longest number.
        rgb[
            self._digits_y - scale : self._digits_y + (_GLYPH_H + 1) * scale,
            self._digits_x - scale : self._digits_x + MAX_DIGITS * self._advance,
        ] = 0
        # The stamp's white box, so that its chroma is neutral; the cells are drawn per frame.
        draw_stamp(rgb, Stamp(0, 0))
        yuv = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        return np.ascontiguousarray(yuv.to_ndarray(), dtype=np.uint8)

    def _planes(
        self, buffer: npt.NDArray[np.uint8]
    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
        # The yuv420p buffer is Y (H x W) then U and V (H/2 x W/2 each), back to back.
        width, height = self.width, self.height
        flat = buffer.reshape(-1)
        luma = width * height
        chroma = luma // 4
        return (
            flat[:luma].reshape(height, width),
            flat[luma : luma + chroma].reshape(height // 2, width // 2),
            flat[luma + chroma :].reshape(height // 2, width // 2),
        )

    def render(self, stamp: Stamp) -> av.VideoFrame:
        """The frame for ``stamp`` as a ``yuv420p`` ``av.VideoFrame`` (without pts)."""
        buffer = self._buffer
        np.copyto(buffer, self._background)
        y, u, v = self._planes(buffer)

        # Motion: a bar, black half then white half, visible on every colour, sweeping across.
        span = self.width - self._bar_width
        x = (stamp.frame_number * self._bar_step) % span & ~1
        half = self._bar_width // 2
        top, bottom = self._bar_top, self._bar_bottom
        y[top:bottom, x : x + half] = _Y_BLACK
        y[top:bottom, x + half : x + self._bar_width] = _Y_WHITE
        chroma_rows = slice(top // 2, bottom // 2)
        chroma_cols = slice(x // 2, (x + self._bar_width) // 2)
        u[chroma_rows, chroma_cols] = _C_NEUTRAL
        v[chroma_rows, chroma_cols] = _C_NEUTRAL

        text = f"{stamp.frame_number:0{MIN_DIGITS}d}"
        glyph_h, glyph_w = _GLYPH_H * self._scale, _GLYPH_W * self._scale
        for index, char in enumerate(text):
            left = self._digits_x + index * self._advance
            y[self._digits_y : self._digits_y + glyph_h, left : left + glyph_w] = self._glyphs[char]

        draw_stamp(y, stamp, black=_Y_BLACK, white=_Y_WHITE)
        return av.VideoFrame.from_ndarray(buffer, format="yuv420p")


class TestPatternSource(EncoderSource):
    """The test-pattern camera: stamped frames rendered at ``fps`` and encoded once."""

    __test__ = False
    name = "test-pattern"

    def __init__(
        self, *, width: int = 640, height: int = 480, fps: int = 30, bitrate: int = 1_000_000
    ) -> None:
        super().__init__(width=width, height=height, fps=fps, bitrate=bitrate)
        # Rendered at the configured size; the encoder scales when the rate controller steps
        # the resolution down, as it would for a real camera.
        self._pattern = TestPattern(width, height)
        self._pacer = Pacer(1 / fps)
        self._rendered = 0

    async def _wait_for_frame(self) -> None:
        await self._pacer.next_slot()

    def _capture(self) -> av.VideoFrame:
        stamp = Stamp(
            frame_number=self._rendered & 0xFFFF_FFFF,
            capture_ms=int(time.time() * 1000) & 0xFFFF_FFFF,
        )
        self._rendered += 1
        return self._pattern.render(stamp)
