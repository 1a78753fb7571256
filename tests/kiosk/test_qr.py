"""The booth reads an appointment's QR code (as the server prints it) from camera frames."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import segno

from kiosk.flow import CheckCode, CodeChecked, Flow, LinkUp, QrCodeRead, Start, State
from kiosk.flow import ChooseAppointment as Appointment
from kiosk.qr import frame_to_grey, read_codes, scan


def _camera_frame(text: str, *, width: int = 1280, height: int = 720) -> av.VideoFrame:
    """A grey scene with the QR code held up somewhat off-centre, as a camera would see it."""
    modules = np.array(
        [[1 if dark else 0 for dark in row] for row in segno.make(text, error="m").matrix],
        dtype=np.uint8,
    )
    code = np.kron(1 - modules, np.ones((8, 8), dtype=np.uint8)) * 255
    code = np.pad(code, 32, constant_values=255)  # the quiet zone: white paper around it
    scene = np.full((height, width, 3), 96, dtype=np.uint8)
    top, left = 120, 500
    scene[top : top + code.shape[0], left : left + code.shape[1], :] = code[..., None]
    return av.VideoFrame.from_ndarray(scene, format="rgb24")


def test_the_invitations_qr_code_gives_the_code() -> None:
    link = (
        "https://video.example.org/join/3J0z7-Q2kT9u8dPqLw1xYb4sN5mA6cE0fH2gR3iK4lM?code=04711234"
    )
    frame = _camera_frame(link)
    grey = frame.to_ndarray(format="gray")
    assert read_codes(grey) == [link]
    flow = Flow()
    flow.handle(LinkUp(), 0.0)
    flow.handle(Start(), 1.0)
    flow.handle(Appointment(), 1.0)
    assert flow.handle(QrCodeRead(link), 2.0) == [CheckCode(code="04711234")]
    flow.handle(CodeChecked(code="04711234"), 2.5)  # the server says it opens one now
    assert flow.state is State.CONSENT
    assert flow.visit.code == "04711234"


def test_a_frame_without_a_code_reads_nothing() -> None:
    blank = np.full((480, 640), 128, dtype=np.uint8)
    assert read_codes(blank) == []


async def test_scanning_reports_each_new_text_once() -> None:
    frames: list[Any] = [None, _camera_frame("12345678"), _camera_frame("12345678")]
    found: list[str] = []

    def latest() -> Any:
        return frames[0] if len(frames) == 1 else frames.pop(0)

    task = asyncio.create_task(scan(latest, found.append, rate=100.0))
    for _ in range(100):
        if found:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    task.cancel()
    assert found == ["12345678"]


RACE = """
import threading, time
import av, numpy as np
from kiosk.qr import frame_to_grey
frame = av.VideoFrame.from_ndarray(
    np.random.default_rng(1).integers(0, 255, (720 * 3 // 2, 1280), dtype=np.uint8),
    format="yuv420p",
)
stop = threading.Event()
def scanning():
    while not stop.is_set():
        frame_to_grey(frame)
scanner = threading.Thread(target=scanning)
scanner.start()
end = time.monotonic() + {seconds}
while time.monotonic() < end:  # the screen converting the same self-view frame meanwhile
    frame.to_ndarray(format="rgb24", width=960, height=540)
stop.set()
scanner.join()
print("converted alongside")
"""


def test_the_scan_and_the_screen_read_one_frame_at_once_without_crashing() -> None:
    # The self-view frame is converted for the screen on the event loop while the scan
    # reads it in a worker thread. Through PyAV's reformat both share the frame's one
    # swscale context: that crashed (SIGSEGV) within a second here, and under emulation it
    # also hung the booth's loop until its watchdog killed it.
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", RACE.format(seconds=3)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-2000:]}"
    assert "converted alongside" in result.stdout


def test_grey_from_each_kind_of_frame_is_the_luma_scaled_down() -> None:
    frame = _camera_frame("12345678")
    for name in ("rgb24", "bgr24", "yuv420p", "nv12", "gray"):
        grey = frame_to_grey(frame if name == "rgb24" else frame.reformat(format=name))
        assert grey.shape == (360, 640), name
        assert read_codes(grey) == ["12345678"], name
        assert abs(int(grey[0, 0]) - 96) <= 2, name  # the grey scene, by any route
    assert frame_to_grey(av.VideoFrame(1918, 1078, "yuv420p")).shape == (539, 959)
    with pytest.raises(ValueError, match="rgba"):
        frame_to_grey(av.VideoFrame(64, 64, "rgba"))
