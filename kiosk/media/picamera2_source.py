"""The Raspberry Pi camera through picamera2, encoded by the camera stack itself.

``picamera2.encoders.H264Encoder`` is the hardware (V4L2) encoder on a Pi 4 and picamera2's libav
(libx264) encoder on a Pi 5, which has none. Either way it is asked for Annex B with SPS/PPS
repeated before every IDR (``repeat=True``) and an IDR every two seconds, which aiortc then only
packetizes. The main stream (YUV420 at the size sent) feeds the encoder; a small ``lores`` stream
of the same shape feeds the booth's self-view (:attr:`latest_preview`). The self-view's pictures
are also what this source shows its picture watchers (:meth:`VideoSource.watch_pictures`), so a
peer without H.264 gets VP8 of the ``lores`` stream (``preview_width``, 320 pixels wide by
default), which the self-view copies out of the camera's buffers anyway. The main stream's
pictures go to the encoder only; copying each out as well and encoding 1280x720 in software
would cost about three times the CPU of 640x480 (libvpx, measured on x86; not measured on a Pi).

Where picamera2 0.3.38 falls short of a live call, the encoder is adjusted here:

- the libav encoder's ``force_key_frame()`` sets ``frame.pict_type = "I"``, which PyAV 14 and
  later refuse with a ``TypeError`` raised in picamera2's processing thread, which then dies (no
  frames, no self-view). With it a keyframe is asked for by restarting the encoder, whose first
  frame is an IDR; the V4L2 encoder's ``force_key_frame()`` works and is used.
- the libav encoder lets libx264 pick its thread count with frame threading, which holds back a
  frame per extra thread; one thread sends each frame as it is captured.
- the V4L2 encoder drops buffers of 64 bytes or less without a picture (SPS and PPS sent apart);
  the source keeps them and sends them with the next picture (:class:`_AccessUnits`).

"Camera off" (:attr:`blanked`) is kept in the camera stack: picamera2 hands every completed
request to our ``pre_callback`` before anything copies or encodes it, and while blanked that
fills both streams' buffers with black (``MappedArray``, as picamera2's overlay examples draw).
So the encoder never gets a picture captured after the citizen turned the camera off, and the
self-view is black too; frames the encoder already has are dropped up to a fresh IDR.

Threads: picamera2 calls our output from its own threads (the camera thread, or the hardware
encoder's poll thread); finished frames reach the event loop only through
``loop.call_soon_threadsafe`` into a bounded queue. Blocking camera calls (open, configure,
start, stop) run in one worker thread; the self-view is captured by a thread of its own.

Stopping must not hang when frames stopped coming (a loose cable, a dead camera thread): a
``capture_array`` that timed out stays queued in picamera2 and ``Picamera2.stop()`` would wait
behind it for a frame. So the self-view thread is ended and its queued captures cancelled
(``cancel_all_and_flush()``) before any stop, and the camera is released with ``close()``, which
stops picamera2's event loop before the camera and does not wait for it. ``close()`` leaves
encoders running (``/dev/video11`` on a Pi 4, libav on a Pi 5): the source stops its encoder
first, also when the camera failed to start.

picamera2 is imported here only, and only when the source starts, so that the rest of the booth
imports on any machine; tests pass :class:`kiosk.media.fake_picamera2.FakePicamera2` instead.

Its length: each adjustment above touches the same encoder's life (start, keyframe, restart,
stop, blanking), so they stay beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from kiosk.media.h264 import NAL_IDR, NAL_PPS, NAL_SPS, nal_unit_types
from kiosk.media.source import VIDEO_CLOCK_RATE, EncodedFrame, SourceError, VideoSource, is_idr

log = logging.getLogger(__name__)

NOT_INSTALLED = (
    "picamera2 is not installed (it needs a Raspberry Pi; install the videobooth[pi] extra)"
)

NO_LIBCAMERA = (
    "picamera2 cannot be imported: libcamera's Python binding is missing (Raspberry Pi OS "
    "package python3-libcamera; the venv must see the system's site-packages)"
)

#: H.264 ``nal_unit_type`` of a slice of a non-IDR picture.
NAL_SLICE = 1
_START_CODE = b"\x00\x00\x01"
#: How long the self-view thread waits for one lores frame before it looks again.
PREVIEW_WAIT = 0.5
#: Video black and neutral chroma in limited-range YUV (what the encoder expects).
_Y_BLACK, _C_NEUTRAL = 16, 128


def import_picamera2() -> Any:
    """The ``picamera2`` package with its ``encoders`` and ``outputs``; :class:`SourceError`
    with the reason when it cannot be imported."""
    try:
        package = importlib.import_module("picamera2")
        importlib.import_module("picamera2.encoders")
        importlib.import_module("picamera2.outputs")
    except ImportError as exc:
        if exc.name == "picamera2":
            raise SourceError(NOT_INSTALLED) from exc
        if exc.name == "libcamera":
            raise SourceError(NO_LIBCAMERA) from exc
        raise SourceError(f"picamera2 cannot be imported: {exc}") from exc
    except Exception as exc:  # picamera2 probes the hardware on import
        raise SourceError(f"picamera2 cannot be imported: {exc}") from exc
    return package


def yuv420_frame(array: npt.NDArray[np.uint8], width: int, height: int) -> av.VideoFrame:
    """A picamera2 ``YUV420`` array (``height * 3 / 2`` rows of ``stride`` bytes, the Y plane
    then U then V, each row padded to the stride) as a ``yuv420p`` frame of ``width`` x
    ``height``."""
    rows, stride = array.shape
    if rows != height * 3 // 2 or stride < width:
        raise ValueError(f"a {width}x{height} YUV420 buffer cannot have shape {array.shape}")
    if stride == width:
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="yuv420p")
    flat = array.reshape(-1)
    half_stride, half_width, half_height = stride // 2, width // 2, height // 2
    u_start = height * stride
    v_start = u_start + half_height * half_stride
    y = flat[:u_start].reshape(height, stride)[:, :width]
    u = flat[u_start:v_start].reshape(half_height, half_stride)[:, :half_width]
    v = flat[v_start : v_start + half_height * half_stride].reshape(half_height, half_stride)
    packed = np.concatenate([y.reshape(-1), u.reshape(-1), v[:, :half_width].reshape(-1)])
    return av.VideoFrame.from_ndarray(packed.reshape(height * 3 // 2, width), format="yuv420p")


def _nal_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B stream, without start codes or trailing zero bytes."""
    starts = []
    position = data.find(_START_CODE)
    while position != -1:
        starts.append(position + 3)
        position = data.find(_START_CODE, position + 3)
    ends = [start - 3 for start in starts[1:]] + [len(data)]
    return [data[start:end].rstrip(b"\x00") for start, end in zip(starts, ends, strict=True)]


