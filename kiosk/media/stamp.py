"""The machine-readable stamp burned into every test-pattern frame.

The stamp carries the frame number and the capture time so that a receiver (the advisor's
browser, a test, a screenshot tool) can tell which frame it sees and how old it is.

Layout (exact; ``server/static/js/stamp.js`` implements the same reader):

* Everything is measured in *cells* of ``W / 40`` pixels, where ``W`` is the frame width, in
  both directions (16 px at 640 px wide; 8 px in a half-size copy). Cell ``k`` spans the pixels
  ``floor(k * W / 40)`` up to, not including, ``floor((k + 1) * W / 40)``, counted from the
  frame's left edge for columns and from its top edge for rows.
* A white quiet border fills cell columns 1 to 34 and cell rows 1 to 5 (inclusive). Inside it,
  cell rows 2, 3 and 4 each hold one 32-bit word in cell columns 2 to 33, most significant bit
  first (column 2). A black cell is a 1 bit, a white cell a 0 bit.
* Row 2 is the frame number, row 3 the capture time (wall-clock milliseconds since the Unix
  epoch, low 32 bits), row 4 the check word: CRC-32 (IEEE 802.3, as ``zlib.crc32``) of the 8
  bytes frame number then capture time, both big-endian.
* To read a cell, take the pixel at ``x = floor((2 * column + 1) * W / 80)``,
  ``y = floor((2 * row + 1) * W / 80)`` (the cell's centre) and compute its luma as
  ``299 * R + 587 * G + 114 * B``: below ``128000`` (that is, below 128 on a 0-255 scale) is
  black. A stamp whose check word does not match is no stamp.

At 640 x 480 the white border is the rectangle x 16-559, y 16-95 and the bits are 16 x 16 px
cells starting at (32, 32). The stamp needs a frame at least 6 cells (``0.15 * W``) high.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

#: The frame width is divided into this many cells.
CELLS_PER_WIDTH = 40
#: Bits per row (one 32-bit word).
BITS = 32
#: Data rows: frame number, capture time, check word.
ROWS = 3
#: Cell column and row of the most significant bit of the frame number.
FIRST_CELL = 2
#: Below this, ``299 R + 587 G + 114 B`` (luma times 1000) is a black cell.
LUMA_THRESHOLD = 128_000

_WORD = 0xFFFF_FFFF
# The quiet border is one cell wide around the data cells.
_BOX_FIRST = FIRST_CELL - 1
_BOX_COLUMNS = BITS + 2
_BOX_ROWS = ROWS + 2


@dataclass(frozen=True)
class Stamp:
    """What one frame carries: its number and when it was captured (both 32-bit)."""

    frame_number: int
    capture_ms: int

    def __post_init__(self) -> None:
        for name in ("frame_number", "capture_ms"):
            value = getattr(self, name)
            if not 0 <= value <= _WORD:
                raise ValueError(f"{name} must fit in 32 bits, got {value}")


def check_word(frame_number: int, capture_ms: int) -> int:
    """The stamp's check word: CRC-32 of both values as big-endian 32-bit words."""
    # A CRC rather than a plain XOR of the two words: with XOR, two cells misread in the same
    # column of two rows (a vertical smear across the stamp) would cancel out unnoticed.
    data = frame_number.to_bytes(4, "big") + capture_ms.to_bytes(4, "big")
    return zlib.crc32(data) & _WORD


def _edges(width: int, count: int) -> npt.NDArray[np.intp]:
    """Pixel edges of cells ``_BOX_FIRST .. _BOX_FIRST + count`` (count + 1 values)."""
    cells = np.arange(_BOX_FIRST, _BOX_FIRST + count + 1)
    return (cells * width) // CELLS_PER_WIDTH


def _bits(stamp: Stamp) -> npt.NDArray[np.bool_]:
    words = np.array(
        [
            stamp.frame_number,
            stamp.capture_ms,
            check_word(stamp.frame_number, stamp.capture_ms),
        ],
        dtype=np.uint64,
    )
    shifts = np.arange(BITS - 1, -1, -1, dtype=np.uint64)
    bits = (words[:, None] >> shifts[None, :]) & np.uint64(1)
    return bits.astype(np.bool_)


def fits(width: int, height: int) -> bool:
    """Whether a frame of this size can hold a stamp."""
    return (
        width >= CELLS_PER_WIDTH and height >= (_BOX_FIRST + _BOX_ROWS) * width // CELLS_PER_WIDTH
    )


def draw_stamp(
    image: npt.NDArray[np.uint8], stamp: Stamp, *, black: int = 0, white: int = 255
) -> None:
    """Draw ``stamp`` into ``image`` in place.

    ``image`` is RGB ``(H, W, 3)`` uint8, or a single plane ``(H, W)`` such as the luma plane of
    a YUV frame (then pass ``black=16, white=235`` for limited-range video).
    """
    height, width = image.shape[:2]
    if not fits(width, height):
        raise ValueError(f"a {width}x{height} frame is too small for a stamp")
    x_edges = _edges(width, _BOX_COLUMNS)
    y_edges = _edges(width, _BOX_ROWS)
    # One value per cell of the box, border included, then each cell repeated to its pixel size:
    # cells may differ by a pixel when the width is not a multiple of 40.
    cells = np.full((_BOX_ROWS, _BOX_COLUMNS), white, dtype=np.uint8)
    cells[1:-1, 1:-1][_bits(stamp)] = black
    block = np.repeat(np.repeat(cells, np.diff(y_edges), axis=0), np.diff(x_edges), axis=1)
    target = image[y_edges[0] : y_edges[-1], x_edges[0] : x_edges[-1]]
    if target.ndim == 3:
        target[...] = block[:, :, None]
    else:
        target[...] = block


def read_stamp(rgb: npt.NDArray[np.uint8]) -> Stamp | None:
    """The stamp in an RGB ``(H, W, 3)`` uint8 image, or None if there is no valid one.

    The image may be a scaled copy of the frame, as long as the aspect ratio is kept.
    """
    height, width = rgb.shape[:2]
    if rgb.ndim != 3 or rgb.shape[2] < 3 or not fits(width, height):
        return None
    xs, ys = cell_centres(width)
    return stamp_from_cells(rgb[ys[:, None], xs[None, :], :3])


def cell_centres(width: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Where a reader samples a frame ``width`` pixels wide: the pixel columns of the bit
    cells' centres (most significant first) and the pixel rows of the three words'."""
    columns = np.arange(FIRST_CELL, FIRST_CELL + BITS)
    rows = np.arange(FIRST_CELL, FIRST_CELL + ROWS)
    xs = ((2 * columns + 1) * width) // (2 * CELLS_PER_WIDTH)
    ys = ((2 * rows + 1) * width) // (2 * CELLS_PER_WIDTH)
    return xs, ys


def stamp_from_cells(samples: npt.NDArray[np.uint8]) -> Stamp | None:
    """The stamp from the RGB pixels at :func:`cell_centres` (``(3, 32, 3)``: a row per word,
    a column per bit), or None if its check word does not match."""
    luma = samples[..., :3].astype(np.int64) @ np.array([299, 587, 114], dtype=np.int64)
    ones = luma < LUMA_THRESHOLD
    words = [int("".join("1" if bit else "0" for bit in row), 2) for row in ones]
    frame_number, capture_ms, check = words
    if check != check_word(frame_number, capture_ms):
        return None
    return Stamp(frame_number=frame_number, capture_ms=capture_ms)
