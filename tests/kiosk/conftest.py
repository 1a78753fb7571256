"""Fixtures for booth tests: real aiortc peer connections on loopback, a QR code on video."""

from __future__ import annotations

import fractions
from pathlib import Path

import aioice.ice
import av
import numpy as np
import pytest
import segno


@pytest.fixture
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice leaves 127.0.0.1 out of its host candidates; in-process peers need it."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


def qr_video(path: Path, text: str, *, seconds: float = 2.0, fps: int = 15) -> Path:
    """A short H.264 file of a QR code of ``text`` held to the camera (white around it), for a
    :class:`kiosk.media.PyAVSource` standing in for the booth's camera."""
    width, height = 640, 480
    rows = np.array(list(segno.make(text, error="m").matrix_iter(scale=6, border=4)), bool)
    side = rows.shape[0]
    picture = np.full((height, width, 3), 235, dtype=np.uint8)
    top, left = (height - side) // 2, (width - side) // 2
    picture[top : top + side, left : left + side][rows] = 16
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = fractions.Fraction(1, fps)
        for number in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
            frame.pts = number
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path