def blacken_yuv420(array: npt.NDArray[np.uint8]) -> None:
    """Make a picamera2 ``YUV420`` buffer (``height * 3 / 2`` rows of ``stride`` bytes) black,
    in place: the luma rows video black, the chroma rows (U then V) neutral."""
    height = array.shape[0] * 2 // 3
    array[:height] = _Y_BLACK
    array[height:] = _C_NEUTRAL


class _AccessUnits:
    """Makes every IDR carry SPS and PPS, whatever the encoder sends (one per encoder run).

    With ``repeat=True`` both picamera2 encoders put SPS/PPS before each IDR; a stream whose
    headers come in a buffer of their own (the V4L2 encoder can start that way) or only once
    is repaired here, because a receiver that joins late can only start from SPS+PPS+IDR.
    """

    def __init__(self) -> None:
        self._headers = b""
        self._pending = b""

    def complete(self, data: bytes) -> bytes | None:
        types = nal_unit_types(data)
        if NAL_SPS in types:
            self._headers = b"".join(
                b"\x00\x00\x00\x01" + unit
                for unit in _nal_units(data)
                if unit and unit[0] & 0x1F in (NAL_SPS, NAL_PPS)
            )
        if NAL_IDR not in types and NAL_SLICE not in types:
            self._pending += data  # headers or SEI without a picture: they go with the next one
            return None
        data, self._pending = self._pending + data, b""
        if NAL_IDR in types and NAL_SPS not in nal_unit_types(data):
            data = self._headers + data
        return data


class _CameraOutput:
    """Mixed into picamera2's ``Output`` (see :meth:`Picamera2Source._make_output`): hands each
    encoded frame, in picamera2's thread, to ``post``."""

    def __init__(self, post: Callable[[bytes, int | None], None]) -> None:
        super().__init__()  # picamera2's Output.__init__
        self._post = post

    def outputframe(
        self,
        frame: Any,
        keyframe: bool = True,
        timestamp: int | None = None,
        packet: Any = None,
        audio: bool = False,
    ) -> None:
        if audio or frame is None:
            return
        self._post(bytes(frame), timestamp)


