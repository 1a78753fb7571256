"""Reading an appointment's QR code with the booth's own camera (zxing-cpp).

While the code-entry screen is shown, the newest self-view frame is decoded a few times a
second in a worker thread; every distinct text found is handed to the flow, which keeps the
8-digit code of an appointment link and ignores anything else people hold up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import zxingcpp

log = logging.getLogger(__name__)

#: Decodes per second: enough to feel instant, little enough to leave the CPU to the screen.
SCANS_PER_SECOND = 4.0
#: Frames are scaled to this width before decoding (a QR code held up fills much of it).
SCAN_WIDTH = 640


def read_codes(image: np.ndarray[Any, np.dtype[np.uint8]]) -> list[str]:
    """The texts of the QR codes in a greyscale (height, width) or RGB (height, width, 3) image."""
    results = zxingcpp.read_barcodes(
        image, formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
    )
    return [r.text for r in results if r.valid and r.text]


#: Formats whose first plane is the picture's luma: that plane is a greyscale image as it is.
_LUMA_FIRST = frozenset(
    {"gray", "yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21"}
)
#: ITU-R BT.601 weights of red, green and blue in luma.
_RGB_WEIGHTS = {"rgb24": (0.299, 0.587, 0.114), "bgr24": (0.114, 0.587, 0.299)}


def frame_to_grey(frame: Any) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """An av.VideoFrame as a greyscale array, reduced to :data:`SCAN_WIDTH` or a little more.

    Read from the frame's own planes with numpy, never through ``frame.reformat()``: the
    frame is the self-view's, which the screen converts on the event loop at the same time,
    and PyAV gives each frame one swscale context, so two threads converting one frame at
    once share it and crash the process (SIGSEGV) or hang in its slice threads.
    """
    name = frame.format.name
    plane = frame.planes[0]
    rows = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(-1, plane.line_size)
    if name in _LUMA_FIRST:
        grey = rows[: frame.height, : frame.width]
    elif name in _RGB_WEIGHTS:
        pixels = rows[: frame.height, : frame.width * 3].reshape(frame.height, frame.width, 3)
        grey = (pixels @ np.array(_RGB_WEIGHTS[name], dtype=np.float32)).astype(np.uint8)
    else:
        raise ValueError(f"no greyscale reading for {name} frames")
    return _reduced(grey)


def _reduced(grey: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """``grey`` shrunk by a whole factor (the mean of each square) to about SCAN_WIDTH."""
    height, width = grey.shape
    factor = width // SCAN_WIDTH
    if factor <= 1:
        return np.ascontiguousarray(grey, dtype=np.uint8)
    height, width = height // factor * factor, width // factor * factor
    total = np.zeros((height // factor, width // factor), dtype=np.uint32)
    for row in range(factor):
        for column in range(factor):
            total += grey[row:height:factor, column:width:factor]
    return (total // (factor * factor)).astype(np.uint8)


def _decode(frame: Any) -> list[str]:
    return read_codes(frame_to_grey(frame))


async def scan(
    latest_frame: Callable[[], Any],
    found: Callable[[str], None],
    *,
    rate: float = SCANS_PER_SECOND,
) -> None:
    """Decode the newest frame ``rate`` times a second until cancelled; report new texts."""
    seen: set[str] = set()
    last = None
    while True:
        frame = latest_frame()
        if frame is not None and frame is not last:
            last = frame
            try:
                texts = await asyncio.to_thread(_decode, frame)
            except (ValueError, RuntimeError) as exc:  # a frame the decoder cannot take
                log.debug("QR scan skipped a frame: %s", exc)
                texts = []
            for text in texts:
                if text not in seen:
                    seen.add(text)
                    log.info("a QR code was read")  # never its text: it may carry a code
                    found(text)
        await asyncio.sleep(1 / rate)
