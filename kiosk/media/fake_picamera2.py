"""A stand-in for the ``picamera2`` package, for tests and machines without a Pi camera.

It implements the part of picamera2's API that :class:`Picamera2Source` uses, with the same
threads, order and failures as picamera2 0.3.38 (``tests/kiosk/test_picamera2_real.py`` runs
the same checks against the real wheel). A started camera renders test-pattern frames at its
``FrameRate`` in one thread, which stands for libcamera and picamera2's event loop together: it
calls ``pre_callback(request)`` (which may draw into the buffers through ``MappedArray``), then
runs the queued jobs (``capture_array``, ``stop``), then has the running encoders encode the
frame and hand each access unit to their outputs' ``outputframe(...)``.

As in picamera2:

- jobs run in order, and one waiting for a frame holds up the rest: a ``capture_array`` that
  timed out stays queued, and ``stop()`` (a job too, waited for without a timeout) returns only
  after a frame came. ``cancel_all_and_flush()`` cancels them; ``close()`` ends the camera
  thread first and then stops the camera without a job.
- an exception in the camera thread (an encoder, ``pre_callback``) ends it: no more frames,
  captures or encodes, and ``stop()`` waits for ever.
- ``close()`` does not stop encoders.
- on a Pi 5 (``platform="pisp"``, the default) ``encoders.H264Encoder`` is libav's: libx264 in
  the camera thread, and its ``force_key_frame()`` sets ``pict_type = "I"`` on the next frame,
  which PyAV 14 and later refuse with ``TypeError`` (so the camera thread ends). On a Pi 4
  (``platform="vc4"``) it is the V4L2 encoder: ``force_key_frame()`` works, and buffers of 64
  bytes or less without a picture are dropped (``_check_for_picture``).

Use it like the module::

    fake = FakePicamera2()
    source = Picamera2Source(..., picamera2_module=fake)

and drive it with the helpers: ``FakePicamera2(cameras=0)`` has no camera (``Picamera2(0)``
fails as on a Pi without one), ``fake.fail_next_start = True`` makes the next ``start()`` fail,
``fake.headers_apart = True`` has encoders send SPS and PPS in a buffer of their own,
``fake.cameras`` lists the cameras opened, ``camera.disconnect()`` stops the frames as a loose
cable does, ``camera.processing`` says whether the camera thread runs, ``camera.frames_delivered``
counts encoded frames handed to outputs and ``encoder.output_threads`` names the threads that
delivered them.

Differences from picamera2, all on paths a well-behaved caller does not take: ``start()``
without a configuration raises instead of using the preview configuration; only ``main`` and
``lores`` exist; the V4L2 encoder hands frames to its outputs from the camera thread, not from a
poll thread of its own; jobs are only ``capture_array`` and ``stop``.

Its length: it mirrors one package whose threads, jobs and encoders only behave as picamera2's
do when they are written together.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from concurrent.futures import CancelledError, Future
from types import SimpleNamespace
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from kiosk.media.h264 import NAL_IDR, NAL_PPS, NAL_SPS, nal_unit_types
from kiosk.media.h264 import H264Encoder as X264Encoder
from kiosk.media.stamp import Stamp
from kiosk.media.testpattern import TestPattern

log = logging.getLogger(__name__)

#: Row alignment of YUV420 buffers, in bytes: camera buffers have padded rows.
STRIDE_ALIGN = 64
#: Encoded buffers this long or shorter must hold a picture to reach the outputs (V4L2).
SMALL_BUFFER = 64
_FOUR_BYTE_START = b"\x00\x00\x00\x01"
_NAL_SLICE = 1


class Output:
    """Like ``picamera2.outputs.Output``: receives encoded frames; the base ignores them."""

    def __init__(self, pts: Any = None) -> None:
        self.recording = False
        self.ptsoutput = pts
        self.needs_pacing = False
        self.needs_add_stream = False

    def start(self) -> None:
        self.recording = True

    def stop(self) -> None:
        self.recording = False

    def outputframe(
        self,
        frame: bytes | None,
        keyframe: bool = True,
        timestamp: int | None = None,
        packet: Any = None,
        audio: bool = False,
    ) -> None:
        """One encoded frame; ``timestamp`` in microseconds since the encoder's first frame."""