class Picamera2Source(VideoSource):
    """The Pi camera ``camera_num``, encoded by picamera2's ``H264Encoder``.

    ``bitrate`` and :meth:`set_resolution` restart the encoder (picamera2 encoders take their
    bitrate when they start); a new size also reconfigures the camera. Either costs a frame or
    two and starts again with an IDR, so the rate controller should change them in steps.
    Keyframe requests use the V4L2 encoder's ``force_key_frame()`` (picamera2 0.3.32 and later);
    the libav encoder (whose ``force_key_frame()`` fails with PyAV 14 and later) and older
    picamera2 restart the encoder instead. ``profile`` goes to the encoder (``"baseline"``:
    what browsers expect from WebRTC; ``None`` keeps picamera2's choice). :meth:`read` raises
    :class:`SourceError` when no frame came for ``frame_timeout`` seconds (a camera cable come
    loose, a hung encoder).
    """

    name = "picamera2"

    def __init__(
        self,
        *,
        width: int = 1280,
        height: int = 720,
        fps: int = 30,
        bitrate: int = 1_500_000,
        camera_num: int = 0,
        preview_width: int = 320,
        profile: str | None = "baseline",
        queue_frames: int = 8,
        frame_timeout: float = 5.0,
        picamera2_module: Any = None,
    ) -> None:
        super().__init__(width=width, height=height, fps=fps, bitrate=bitrate)
        self.camera_num = camera_num
        self.preview_width = preview_width
        self.profile = profile
        self.frame_timeout = frame_timeout
        self._queue_frames = queue_frames
        self._module: Any = picamera2_module
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._queue: asyncio.Queue[EncodedFrame | None] | None = None
        self._camera: Any = None
        self._encoder: Any = None
        self._lores_size = (0, 0)
        self._applied: tuple[int, int, int] | None = None  # width, height, bitrate
        self._restart_encoder = False
        self._reconfigure_scheduled = False
        self._preview_thread: threading.Thread | None = None
        self._preview_stop = threading.Event()
        # Keyframes by an encoder restart, not force_key_frame() (see the module docstring).
        self._keyframe_by_restart = False
        # Frames of an encoder run other than the current one are stale: they are dropped.
        self._generation = 0
        self._pts_generation = -1
        self._pts_offset = 0
        self._last_pts = -1
        self._started_at = 0.0
        self._resync = False
        self._failure: str | None = None
        # Set by the self-view thread's frames (on the loop), for next_preview.
        self._preview_arrived = asyncio.Event()
        #: Frames dropped because the reader fell behind (and until the next IDR).
        self.frames_dropped = 0

    @property
    def _what(self) -> str:
        return f"Pi camera {self.camera_num}"

    # -- the event loop side ----------------------------------------------------------------

    async def start(self) -> None:
        if self._executor is not None:
            return
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._queue = asyncio.Queue(self._queue_frames)
        self._failure = None
        self._resync = False
        self._started_at = time.monotonic()
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="picamera2-control")
        try:
            await loop.run_in_executor(executor, self._open)
        except asyncio.CancelledError:
            executor.submit(self._close)  # runs once the open has finished
            executor.shutdown(wait=False)
            raise
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._executor = executor
        log.info(
            "%s started at %dx%d@%d, %d bit/s, with %s",
            self._what,
            self.width,
            self.height,
            self.fps,
            self._bitrate,
            type(self._encoder).__name__,
        )

    async def read(self) -> EncodedFrame:
        queue = self._queue
        if self._executor is None or queue is None:
            raise SourceError(f"the {self.name} source is not started")
        if self._resync and not self._keyframe_pending:
            self.request_keyframe()  # a reader is back after a gap: start it at an IDR
        # asyncio.timeout, not wait_for: in Python 3.11 wait_for swallows a cancellation that
        # comes as the frame arrives, and the fan-out's pump would not end when closed.
        try:
            async with asyncio.timeout(self.frame_timeout):
                frame = await queue.get()
        except TimeoutError:
            raise SourceError(
                f"{self._what} delivered no frame for {self.frame_timeout:g} s"
            ) from None
        if frame is None:
            queue.put_nowait(None)  # every later read fails the same way
            raise SourceError(self._failure or f"the {self.name} source stopped")
        return frame

    async def next_preview(self) -> None:
        if self._executor is None:
            raise SourceError(f"the {self.name} source is not started")
        if self._failure is not None:
            raise SourceError(self._failure)
        # The self-view thread captures by itself; this only waits for its next frame.
        self._preview_arrived.clear()
        try:
            async with asyncio.timeout(self.frame_timeout):
                await self._preview_arrived.wait()
        except TimeoutError:
            raise SourceError(
                f"{self._what} delivered no self-view frame for {self.frame_timeout:g} s"
            ) from None

    async def stop(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        self._generation += 1  # frames still in flight are stale
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._close)
        finally:
            executor.shutdown(wait=False)
            self._end(f"the {self.name} source stopped")
            self.latest_preview = None
            log.info("%s stopped after %d frames", self._what, self.frames_encoded)

    def request_keyframe(self) -> None:
        already_pending = self._keyframe_pending
        super().request_keyframe()
        encoder = self._encoder
        if already_pending or encoder is None:
            return  # one IDR answers every request made before it
        force_key_frame = getattr(encoder, "force_key_frame", None)
        if callable(force_key_frame) and not self._keyframe_by_restart:
            force_key_frame()
        else:  # a new encoder run starts with an IDR
            self._restart_encoder = True
            self._schedule_reconfigure()

    @property
    def bitrate(self) -> int:
        return self._bitrate

    @bitrate.setter
    def bitrate(self, value: int) -> None:
        if value != self._bitrate:
            self._bitrate = value
            self._schedule_reconfigure()

    def set_resolution(self, width: int, height: int) -> None:
        super().set_resolution(width, height)
        self._schedule_reconfigure()

    def _blanking_changed(self, blanked: bool) -> None:
        if not blanked:
            return  # the camera's next requests are the picture again
        # What is queued or inside the encoder was captured before "camera off": drop it and
        # start the receivers again at an IDR of a blackened request.
        queue = self._queue
        if queue is not None:
            while not queue.empty():
                if queue.get_nowait() is None:
                    queue.put_nowait(None)  # a failure stays reported
                    break
                self.frames_dropped += 1
        self._resync = True
        self.request_keyframe()

    def _schedule_reconfigure(self) -> None:
        loop, executor = self._loop, self._executor
        if loop is None or executor is None or self._reconfigure_scheduled:
            return  # not running (start applies the settings), or the worker will see them
        self._reconfigure_scheduled = True
        loop.run_in_executor(executor, self._reconfigure).add_done_callback(self._reconfigured)

    def _reconfigured(self, future: asyncio.Future[None]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            log.error("%s could not be reconfigured: %s", self._what, exc)
            self._end(f"{self._what} could not be reconfigured: {exc}")

    def _arrive(
        self,
        generation: int,
        data: bytes,
        timestamp_us: int | None,
        arrived: float,
        capture_time: float,
        size: tuple[int, int],
    ) -> None:
        """One encoded frame, posted by picamera2's thread (runs on the loop)."""
        queue = self._queue
        if generation != self._generation or queue is None or self._failure is not None:
            return
        keyframe = is_idr(data)
        frame = EncodedFrame(
            data=data,
            pts=self._pts(generation, timestamp_us, arrived),
            keyframe=keyframe,
            capture_time=capture_time,
            width=size[0],
            height=size[1],
        )
        self.frames_encoded += 1
        if keyframe:
            self._keyframe_pending = self._resync = False
        elif self._resync:
            self.frames_dropped += 1
            return
        if queue.full():
            # Dropping one frame breaks the references of all that follow it up to the next
            # IDR, so the reader skips to the next IDR (and asks for one when it reads again).
            while not queue.empty():
                queue.get_nowait()
                self.frames_dropped += 1
            log.debug("%s: the reader fell behind; waiting for an IDR", self._what)
            if not keyframe:
                self._resync = True
                self.frames_dropped += 1
                return
        queue.put_nowait(frame)

    def _pts(self, generation: int, timestamp_us: int | None, arrived: float) -> int:
        # The encoder's timestamps (sensor time from its first frame) are exact but restart
        # with each encoder run: each run is anchored where the previous one ended.
        elapsed = round((arrived - self._started_at) * VIDEO_CLOCK_RATE)
        if timestamp_us is None:
            pts = elapsed
        else:
            ticks = timestamp_us * VIDEO_CLOCK_RATE // 1_000_000
            if generation != self._pts_generation:
                self._pts_generation = generation
                self._pts_offset = max(elapsed, self._last_pts + 1) - ticks
            pts = self._pts_offset + ticks
        self._last_pts = pts = max(pts, self._last_pts + 1)
        return pts

    def _show_preview(self, frame: av.VideoFrame) -> None:
        if self._executor is not None:
            self.latest_preview = frame
            self._preview_arrived.set()
            self._show_picture(frame)

    def _end(self, reason: str) -> None:
        """Make :meth:`read` raise :class:`SourceError` with ``reason`` (runs on the loop)."""
        queue = self._queue
        if self._failure is None:
            self._failure = reason
        if queue is not None:
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(None)

    # -- the worker thread side -------------------------------------------------------------

    def _open(self) -> None:
        module = self._module
        if module is None:
            module = self._module = import_picamera2()
        try:
            camera = module.Picamera2(self.camera_num)
        except Exception as exc:
            raise SourceError(f"{self._what} cannot be opened: {_reason(exc)}") from exc
        try:
            # Before the camera starts: not one request escapes blanking.
            camera.pre_callback = self._blank_request
            self._configure(camera)
            self._start_encoder(camera)
            camera.start()
        except Exception as exc:
            self._release(camera)  # close() alone would leave the encoder running
            raise SourceError(f"{self._what} cannot start: {_reason(exc)}") from exc
        self._camera = camera
        self._start_previews(camera)

    def _blank_request(self, request: Any) -> None:
        """picamera2's ``pre_callback`` (its camera thread), for each completed request before
        the encoders and ``capture_array`` see it: black while the camera is off."""
        if not self._blanked:
            return
        for stream in ("main", "lores"):
            with self._module.MappedArray(request, stream) as mapped:
                blacken_yuv420(mapped.array)

    def _configure(self, camera: Any) -> None:
        width, height = self.width, self.height
        preview_width = min(self.preview_width, width)
        preview_height = min(height, round(preview_width * height / width / 2) * 2)
        config = camera.create_video_configuration(
            main={"size": (width, height), "format": "YUV420"},
            lores={"size": (preview_width, preview_height), "format": "YUV420"},
            controls={"FrameRate": self.fps},
        )
        camera.configure(config)
        lores_width, lores_height = config["lores"]["size"]
        self._lores_size = (int(lores_width), int(lores_height))

    def _start_encoder(self, camera: Any) -> None:
        width, height, bitrate = self.width, self.height, self._bitrate
        self._generation += 1
        kwargs: dict[str, Any] = {"profile": self.profile} if self.profile else {}
        encoders = self._module.encoders
        encoder_type = encoders.H264Encoder
        libav = getattr(encoders, "LibavH264Encoder", None)
        software = libav is not None and issubclass(encoder_type, libav)
        if hasattr(encoder_type, "_check_for_picture"):
            # The V4L2 encoder drops buffers of SPS and PPS without a picture; _AccessUnits
            # sends them with the next picture, which a late receiver needs to start from.
            encoder_type = type(
                "Picamera2SourceH264Encoder", (encoder_type,), {"_check_for_picture": _keep}
            )
        encoder = encoder_type(
            bitrate=bitrate, repeat=True, iperiod=2 * self.fps, framerate=self.fps, **kwargs
        )
        if software:
            encoder.threads = 1  # libx264's frame threads hold back a frame per extra thread
        self._keyframe_by_restart = software
        camera.start_encoder(encoder, self._make_output(self._generation, (width, height)))
        self._encoder = encoder
        self._applied = (width, height, bitrate)
        self._restart_encoder = False

    def _stop_encoder(self, camera: Any) -> None:
        encoder, self._encoder = self._encoder, None
        if encoder is not None:
            camera.stop_encoder(encoder)

    def _make_output(self, generation: int, size: tuple[int, int]) -> Any:
        loop = self._loop
        assert loop is not None
        access_units = _AccessUnits()

        def post(data: bytes, timestamp_us: int | None) -> None:  # picamera2's thread
            unit = access_units.complete(data)
            if unit is None:
                return
            arrived, capture_time = time.monotonic(), time.time()
            with contextlib.suppress(RuntimeError):  # the loop closed while the camera stopped
                loop.call_soon_threadsafe(
                    self._arrive, generation, unit, timestamp_us, arrived, capture_time, size
                )

        # picamera2's encoders accept instances of its own Output class only.
        output_type = type(
            "Picamera2SourceOutput", (_CameraOutput, self._module.outputs.Output), {}
        )
        return output_type(post)

    def _reconfigure(self) -> None:
        self._reconfigure_scheduled = False
        camera = self._camera
        if camera is None or self._applied is None:
            return
        width, height, bitrate = self.width, self.height, self._bitrate
        old_width, old_height, old_bitrate = self._applied
        if (width, height) != (old_width, old_height):
            log.info(
                "%s: %dx%d -> %dx%d at %d bit/s",
                self._what,
                old_width,
                old_height,
                width,
                height,
                bitrate,
            )
            # Released and opened again at the new size: camera.stop() would wait in picamera2's
            # processing thread, which a failed encoder or a lost camera may have ended (then
            # for ever); close() stops that thread first. It costs a moment of video, once.
            self._camera = None
            self._release(camera)
            self._open()
        elif bitrate != old_bitrate or self._restart_encoder:
            log.info("%s: encoder restarted at %d bit/s", self._what, bitrate)
            self._stop_encoder(camera)
            self._start_encoder(camera)

    def _close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is None:
            self._stop_previews(None)
            return
        self._release(camera)

    def _release(self, camera: Any) -> None:
        """Stop the self-view and the encoder, then close the camera; each step is tried."""
        # Not camera.stop(): it would wait behind picamera2's queued jobs, and for ever if its
        # event loop died. close() stops the event loop first, then the camera.
        steps = (
            ("stop the self-view", self._stop_previews),
            ("stop the encoder", self._stop_encoder),
            ("close", _close_camera),
        )
        for action, step in steps:
            try:
                step(camera)
            except Exception as exc:  # closing goes on: the camera must be released
                log.warning("%s: cannot %s: %s", self._what, action, exc)

    # -- the self-view thread ---------------------------------------------------------------

    def _start_previews(self, camera: Any) -> None:
        loop = self._loop
        assert loop is not None
        stop = self._preview_stop = threading.Event()
        thread = self._preview_thread = threading.Thread(
            target=self._capture_previews,
            args=(camera, stop, loop),
            name=f"picamera2-preview-{self.camera_num}",
            daemon=True,
        )
        thread.start()

    def _stop_previews(self, camera: Any) -> None:
        """End the self-view thread and cancel its captures still queued in picamera2 (a
        capture that timed out stays queued, and every later job waits behind it)."""
        thread, self._preview_thread = self._preview_thread, None
        self._preview_stop.set()
        if camera is not None:
            camera.cancel_all_and_flush()  # wakes a capture waiting now
        if thread is not None:
            thread.join(timeout=2 * PREVIEW_WAIT)
        if camera is not None:
            camera.cancel_all_and_flush()  # one queued just before the thread saw the stop

    def _capture_previews(
        self, camera: Any, stop: threading.Event, loop: asyncio.AbstractEventLoop
    ) -> None:
        # One capture at a time: one that times out stays queued in picamera2, so it is waited
        # for again rather than asked for anew (they would pile up while frames do not come).
        job = None
        while not stop.is_set():
            try:
                if job is None:
                    job = camera.capture_array("lores", wait=False)
                array = camera.wait(job, timeout=PREVIEW_WAIT)
                job = None
                width, height = self._lores_size
                frame = yuv420_frame(array, width, height)
            except TimeoutError:
                continue  # no frame yet: look at the stop flag, then wait for the same one
            except Exception as exc:  # cancelled (the camera stops or restarts), or it failed
                job = None
                if stop.is_set():
                    break
                log.debug("%s: no self-view frame: %s", self._what, exc)
                stop.wait(0.1)
                continue
            try:
                loop.call_soon_threadsafe(self._show_preview, frame)
            except RuntimeError:  # the loop is closed
                break


def _close_camera(camera: Any) -> None:
    camera.close()


def _keep(encoder: Any, buffer: bytes) -> bool:
    """Every encoded buffer goes to the output (``_check_for_picture`` of picamera2's V4L2
    encoder)."""
    return True


def _reason(exc: BaseException) -> str:
    """The message of a picamera2 error, with what caused it (picamera2 wraps libcamera's)."""
    cause = exc.__cause__
    return f"{exc} ({cause})" if cause is not None and str(cause) else str(exc)
