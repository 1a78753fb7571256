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


def frame_to_grey(frame: Any) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """An av.VideoFrame as a greyscale array, scaled down to :data:`SCAN_WIDTH` at most."""
    width = min(SCAN_WIDTH, frame.width)
    height = max(1, round(frame.height * width / frame.width))
    grey: np.ndarray[Any, np.dtype[np.uint8]] = frame.to_ndarray(
        format="gray", width=width, height=height
    )
    return grey


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