class Encoder:
    """Like ``picamera2.encoders.Encoder``: what both H.264 encoders share (libx264 here)."""

    def __init__(
        self,
        bitrate: int | None = None,
        repeat: bool = True,
        iperiod: int | None = None,
        framerate: float | None = None,
        qp: int | None = None,
        profile: str | None = None,
    ) -> None:
        self.bitrate = bitrate
        self.repeat = repeat
        self.iperiod = iperiod
        self.framerate = framerate
        self.qp = qp
        self.profile = profile
        self.width = self.height = self.stride = 0
        self.format: str | None = None
        self.name: str | None = None
        self._output: list[Output] = []
        self._running = False
        self._lock = threading.Lock()
        self._x264: X264Encoder | None = None
        self._first_us: int | None = None
        self._key_frames_requested = 0
        self._key_frames_generated = 0
        #: Frames encoded since :meth:`start`.
        self.frames_encoded = 0
        #: Names of the threads that called the outputs (helper for tests).
        self.output_threads: set[str] = set()
        # Set by the camera from FakePicamera2.headers_apart.
        self._headers_apart = False

    @property
    def running(self) -> bool:
        return self._running

    @property
    def output(self) -> Output | list[Output]:
        return self._output[0] if len(self._output) == 1 else self._output

    @output.setter
    def output(self, value: Output | list[Output]) -> None:
        outputs = value if isinstance(value, list) else [value]
        if not all(isinstance(out, Output) for out in outputs):
            raise RuntimeError("Must pass Output")
        self._output = outputs

    def force_key_frame(self) -> None:
        """Make a frame soon an IDR (picamera2 0.3.32 and later)."""
        self._key_frames_requested += 1

    def start(self, quality: Any = None) -> None:
        with self._lock:
            if self._running:
                raise RuntimeError("Encoder already running")
            if self.format != "YUV420":
                raise RuntimeError(f"the fake encoder takes YUV420, not {self.format}")
            self.frames_encoded = 0
            self._first_us = None
            fps = round(self.framerate or 30)
            self._x264 = X264Encoder(self.width, self.height, fps, self.bitrate or 1_000_000)
            self._running = True
            for out in self._output:
                out.start()

    def stop(self) -> None:
        with self._lock:
            if not self._running:
                raise RuntimeError("Encoder already stopped")
            self._running = False
            self._x264 = None
            for out in self._output:
                out.stop()

    def outputframe(
        self,
        frame: bytes | None,
        keyframe: bool = True,
        timestamp: int | None = None,
        packet: Any = None,
        audio: bool = False,
    ) -> None:
        self.output_threads.add(threading.current_thread().name)
        for out in self._output:
            out.outputframe(frame, keyframe, timestamp, packet, audio)

    def _encode(self, frame: av.VideoFrame, capture_us: int) -> int:
        """Encode one camera frame (camera thread); the number of buffers delivered."""
        with self._lock:
            x264 = self._x264
            if not self._running or x264 is None:
                return 0
            keyframe = bool(self.iperiod) and self.frames_encoded % (self.iperiod or 1) == 0
            if self._key_frames_requested > self._key_frames_generated:
                self._key_frames_generated += 1
                self._force_key_frame(frame)
                keyframe = True
            if self._first_us is None:
                self._first_us = capture_us
            timestamp = capture_us - self._first_us
            packets = x264.encode(frame, keyframe=keyframe)
            self.frames_encoded += 1
            delivered = 0
            for packet in packets:
                data = bytes(packet)
                keyframe = NAL_IDR in nal_unit_types(data)
                buffers = _split_headers(data) if self._headers_apart and keyframe else (data,)
                for buffer in buffers:
                    if self._reaches_outputs(buffer):
                        self.outputframe(buffer, keyframe and buffer is buffers[-1], timestamp)
                        delivered += 1
            return delivered

    def _force_key_frame(self, frame: av.VideoFrame) -> None:
        """Called on the frame that answers ``force_key_frame()``."""

    def _reaches_outputs(self, buffer: bytes) -> bool:
        return True


