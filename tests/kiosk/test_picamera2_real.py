"""Picamera2Source and the fake against the real picamera2 (the PyPI wheel, 0.3.38) with PyAV.

picamera2 needs libcamera's Python binding, which exists only on a Raspberry Pi. Everything
above it is pure Python, so these tests import the real wheel with a stand-in for that binding
(and for pykms, the DRM preview's binding, which is imported but never used) and run its real
code: ``Picamera2``'s event loop (``NullPreview`` calling ``process_requests``), its job queue
(``capture_array``, ``stop``, ``cancel_all_and_flush``, ``close``), ``CameraManager``,
``CompletedRequest`` and ``MappedArray``, the ``LibavH264Encoder`` (a Pi 5's ``H264Encoder``)
with PyAV's libx264, and the ``Output`` class.

What stands in, and nothing else:

- ``libcamera``: the names picamera2 reads when it is imported, and a camera whose frames are
  memfd buffers filled by a thread at the frame rate (``_Sensor``); completed requests reach
  picamera2 through ``CameraManager.event_fd`` and ``get_ready_requests()``, as from libcamera.
- ``_StandInCamera``: ``Picamera2`` with the four methods that ask libcamera about the sensor
  (``__init__``, ``create_video_configuration``, ``configure_``) replaced; the configuration is
  taken as asked for, with YUV420 rows padded to 64 bytes as on a Pi.
- ``_MemfdAllocator``: picamera2's ``Allocator`` base class over memfd buffers instead of
  ``/dev/dma_heap`` (also where ``close()`` makes a fresh ``DmaAllocator``).

The V4L2 encoder (a Pi 4's) needs ``/dev/video11``: only its buffer filter is run here. A real
board runs ``tests/kiosk/test_picamera2_source.py::test_real_pi_camera`` (``VIDEOBOOTH_PI=1``).

Every scenario also runs against :class:`FakePicamera2`, so the fake is held to the same
behaviour. Without picamera2 installed (the ``dev`` extra) these tests skip, and fail in CI.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import importlib
import mmap
import os
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError
from typing import Any

import numpy as np
import pytest

from kiosk.media import EncodedFrame, SourceError, nal_unit_types
from kiosk.media.fake_picamera2 import FakeCamera, FakePicamera2
from kiosk.media.h264 import NAL_IDR, NAL_PPS, NAL_SPS
from kiosk.media.h264 import H264Encoder as X264Encoder
from kiosk.media.picamera2_source import Picamera2Source
from tests.components import unavailable

pytestmark = [
    # picamera2's NullPreview calls Thread.setDaemon().
    pytest.mark.filterwarnings("ignore:setDaemon\\(\\) is deprecated:DeprecationWarning"),
]

WIDTH, HEIGHT, FPS = 320, 240, 30
#: How long a stop may take before it counts as hung.
STOP_BOUND = 5.0


# -- the stand-ins ---------------------------------------------------------------------------


class _Transform:
    def __init__(self, hflip: int = 0, vflip: int = 0, transpose: int = 0) -> None:
        self.hflip, self.vflip, self.transpose = hflip, vflip, transpose


class _ColorSpace:
    @classmethod
    def _standard(cls) -> _ColorSpace:
        return cls()

    Sycc = Smpte170m = Rec709 = Raw = _standard


def _libcamera_standin() -> types.ModuleType:
    """The names picamera2 0.3.38 reads from ``libcamera`` on import and on the paths run."""
    libcamera = types.ModuleType("libcamera")
    for name in (
        "Camera",
        "CameraConfiguration",
        "CameraManager",
        "ControlType",
        "FrameBuffer",
        "PixelFormat",
        "Rectangle",
        "SensorConfiguration",
        "Size",
    ):  # in annotations and type checks only
        setattr(libcamera, name, type(name, (), {}))
    libcamera.Transform = _Transform  # type: ignore[attr-defined]
    libcamera.ColorSpace = _ColorSpace  # type: ignore[attr-defined]
    libcamera.Orientation = enum.Enum(  # type: ignore[attr-defined]
        "Orientation",
        "Rotate0 Rotate0Mirror Rotate180Mirror Rotate180 Rotate90Mirror Rotate270 Rotate90 "
        "Rotate270Mirror",
    )
    libcamera.StreamRole = enum.Enum(  # type: ignore[attr-defined]
        "StreamRole", "StillCapture Raw VideoRecording Viewfinder"
    )
    libcamera.controls = types.SimpleNamespace(  # type: ignore[attr-defined]
        SensorTimestamp="SensorTimestamp",
        ExposureTime="ExposureTime",
        AnalogueGain="AnalogueGain",
    )
    libcamera.FrameMetadata = types.SimpleNamespace(  # type: ignore[attr-defined]
        Status=enum.Enum("Status", "Success Error Cancelled")
    )
    libcamera.Request = types.SimpleNamespace(  # type: ignore[attr-defined]
        Status=enum.Enum("Status", "Pending Complete Cancelled")
    )
    return libcamera


def _pykms_standin() -> types.ModuleType:
    pykms = types.ModuleType("pykms")
    formats = "ABGR8888 BGR888 NV12 NV21 RGB888 XBGR8888 XRGB8888 YUV420 YUYV YVU420 YVYU"
    pykms.PixelFormat = types.SimpleNamespace(  # type: ignore[attr-defined]
        **{name: name for name in formats.split()}
    )
    return pykms


@pytest.fixture(scope="module")
def picamera2() -> Iterator[Any]:
    """The real ``picamera2`` package, imported over the stand-ins; removed again afterwards
    (other tests must see the machine as it is)."""
    if importlib.util.find_spec("picamera2") is None:
        unavailable("picamera2 is not installed (pip install -e '.[dev]')")
    saved = {name: sys.modules.get(name) for name in ("libcamera", "pykms")}
    sys.modules["libcamera"] = _libcamera_standin()
    sys.modules["pykms"] = _pykms_standin()
    try:
        package = importlib.import_module("picamera2")
        importlib.import_module("picamera2.encoders.v4l2_encoder")
        # Picamera2.close() makes a fresh DmaAllocator for the next configure(), which opens
        # /dev/dma_heap: the allocator base class takes its place.
        allocator = importlib.import_module("picamera2.allocators.allocator")
        sys.modules["picamera2.picamera2"].DmaAllocator = allocator.Allocator
        yield package
    finally:
        for name in [n for n in sys.modules if n == "picamera2" or n.startswith("picamera2.")]:
            del sys.modules[name]
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


class _Buffer:
    """A ``libcamera.FrameBuffer`` of one plane, in a memfd."""

    def __init__(self, size: int, status: Any) -> None:
        fd = os.memfd_create("frame")
        os.ftruncate(fd, size)
        self.size = size
        self.planes = [types.SimpleNamespace(fd=fd, length=size)]
        self.metadata = types.SimpleNamespace(
            status=status, planes=[types.SimpleNamespace(bytes_used=size)]
        )

    def fill(self, value: int) -> None:
        with mmap.mmap(self.planes[0].fd, self.size) as mapped:
            mapped[:] = bytes([value]) * self.size

    def close(self) -> None:
        os.close(self.planes[0].fd)


class _Stream:
    """A ``libcamera.Stream``."""

    def __init__(self, name: str) -> None:
        self.name = name


class _Request:
    """A ``libcamera.Request``."""

    def __init__(self, cookie: int) -> None:
        self.cookie = cookie
        self.buffers: dict[Any, _Buffer] = {}
        self.metadata: dict[str, int] = {}
        self.status: Any = None

    def add_buffer(self, stream: Any, buffer: _Buffer) -> None:
        self.buffers[stream] = buffer

    def reuse(self) -> None:
        self.status = None

    def set_control(self, control: Any, value: Any) -> None:
        pass


class _Sensor:
    """A ``libcamera.Camera`` with its ``CameraManager``: a thread completes the queued
    requests at the frame rate (or one per :meth:`trigger`), each frame a new grey level."""

    def __init__(self, libcamera: Any, camera_num: int) -> None:
        self._libcamera = libcamera
        self.camera_num = camera_num
        self.event_fd, self._event_w = os.pipe2(os.O_NONBLOCK)
        self._lock = threading.Lock()
        self._queued: list[_Request] = []
        self._ready: list[_Request] = []
        self._thread: threading.Thread | None = None
        self._running = threading.Event()
        self._trigger = threading.Semaphore(0)
        #: Frames only on trigger() (else at FPS).
        self.manual = False
        #: No more frames, as with a loose cable.
        self.disconnected = False
        #: Make the next start() fail as libcamera does when the camera is busy.
        self.fail_next_start = False
        self.frames = 0

    # libcamera.CameraManager
    def get_ready_requests(self) -> list[_Request]:
        with self._lock:
            ready, self._ready = self._ready, []
        while True:
            try:
                if not os.read(self.event_fd, 64):
                    break
            except BlockingIOError:
                break
        return ready

    # libcamera.Camera
    def create_request(self, cookie: int) -> _Request:
        return _Request(cookie)

    def queue_request(self, request: _Request) -> None:
        with self._lock:
            self._queued.append(request)

    def start(self, controls: Any) -> None:
        if self.fail_next_start:
            self.fail_next_start = False
            raise RuntimeError("Failed to start camera: Device or resource busy")
        self._running.set()
        self._thread = threading.Thread(target=self._run, name="standin-libcamera", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._running.clear()
        self._trigger.release()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            self._queued = []

    def release(self) -> None:
        pass

    def close_pipe(self) -> None:
        """After the test (picamera2's CameraManager may still look at it until then)."""
        os.close(self._event_w)
        os.close(self.event_fd)

    def trigger(self) -> None:
        self._trigger.release()

    def _run(self) -> None:
        while self._running.is_set():
            if self.manual:
                self._trigger.acquire()
            else:
                time.sleep(1 / FPS)
            if not self._running.is_set() or self.disconnected:
                continue
            with self._lock:
                request = self._queued.pop(0) if self._queued else None
            if request is None:
                continue  # every buffer is held by picamera2: the frame is lost
            self.frames += 1
            for buffer in request.buffers.values():
                buffer.fill(16 + self.frames * 7 % 200)
            request.metadata[self._libcamera.controls.SensorTimestamp] = time.monotonic_ns()
            request.status = self._libcamera.Request.Status.Complete
            with self._lock:
                self._ready.append(request)
            os.write(self._event_w, b"\x00")


def _real_pi5(picamera2: Any) -> Any:
    """A module like ``picamera2`` on a Pi 5 (where ``encoders.H264Encoder`` is
    ``LibavH264Encoder``), whose ``Picamera2`` is the real one over :class:`_Sensor`."""
    from picamera2.allocators.allocator import Allocator, Sync
    from picamera2.encoders import LibavH264Encoder
    from picamera2.picamera2 import CameraManager
    from picamera2.request import Helpers

    libcamera = sys.modules["libcamera"]

    class MemfdSync(Sync):  # type: ignore[misc]
        """As the DmaAllocator's: the buffer's lasting mapping (without DMA_BUF syncs)."""

        def __init__(self, allocator: Any, buffer: _Buffer, write: bool) -> None:
            self._mapping = allocator.mapped_buffers[buffer]

        def __enter__(self) -> mmap.mmap:
            return self._mapping

        def __exit__(self, *exc: object) -> None:
            pass

    class MemfdAllocator(Allocator):  # type: ignore[misc]
        """As picamera2's DmaAllocator, over memfds: buffers mapped once, for their life."""

        def __init__(self) -> None:
            super().__init__()
            self.sync = MemfdSync
            self._buffers: dict[Any, list[_Buffer]] = {}
            self.mapped_buffers: dict[_Buffer, mmap.mmap] = {}

        def allocate_streams(self, sizes: dict[Any, int], count: int) -> None:
            self.close()
            status = libcamera.FrameMetadata.Status.Success
            self._buffers = {
                stream: [_Buffer(size, status) for _ in range(count)]
                for stream, size in sizes.items()
            }
            self.mapped_buffers = {
                buffer: mmap.mmap(buffer.planes[0].fd, buffer.size)
                for buffers in self._buffers.values()
                for buffer in buffers
            }

        def buffers(self, stream: Any) -> list[_Buffer]:
            return self._buffers[stream]

        def close(self) -> None:
            for mapping in self.mapped_buffers.values():
                with contextlib.suppress(BufferError):  # a frame still refers to it
                    mapping.close()
            for buffers in self._buffers.values():
                for buffer in buffers:
                    buffer.close()
            self._buffers, self.mapped_buffers = {}, {}

    class StandInCamera(picamera2.Picamera2):  # type: ignore[misc]
        def __init__(self, camera_num: int = 0) -> None:
            # What Picamera2.__init__ sets up, with the sensor's side from _Sensor.
            self.notifyme_r, self.notifyme_w = os.pipe2(os.O_NONBLOCK)
            self.notifymeread = os.fdopen(self.notifyme_r, "rb")
            self._preview = None
            self.is_open = False
            self.camera_idx = camera_num
            self.request_lock = threading.Lock()
            self._requestslock = threading.Lock()
            self._requests: list[Any] = []
            self.verbose_console = 0
            self._reset_flags()
            self.helpers = Helpers(self)
            self.sensor = self.camera = _Sensor(libcamera, camera_num)
            self.sensor.manual = module.manual_frames
            self.camera_ctrl_info = {
                "FrameDurationLimits": (None, types.SimpleNamespace(min=33333, max=33333))
            }
            self.allocator = MemfdAllocator()
            self._cm = CameraManager()
            self._cm._cms = self.sensor
            self._cm.add(camera_num, self)
            self.is_open = True
            module.cameras.append(self)

        def create_video_configuration(
            self,
            main: dict[str, Any] | None = None,
            lores: dict[str, Any] | None = None,
            controls: dict[str, Any] | None = None,
            **_others: Any,
        ) -> dict[str, Any]:
            return {
                "use_case": "video",
                "main": dict(main or {}),
                "lores": dict(lores) if lores else None,
                "raw": None,
                "controls": dict(controls or {}),
                "display": "main",
                "encode": "main",
                "queue": True,
                "buffer_count": 6,
            }

        def configure_(self, camera_config: dict[str, Any]) -> None:
            if self.started:
                raise RuntimeError("Camera must be stopped before configuring")
            config = dict(camera_config)
            self.stream_map = {"raw": None}
            sizes = {}
            for name in ("main", "lores"):
                if config.get(name) is None:
                    self.stream_map[name] = None
                    continue
                stream = config[name] = dict(config[name])
                width, height = stream["size"]
                stream["stride"] = -(-width // 64) * 64
                stream["framesize"] = stream["stride"] * height * 3 // 2
                self.stream_map[name] = _Stream(name)
                sizes[self.stream_map[name]] = stream["framesize"]
            self.streams = list(sizes)
            self.allocator.allocate_streams(sizes, config["buffer_count"])
            self.display_stream_name = self.encode_stream_name = "main"
            self._max_queue_len = 1
            self.camera_config = config
            self.configure_count += 1

    module = types.SimpleNamespace(
        Picamera2=StandInCamera,
        MappedArray=picamera2.MappedArray,
        encoders=types.SimpleNamespace(
            H264Encoder=LibavH264Encoder, LibavH264Encoder=LibavH264Encoder
        ),
        outputs=importlib.import_module("picamera2.outputs"),
        cameras=[],
        manual_frames=False,
    )
    return module


@pytest.fixture
def real_pi5(picamera2: Any) -> Iterator[Any]:
    """The real picamera2 over the stand-ins, as on a Pi 5."""
    module = _real_pi5(picamera2)
    yield module
    for camera in module.cameras:
        camera.close()
        camera.sensor.close_pipe()


@pytest.fixture(params=["fake", "real"])
def pi5(request: pytest.FixtureRequest) -> Any:
    """A Pi 5's picamera2: the fake, or the real one over the stand-ins."""
    if request.param == "fake":
        return FakePicamera2(platform="pisp")
    return request.getfixturevalue("real_pi5")


# -- helpers for both ------------------------------------------------------------------------


def _only_camera(module: Any) -> Any:
    assert len(module.cameras) == 1
    return module.cameras[0]


def _processing(camera: Any) -> bool:
    """Whether picamera2's processing thread (the fake's camera thread) runs."""
    if isinstance(camera, FakeCamera):
        return camera.processing
    preview = camera._preview
    return preview is not None and preview.thread.is_alive()


def _jobs(camera: Any) -> list[Any]:
    return list(camera._jobs if isinstance(camera, FakeCamera) else camera._job_list)


def _disconnect(camera: Any) -> None:
    if isinstance(camera, FakeCamera):
        camera.disconnect()
    else:
        camera.sensor.disconnected = True


def _source(module: Any, **kwargs: Any) -> Picamera2Source:
    settings: dict[str, Any] = {
        "width": WIDTH,
        "height": HEIGHT,
        "fps": FPS,
        "bitrate": 300_000,
        "preview_width": 160,
        "frame_timeout": 3.0,
        "picamera2_module": module,
    }
    return Picamera2Source(**(settings | kwargs))


def _idr_with_headers(frame: EncodedFrame) -> bool:
    types_ = nal_unit_types(frame.data)
    return frame.keyframe and NAL_IDR in types_ and {NAL_SPS, NAL_PPS} <= set(types_)


async def _until(condition: Callable[[], bool], what: str, within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {within:g} s")
        await asyncio.sleep(0.01)


async def _stop_within_bound(source: Picamera2Source, camera: Any) -> None:
    """``source.stop()``, failing the test if it hangs; a hung stop is then released (by
    cancelling picamera2's jobs) so that its thread ends."""
    try:
        await asyncio.wait_for(asyncio.shield(_stopping(source)), STOP_BOUND)
    except TimeoutError:
        camera.cancel_all_and_flush()
        pytest.fail(f"stop() did not return within {STOP_BOUND:g} s")


_stops: dict[int, asyncio.Task[None]] = {}


def _stopping(source: Picamera2Source) -> asyncio.Task[None]:
    task = _stops.get(id(source))
    if task is None or task.done():
        task = _stops[id(source)] = asyncio.ensure_future(source.stop())
    return task


# -- item: the keyframe request on a Pi 5 -----------------------------------------------------


async def test_hardware_keyframe_request_keeps_the_pi5_camera_running(pi5: Any) -> None:
    # picamera2 0.3.38's libav force_key_frame() sets pict_type = "I", which PyAV 14 and later
    # refuse in picamera2's processing thread: it died, and no frame came after the first
    # keyframe request (a subscriber, a PLI, a reader that fell behind).
    source = _source(pi5)
    await source.start()
    try:
        camera = _only_camera(pi5)
        first = await source.read()
        assert _idr_with_headers(first)
        for _ in range(3):
            for _ in range(3):
                await source.read()
            source.request_keyframe()
            following = [await source.read() for _ in range(4)]
            assert any(_idr_with_headers(f) for f in following), "no IDR after the request"
        assert _processing(camera)
    finally:
        await _stop_within_bound(source, _only_camera(pi5))


async def test_hardware_pi5_encoder_sends_each_frame_as_it_comes(real_pi5: Any) -> None:
    # libx264 with frame threads (picamera2's default: its own thread count) held each frame
    # back by one per extra thread (two on two cores): with one thread, the access unit of
    # every camera frame comes as that frame is encoded.
    real_pi5.manual_frames = True  # a frame only when the test triggers one
    source = _source(real_pi5)
    await source.start()
    camera = _only_camera(real_pi5)
    try:
        (encoder,) = camera.encoders
        for count in range(1, 6):
            camera.sensor.trigger()
            await _until(lambda n=count: encoder.frames_encoded >= n, f"frame {count} encoded")
            await _until(
                lambda n=count: source.frames_encoded >= n,
                f"the access unit of frame {count} (the encoder holds frames back)",
                within=1.0,
            )
        assert source.frames_encoded == 5
    finally:
        camera.sensor.manual = False
        camera.sensor.trigger()
        await _stop_within_bound(source, camera)


# -- item: stop() when no frames come -------------------------------------------------------


async def test_hardware_stop_returns_when_no_frames_arrive(pi5: Any) -> None:
    # The self-view's capture stays queued in picamera2 when no frame comes; Picamera2.stop()
    # queued behind it and waited for ever.
    source = _source(pi5)
    await source.start()
    camera = _only_camera(pi5)
    await source.read()
    await source.next_preview()
    _disconnect(camera)
    await _until(lambda: bool(_jobs(camera)), "a self-view capture queued")
    await asyncio.sleep(0.1)
    assert _jobs(camera), "the capture waits for a frame"
    await _stop_within_bound(source, camera)
    assert not camera.is_open
    assert camera.encoders == set()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
async def test_hardware_stop_returns_after_the_camera_thread_died(pi5: Any) -> None:
    # An exception in picamera2's processing thread ends it; stop() then has nobody to run its
    # job, but close() stops the event loop first and the camera without it.
    source = _source(pi5)
    await source.start()
    camera = _only_camera(pi5)
    await source.read()

    def fail(request: Any) -> None:
        raise RuntimeError("the processing thread fails")

    camera.pre_callback = fail
    await _until(lambda: not _processing(camera), "the processing thread ended")
    await _stop_within_bound(source, camera)
    assert not camera.is_open
    assert camera.encoders == set()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
async def test_hardware_a_resolution_change_after_the_camera_thread_died_reopens_it(
    pi5: Any,
) -> None:
    # The rate controller steps the resolution down on a bad line: with picamera2's processing
    # thread gone, camera.stop() would never return; the camera is closed and opened anew.
    source = _source(pi5)
    await source.start()
    first = _only_camera(pi5)
    await source.read()

    def fail(request: Any) -> None:
        raise RuntimeError("the processing thread fails")

    first.pre_callback = fail
    await _until(lambda: not _processing(first), "the processing thread ended")
    source.set_resolution(WIDTH // 2, HEIGHT // 2)

    async def smaller() -> EncodedFrame:
        while True:
            frame = await source.read()
            if (frame.width, frame.height) == (WIDTH // 2, HEIGHT // 2):
                return frame

    frame = await asyncio.wait_for(smaller(), STOP_BOUND)
    assert _idr_with_headers(frame)
    assert not first.is_open and first.encoders == set()
    await _stop_within_bound(source, pi5.cameras[-1])


# -- item: a failed start -------------------------------------------------------------------


async def test_hardware_failed_start_stops_the_encoder(pi5: Any) -> None:
    started: list[Any] = []
    encoder_type = pi5.encoders.H264Encoder

    class Recorded(encoder_type):  # type: ignore[misc,valid-type]
        def start(self, quality: Any = None) -> None:
            started.append(self)
            super().start(quality)

    pi5.encoders = types.SimpleNamespace(
        H264Encoder=Recorded, LibavH264Encoder=pi5.encoders.LibavH264Encoder
    )
    if isinstance(pi5, FakePicamera2):
        pi5.fail_next_start = True
    else:
        real_camera = pi5.Picamera2

        def failing_camera(camera_num: int = 0) -> Any:
            camera = real_camera(camera_num)
            camera.sensor.fail_next_start = True
            return camera

        pi5.Picamera2 = failing_camera
    source = _source(pi5)
    with pytest.raises(
        SourceError,
        match=r"^Pi camera 0 cannot start: Failed to start camera: Device or resource busy$",
    ):
        await source.start()
    (encoder,) = started
    assert not encoder.running  # picamera2's close() leaves encoders running
    assert not _only_camera(pi5).is_open


# -- the fake against the real library ------------------------------------------------------


def _started_camera(module: Any) -> tuple[Any, Any]:
    """A camera of ``module`` started with a libav encoder on its main stream."""
    camera = module.Picamera2(0)
    config = camera.create_video_configuration(
        main={"size": (WIDTH, HEIGHT), "format": "YUV420"},
        lores={"size": (160, 120), "format": "YUV420"},
        controls={"FrameRate": FPS},
    )
    camera.configure(config)
    encoder = module.encoders.LibavH264Encoder(bitrate=300_000, iperiod=FPS, framerate=FPS)
    camera.start_encoder(encoder, module.outputs.Output())
    camera.start()
    return camera, encoder


async def test_hardware_close_leaves_the_encoder_running(pi5: Any) -> None:
    camera, encoder = _started_camera(pi5)
    await _until(lambda: encoder.frames_encoded > 0, "a frame encoded")
    camera.close()
    assert encoder.running
    encoder.stop()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
async def test_hardware_pi5_force_key_frame_ends_the_camera_thread(pi5: Any) -> None:
    camera, encoder = _started_camera(pi5)
    try:
        await _until(lambda: encoder.frames_encoded > 0, "a frame encoded")
        encoder.force_key_frame()
        await _until(lambda: not _processing(camera), "the camera thread ended")
        encoded = encoder.frames_encoded
        await asyncio.sleep(0.2)
        assert encoder.frames_encoded == encoded  # nothing encodes any more
        with pytest.raises(TimeoutError):
            await asyncio.to_thread(camera.capture_array, "lores", 0.2)
    finally:
        camera.cancel_all_and_flush()
        camera.close()
        encoder.stop()


async def test_hardware_a_timed_out_capture_holds_up_stop_until_cancelled(pi5: Any) -> None:
    camera, encoder = _started_camera(pi5)
    try:
        camera.capture_array("lores", wait=1.0)
        _disconnect(camera)
        await asyncio.sleep(0.1)  # a frame under way comes in
        job = camera.capture_array("lores", wait=False)
        try:
            camera.wait(job, timeout=0.2)  # the last frame, which picamera2 keeps back
        except TimeoutError:
            pass
        else:
            job = camera.capture_array("lores", wait=False)
            with pytest.raises(TimeoutError):
                camera.wait(job, timeout=0.2)
        assert _jobs(camera) == [job]  # still queued after the timeout

        def stop() -> BaseException | None:
            try:
                camera.stop()
            except CancelledError as exc:
                return exc
            return None

        stopping = asyncio.ensure_future(asyncio.to_thread(stop))
        done, _ = await asyncio.wait([stopping], timeout=0.5)
        assert not done, "stop() does not wait behind the capture"
        camera.cancel_all_and_flush()  # the capture, and the stop queued behind it
        assert isinstance(await asyncio.wait_for(stopping, STOP_BOUND), CancelledError)
        assert camera.started
        await asyncio.wait_for(asyncio.to_thread(camera.stop), STOP_BOUND)
        assert not camera.started
    finally:
        camera.close()
        encoder.stop()


def test_hardware_v4l2_buffer_filter_matches_the_fake(picamera2: Any) -> None:
    # The V4L2 encoder (a Pi 4) drops buffers of 64 bytes or less without a picture; the fake
    # does the same, and Picamera2Source overrides this filter by its name.
    from picamera2.encoders.v4l2_encoder import V4L2Encoder

    from kiosk.media.fake_picamera2 import H264Encoder as FakeV4L2

    assert callable(V4L2Encoder._check_for_picture)
    assert callable(picamera2.encoders.H264Encoder.force_key_frame)
    x264 = X264Encoder(64, 48, FPS, 50_000)
    pattern = np.full((72, 64), 128, dtype=np.uint8)
    import av

    idr = bytes(x264.encode(av.VideoFrame.from_ndarray(pattern, format="yuv420p"))[0])
    p_frame = bytes(x264.encode(av.VideoFrame.from_ndarray(pattern, format="yuv420p"))[0])
    headers = b"".join(
        b"\x00\x00\x00\x01" + unit
        for unit in idr.split(b"\x00\x00\x01")
        if unit and unit[0] & 0x1F in (NAL_SPS, NAL_PPS)
    )
    samples = {
        "SPS and PPS": headers,
        "SPS, PPS and IDR": idr,
        "a small P slice": p_frame,
        "a small P slice after a 3-byte start code": p_frame[1:],
        "SEI only": b"\x00\x00\x00\x01\x06\x05\x01\x00\x80",
        "headers longer than 64 bytes": headers + b"\x00" * 70,
        "empty": b"",
    }
    assert len(headers) <= 64 and len(p_frame) <= 64, (len(headers), len(p_frame))
    fake = FakeV4L2()
    for what, buffer in samples.items():
        expected = V4L2Encoder._check_for_picture(None, buffer)
        assert fake._check_for_picture(buffer) == expected, what
