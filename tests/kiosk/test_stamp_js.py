"""``server/static/js/stamp.js`` reads the stamps ``kiosk/media/stamp.py`` draws, in Chromium."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from kiosk.media import H264Encoder, Stamp, TestPattern, draw_stamp
from kiosk.media.stamp import check_word
from tests.components import CHROMIUM, require

JS_DIR = Path(__file__).resolve().parents[2] / "server" / "static" / "js"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Draws a PNG into a canvas at `scale` of its size (with the browser's own smoothing, as when a
# video is shown smaller) and reads the stamp from the canvas pixels.
READ_PNG = """
async ({ url, scale }) => {
  const { readStamp } = await import('/js/stamp.js');
  const image = new Image();
  image.src = url;
  await image.decode();
  const canvas = document.createElement('canvas');
  canvas.width = Math.round(image.naturalWidth * scale);
  canvas.height = Math.round(image.naturalHeight * scale);
  const g = canvas.getContext('2d', { willReadFrequently: true });
  g.drawImage(image, 0, 0, canvas.width, canvas.height);
  return readStamp(g.getImageData(0, 0, canvas.width, canvas.height));
}
"""


def _png_url(rgb: np.ndarray) -> str:
    height, width = rgb.shape[:2]
    encoder = av.CodecContext.create("png", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "rgb24"
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    data = b"".join(bytes(packet) for packet in [*encoder.encode(frame), *encoder.encode(None)])
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _pattern_rgb(width: int, height: int, stamp: Stamp) -> np.ndarray:
    rgb: np.ndarray = TestPattern(width, height).render(stamp).to_ndarray(format="rgb24")
    return rgb


def _h264_decoded_rgb(stamp: Stamp) -> np.ndarray:
    encoder = H264Encoder(640, 480, 30, 300_000)
    decoder = av.CodecContext.create("h264", "r")
    pattern = TestPattern()
    frames = []
    for n in range(stamp.frame_number - 9, stamp.frame_number + 1):
        for packet in encoder.encode(pattern.render(Stamp(n, stamp.capture_ms))):
            frames.extend(decoder.decode(packet))
    rgb: np.ndarray = frames[-1].to_ndarray(format="rgb24")
    return rgb


async def _index(_: web.Request) -> web.Response:
    return web.Response(text="<!doctype html><title>stamp.js</title>", content_type="text/html")


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    require(CHROMIUM, "the browser that runs the advisor's stamp reader (Debian package chromium)")
    from playwright.async_api import async_playwright

    app = web.Application()
    # Module scripts must come from the page's own origin.
    app.router.add_get("/", _index)
    app.router.add_static("/js/", JS_DIR)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()
                await page.goto(str(server.make_url("/")))
                yield page
            finally:
                await browser.close()
    finally:
        await server.close()


async def _read(page: Any, rgb: np.ndarray, scale: float = 1.0) -> dict[str, int] | None:
    result: dict[str, int] | None = await page.evaluate(
        READ_PNG, {"url": _png_url(rgb), "scale": scale}
    )
    return result


async def test_js_reads_what_python_draws(page: Any) -> None:
    cases = [
        (_pattern_rgb(640, 480, Stamp(123_456, 0xDEAD_BEEF)), Stamp(123_456, 0xDEAD_BEEF)),
        (_pattern_rgb(1280, 720, Stamp(0xFFFF_FFFF, 0)), Stamp(0xFFFF_FFFF, 0)),
        (_h264_decoded_rgb(Stamp(5000, 1_234_567)), Stamp(5000, 1_234_567)),
    ]
    for rgb, stamp in cases:
        expected = {"frameNumber": stamp.frame_number, "captureMs": stamp.capture_ms}
        assert await _read(page, rgb) == expected
        assert await _read(page, rgb, scale=0.5) == expected


async def test_js_check_word_matches_python(page: Any) -> None:
    pairs = [(0, 0), (1, 2), (0xFFFF_FFFF, 0x8000_0001), (123_456, 0xDEAD_BEEF)]
    words = await page.evaluate(
        """async (pairs) => {
          const { checkWord } = await import('/js/stamp.js');
          return pairs.map(([f, t]) => checkWord(f, t));
        }""",
        pairs,
    )
    assert words == [check_word(f, t) for f, t in pairs]


async def test_js_rejects_a_corrupted_or_missing_stamp(page: Any) -> None:
    rgb = np.full((480, 640, 3), 128, dtype=np.uint8)
    assert await _read(page, rgb) is None
    draw_stamp(rgb, Stamp(42, 4242))
    assert await _read(page, rgb) == {"frameNumber": 42, "captureMs": 4242}
    rgb[32:48, 160:176] = 255 - rgb[32:48, 160:176]  # one bit cell of the frame number
    assert await _read(page, rgb) is None