class H264Encoder(Encoder):
    """Like picamera2's ``H264Encoder`` on a Pi 4 (the V4L2 hardware encoder)."""

    def __init__(
        self,
        bitrate: int | None = None,
        repeat: bool = True,
        iperiod: int | None = None,
        framerate: float | None = None,
        enable_sps_framerate: bool = False,
        qp: int | None = None,
        profile: str | None = None,
    ) -> None:
        super().__init__(bitrate, repeat, iperiod, framerate, qp, profile)

    def _reaches_outputs(self, buffer: bytes) -> bool:
        return self._check_for_picture(buffer)

    def _check_for_picture(self, buffer: bytes) -> bool:
        """Whether an encoded buffer goes to the outputs: picamera2's V4L2 encoder drops short
        ones (SPS and PPS sent apart at low bitrates) unless a four-byte start code in them
        begins a picture's NAL unit."""
        if len(buffer) > SMALL_BUFFER:
            return True
        position = buffer.find(_FOUR_BYTE_START)
        while position != -1 and position + 4 < len(buffer):
            if buffer[position + 4] & 0x1F in (_NAL_SLICE, NAL_IDR):
                return True
            position = buffer.find(_FOUR_BYTE_START, position + 4)
        return False


class LibavH264Encoder(Encoder):
    """Like picamera2's ``LibavH264Encoder``, its ``H264Encoder`` on a Pi 5 (libx264)."""

    def __init__(
        self,
        bitrate: int | None = None,
        repeat: bool = True,
        iperiod: int = 30,
        framerate: float = 30,
        qp: int | None = None,
        profile: str | None = None,
    ) -> None:
        super().__init__(bitrate, repeat, iperiod, framerate, qp, profile)
        #: libx264's threads (0: its choice, with frame threading).
        self.threads = 0

    def _force_key_frame(self, frame: av.VideoFrame) -> None:
        # What picamera2 0.3.38 does; PyAV 14 and later raise TypeError (the camera thread ends).
        frame.pict_type = "I"  # type: ignore[assignment]  # deliberately, as picamera2


class FakeRequest:
    """Like ``picamera2.CompletedRequest``: one frame's buffers, per stream name."""

    def __init__(self, buffers: dict[str, npt.NDArray[np.uint8]], config: dict[str, Any]) -> None:
        self.buffers = buffers
        self.config = config


class MappedArray:
    """Like ``picamera2.MappedArray``: a writable view of a request's stream buffer (YUV420:
    ``height * 3 / 2`` rows of ``stride`` bytes), as a context manager."""

    def __init__(self, request: FakeRequest, stream: str, reshape: bool = True) -> None:
        if stream not in request.buffers:
            raise RuntimeError(f"Stream {stream!r} is not defined")
        self._request = request
        self._stream = stream
        self.array: npt.NDArray[np.uint8] | None = None

    def __enter__(self) -> MappedArray:
        self.array = self._request.buffers[self._stream]
        return self

    def __exit__(self, *exc: object) -> None:
        self.array = None


class Job:
    """Like ``picamera2.job.Job``: an operation queued for the camera thread."""

    def __init__(self, stream: str | None) -> None:
        #: The stream to capture, or None to stop the camera.
        self.stream = stream
        self._future: Future[Any] = Future()
        self._future.set_running_or_notify_cancel()

    def get_result(self, timeout: float | None = None) -> Any:
        return self._future.result(timeout=timeout)

    def cancel(self) -> None:
        self._future.set_exception(CancelledError())


class FakeCamera:
    """Like ``picamera2.Picamera2``; made by ``FakePicamera2().Picamera2(camera_num)``."""

    def __init__(self, camera_num: int = 0, *, fake: FakePicamera2) -> None:
        if not 0 <= camera_num < fake.camera_count:
            raise RuntimeError(
                f'No camera number {camera_num} found - use "rpicam-hello --list-cameras" to '
                "check connected cameras"
            )
        self.camera_num = camera_num
        self._fake = fake
        self.is_open = True
        self.started = False
        self.camera_config: dict[str, Any] = {}
        self._encoders: set[Encoder] = set()
        self._thread: threading.Thread | None = None
        self._abort = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._jobs: list[Job] = []
        # The last frame's buffers, until a capture takes them (picamera2 keeps one request).
        self._held: dict[str, npt.NDArray[np.uint8]] | None = None
        self._connected = True
        self._due = 0.0
        self._pattern: TestPattern | None = None
        #: Called with each completed request before anything copies or encodes it.
        self.pre_callback: Any = None
        #: Camera frames rendered since the camera was opened.
        self.frames_rendered = 0
        #: Encoded frames handed to outputs since the camera was opened.
        self.frames_delivered = 0
        fake.cameras.append(self)

    def create_video_configuration(
        self,
        main: dict[str, Any] | None = None,
        lores: dict[str, Any] | None = None,
        controls: dict[str, Any] | None = None,
        **_others: Any,
    ) -> dict[str, Any]:
        if not self.is_open:
            raise RuntimeError("Camera not opened")
        main = {"format": "XBGR8888", "size": (1280, 720)} | (main or {})
        if lores is not None:
            lores = {"format": "YUV420", "size": main["size"]} | lores
        for stream in (main, lores):
            if stream is not None:
                width, height = stream["size"]
                stream["size"] = (width - width % 2, height - height % 2)
        return {
            "use_case": "video",
            "main": main,
            "lores": lores,
            "controls": {"FrameRate": 30.0} | (controls or {}),
        }

    def configure(self, camera_config: dict[str, Any] | None = None) -> None:
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        if not isinstance(camera_config, dict):
            raise TypeError("the fake camera takes a configuration made by create_*_configuration")
        config = dict(camera_config)
        main = config["main"] = dict(config["main"])
        main["stride"] = _stride(main["size"][0], main["format"])
        lores = config.get("lores")
        if lores is not None:
            if lores["size"][0] > main["size"][0] or lores["size"][1] > main["size"][1]:
                raise RuntimeError("lores stream dimensions may not exceed main stream")
            if lores["format"] != "YUV420":
                raise RuntimeError("lores stream must be YUV")
            config["lores"] = dict(lores, stride=_stride(lores["size"][0], lores["format"]))
        self.camera_config = config

    def camera_configuration(self) -> dict[str, Any]:
        return self.camera_config

    def start(self, config: dict[str, Any] | None = None, show_preview: Any = False) -> None:
        if config is not None:
            self.configure(config)
        if not self.camera_config:
            raise RuntimeError("Camera has not been configured")
        if self._thread is None:  # as picamera2 starts its event loop before the camera
            self._abort.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"fake-picamera2-{self.camera_num}"
            )
            self._thread.start()
        if self.started:
            return
        if self._fake.fail_next_start:
            self._fake.fail_next_start = False
            raise RuntimeError("Failed to start camera: Device or resource busy")
        width, height = self.camera_config["main"]["size"]
        with self._lock:
            self._pattern = TestPattern(width, height)
            self._due = time.monotonic()
            self.started = True
        self._wake.set()

    def stop(self) -> None:
        if not self.started:
            return
        if self._thread is not None:
            # A job, as in picamera2: it waits behind the queued ones, without a timeout.
            self._dispatch(None, immediate=True).get_result()
        else:
            self._stop_now()

    def cancel_all_and_flush(self) -> None:
        with self._lock:
            for job in self._jobs:
                job.cancel()
            self._jobs = []

    def start_encoder(
        self,
        encoder: Encoder | None = None,
        output: Output | None = None,
        pts: Any = None,
        quality: Any = None,
        name: str | None = None,
    ) -> None:
        if encoder is None:
            raise RuntimeError("No encoder specified")
        if output is not None:
            encoder.output = output
        if not self.camera_config:
            raise RuntimeError("Camera has not been configured")
        name = name or "main"
        stream = self.camera_config.get(name)
        if stream is None:
            raise RuntimeError(f"Encode stream {name} was not defined")
        encoder.name = name
        encoder.width, encoder.height = stream["size"]
        encoder.format = stream["format"]
        encoder.stride = stream["stride"]
        encoder._headers_apart = self._fake.headers_apart
        if encoder.framerate is None:
            encoder.framerate = min(30.0, float(self.camera_config["controls"]["FrameRate"]))
        encoder.start(quality=quality)
        with self._lock:
            self._encoders.add(encoder)

    def stop_encoder(self, encoders: Encoder | list[Encoder] | None = None) -> None:
        if encoders is None:
            chosen = list(self._encoders)
        elif isinstance(encoders, Encoder):
            chosen = [encoders]
        else:
            chosen = list(encoders)
        for encoder in chosen:
            encoder.stop()
        with self._lock:
            self._encoders.difference_update(chosen)

    @property
    def encoders(self) -> set[Encoder]:
        return self._encoders

    def capture_array(self, name: str = "main", wait: float | bool | None = None) -> Any:
        """The next frame of stream ``name`` (YUV420: ``height * 3 / 2`` rows of ``stride``);
        with ``wait=False`` the :class:`Job` that captures it (see :meth:`wait`)."""
        if self.camera_config.get(name) is None:
            raise RuntimeError(f"Stream {name!r} is not defined")
        job = self._dispatch(name)
        if wait is False:
            return job
        return job.get_result(None if wait is None or wait is True else float(wait))

    def wait(self, job: Job, timeout: float | None = None) -> Any:
        return job.get_result(timeout)

    def close(self) -> None:
        if not self.is_open:
            return
        # As picamera2: the event loop ends first, then the camera stops without a job.
        # The encoders go on running.
        thread, self._thread = self._thread, None
        if thread is not None:
            self._abort.set()
            self._wake.set()
            thread.join()
        self._stop_now()
        self.is_open = False
        self.camera_config = {}

    # -- helpers for tests ----------------------------------------------------------------

    def disconnect(self) -> None:
        """No more frames, as when the camera's cable comes loose (the thread goes on)."""
        self._connected = False

    @property
    def processing(self) -> bool:
        """Whether the camera thread runs (an exception in it ends it)."""
        return self._thread is not None and self._thread.is_alive()

    # -- the camera thread ----------------------------------------------------------------

    def _dispatch(self, stream: str | None, immediate: bool = False) -> Job:
        with self._lock:
            first = not self._jobs
            job = Job(stream)
            self._jobs.append(job)
            if first and (immediate or self._held is not None):
                self._wake.set()
        return job

    def _stop_now(self) -> None:
        with self._lock:
            self.started = False
            self._held = None

    def _run(self) -> None:
        try:
            while not self._abort.is_set():
                self._wake.wait(self._until_next_frame())
                self._wake.clear()
                if self._abort.is_set():
                    break
                self._step()
        except Exception:  # as picamera2's event loop: the thread ends
            log.exception("fake camera %d: the camera thread ends", self.camera_num)

    def _until_next_frame(self) -> float | None:
        if not (self.started and self._connected):
            return None
        return max(0.0, self._due - time.monotonic())

    def _step(self) -> None:
        now = time.monotonic()
        rendered = None
        if self.started and self._connected and now >= self._due:
            # A late thread skips frames rather than bursting, as a sensor does.
            fps = float(self.camera_config["controls"].get("FrameRate", 30.0))
            self._due = max(self._due + 1 / fps, now)
            rendered = self._render(int(now * 1_000_000))
        with self._lock:
            if rendered is not None:
                self._held = rendered[0]
                self.frames_rendered += 1
            self._run_jobs()
            encoders = list(self._encoders)
        if rendered is not None:
            for encoder in encoders:
                self.frames_delivered += encoder._encode(rendered[1], rendered[2])

    def _render(self, capture_us: int) -> tuple[dict[str, npt.NDArray[np.uint8]], Any, int]:
        pattern = self._pattern
        assert pattern is not None
        frame = pattern.render(
            Stamp(self.frames_rendered & 0xFFFF_FFFF, int(time.time() * 1000) & 0xFFFF_FFFF)
        )
        main = self.camera_config["main"]
        buffers = {"main": _yuv420_buffer(frame, main)}
        if self.camera_config.get("lores") is not None:
            buffers["lores"] = _yuv420_buffer(frame, self.camera_config["lores"])
        callback = self.pre_callback
        if callback is not None:  # as picamera2: before the captures and the encoders
            callback(FakeRequest(buffers, self.camera_config))
            frame = _frame_from_buffer(buffers["main"], main)
        return buffers, frame, capture_us

    def _run_jobs(self) -> None:
        """Run the queued jobs in order, up to one that needs a frame not there (under lock)."""
        while self._jobs:
            job = self._jobs[0]
            if job.stream is None:
                self.started = False
                self._held = None
                result = None
            elif self._held is None:
                break
            else:
                result = self._held[job.stream].copy()
                self._held = None
            self._jobs.pop(0)
            job._future.set_result(result)


class FakePicamera2:
    """The fake ``picamera2`` module: ``Picamera2``, ``encoders``, ``outputs`` and
    ``MappedArray``; ``platform`` is ``"pisp"`` (a Pi 5: libav encodes) or ``"vc4"`` (a Pi 4:
    the V4L2 hardware encoder)."""

    def __init__(self, *, cameras: int = 1, platform: str = "pisp") -> None:
        if platform not in ("pisp", "vc4"):
            raise ValueError(f"platform is 'pisp' or 'vc4', not {platform!r}")
        #: Cameras attached; ``Picamera2(n)`` fails for ``n`` at or above this.
        self.camera_count = cameras
        #: Make the next camera ``start()`` fail (then this resets to False).
        self.fail_next_start = False
        #: Encoders send SPS and PPS in a buffer of their own before each IDR (as a V4L2
        #: encoder may), instead of in the IDR's buffer.
        self.headers_apart = False
        #: Every camera opened, in order.
        self.cameras: list[FakeCamera] = []
        self.Picamera2 = functools.partial(FakeCamera, fake=self)
        self.encoders = SimpleNamespace(
            Encoder=Encoder,
            H264Encoder=LibavH264Encoder if platform == "pisp" else H264Encoder,
            LibavH264Encoder=LibavH264Encoder,
        )
        self.outputs = SimpleNamespace(Output=Output)
        self.MappedArray = MappedArray


def _split_headers(data: bytes) -> tuple[bytes, ...]:
    """An access unit split before its first NAL unit that is not an SPS or a PPS."""
    position = data.find(b"\x00\x00\x01")
    while position != -1 and position + 3 < len(data):
        if data[position + 3] & 0x1F not in (NAL_SPS, NAL_PPS):
            cut = position - 1 if position and data[position - 1] == 0 else position
            return (data[:cut], data[cut:]) if cut else (data,)
        position = data.find(b"\x00\x00\x01", position + 3)
    return (data,)


def _frame_from_buffer(buffer: npt.NDArray[np.uint8], stream: dict[str, Any]) -> av.VideoFrame:
    """A camera's YUV420 buffer for ``stream`` as a ``yuv420p`` frame (what the encoder gets)."""
    width, height = stream["size"]
    flat = buffer.reshape(-1)
    stride = stream["stride"]
    half_stride, half_width, half_height = stride // 2, width // 2, height // 2
    u_start = height * stride
    v_start = u_start + half_height * half_stride
    planes = (
        flat[:u_start].reshape(height, stride)[:, :width],
        flat[u_start:v_start].reshape(half_height, half_stride)[:, :half_width],
        flat[v_start : v_start + half_height * half_stride].reshape(half_height, half_stride)[
            :, :half_width
        ],
    )
    packed = np.concatenate([plane.reshape(-1) for plane in planes])
    return av.VideoFrame.from_ndarray(packed.reshape(height * 3 // 2, width), format="yuv420p")


def _stride(width: int, fmt: str) -> int:
    if fmt != "YUV420":
        return width * 4
    return -(-width // STRIDE_ALIGN) * STRIDE_ALIGN


def _yuv420_buffer(frame: av.VideoFrame, stream: dict[str, Any]) -> npt.NDArray[np.uint8]:
    """The frame as a camera's YUV420 buffer for ``stream``: Y, U, V planes with padded rows."""
    width, height = stream["size"]
    stride = stream["stride"]
    if (frame.width, frame.height) != (width, height):
        frame = frame.reformat(width=width, height=height, format="yuv420p")
    packed = frame.to_ndarray().reshape(-1)
    buffer = np.zeros(height * 3 // 2 * stride, dtype=np.uint8)
    # (offset in the packed frame, offset in the buffer, width, height, row stride) per plane
    luma, chroma = width * height, width * height // 4
    planes = (
        (0, 0, width, height, stride),
        (luma, height * stride, width // 2, height // 2, stride // 2),
        (
            luma + chroma,
            height * stride + height // 2 * stride // 2,
            width // 2,
            height // 2,
            stride // 2,
        ),
    )
    for source, target, plane_width, plane_height, row in planes:
        rows = buffer[target : target + plane_height * row].reshape(plane_height, row)
        rows[:, :plane_width] = packed[source : source + plane_width * plane_height].reshape(
            plane_height, plane_width
        )
    return buffer.reshape(height * 3 // 2, stride)
