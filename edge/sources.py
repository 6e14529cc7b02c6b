"""Frame sources: cameras, streams, video files and image folders, all handing out BGR frames.

Live sources (a camera, an rtsp/http stream) are read by a capture thread that keeps only the
newest frame in a one-slot hand-off, so the frame loop never works on a stale frame and capture
never waits on inference; replaced frames are counted as dropped. File sources are read on demand:
in realtime mode they play at their own frame rate and skip frames the loop is too slow for, like a
camera would; otherwise they go as fast as the loop can, stamped with the media's own timestamps.

Every source is a context manager and is always closed. ``read`` returns None only at the end of a
file or folder; a live source that stops delivering raises SourceError, and the daemon reopens it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

import cv2
import numpy as np

from emocam.edge.config import SourceConfig
from emocam.edge.errors import SourceError
from emocam.edge.log_limit import LogLimiter

log = logging.getLogger(__name__)

SAMPLE_CLIP = Path(__file__).resolve().parent / "samples" / "astronaut.avi"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"})
STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://")
FRAME_TIMEOUT = 5.0  # a live source silent this long is treated as failed and reopened
_V4L2_PATH = re.compile(r"^/dev/video(\d+)$")
_V4L2_NODE = re.compile(r"^video(\d+)$")
_NAMED = 3  # undecodable images named in a folder's warning; the rest are counted


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame on its way through the pipeline."""

    image: np.ndarray  # H x W x 3, BGR, uint8 (what OpenCV expects)
    timestamp: float  # seconds: monotonic capture time (live) or media time (files)
    index: int  # frames delivered by this source so far, counting from 0


class Clock(Protocol):
    """Time as the pipeline sees it; tests pass a fake so nothing sleeps for real."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class FrameSource(Protocol):
    """Where frames come from. ``open``/``close`` may be called again to reopen after a failure."""

    name: str
    live: bool  # True: a camera or stream (reopened on failure); False: a file that ends

    @property
    def dropped(self) -> int: ...  # frames replaced before the loop took them, or skipped to keep time

    @property
    def skipped(self) -> int: ...  # unreadable frames or images, logged and passed over

    def open(self) -> None: ...

    def read(self) -> Frame | None: ...  # the newest frame; None at the end of a file or folder

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class _SourceBase:
    """Context-manager plumbing and counters shared by the concrete sources."""

    name: str = "source"
    live: bool = False

    def __init__(self) -> None:
        self._dropped = 0
        self._skipped = 0

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def skipped(self) -> int:
        return self._skipped

    def open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Backoff:
    """Exponential delays between reopen attempts: 1, 2, 4 ... capped at 30 s; reset on success."""

    def __init__(self, initial: float = 1.0, maximum: float = 30.0, factor: float = 2.0) -> None:
        self._initial = initial
        self._maximum = maximum
        self._factor = factor
        self._next = initial

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * self._factor, self._maximum)
        return delay

    def reset(self) -> None:
        self._next = self._initial


# --- live sources -------------------------------------------------------------------------------


class LatestFrame:
    """One-slot hand-off from a capture thread: a new frame replaces an untaken one (counted)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._error: SourceError | None = None
        self.dropped = 0

    def reset(self) -> None:
        with self._cond:
            self._frame = None
            self._error = None

    def put(self, frame: Frame) -> None:
        with self._cond:
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self._cond.notify()

    def fail(self, error: SourceError) -> None:
        with self._cond:
            self._error = error
            self._cond.notify()

    def take(self, timeout: float) -> Frame | None:
        """The newest frame, waiting up to ``timeout`` s; raises the capture thread's error."""
        with self._cond:
            self._cond.wait_for(lambda: self._frame is not None or self._error is not None, timeout)
            frame, self._frame = self._frame, None
            if frame is None and self._error is not None:
                raise self._error
            return frame


class Grabber(Protocol):
    """A device that blocks until its next image: an OpenCV capture, a picamera2 camera."""

    description: str

    def open(self) -> None: ...

    def grab(self) -> np.ndarray: ...  # BGR uint8; raises SourceError when the device fails

    def close(self) -> None: ...


class LiveSource(_SourceBase):
    """Runs a Grabber on a capture thread and hands the loop only the newest frame."""

    live = True

    def __init__(self, grabber: Grabber, frame_timeout: float = FRAME_TIMEOUT) -> None:
        super().__init__()
        self.name = grabber.description
        self._grabber = grabber
        self._frame_timeout = frame_timeout
        self._slot = LatestFrame()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._index = 0

    @property
    def dropped(self) -> int:
        return self._slot.dropped

    def open(self) -> None:
        self._grabber.open()
        self._slot.reset()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._capture, args=(self._stop,), name="capture", daemon=True)
        self._thread.start()
        log.info("opened %s", self.name)

    def _capture(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                image = self._grabber.grab()
            except SourceError as exc:
                self._slot.fail(exc)
                return
            if stop.is_set():
                return
            self._slot.put(Frame(image, time.monotonic(), self._index))
            self._index += 1

    def read(self) -> Frame | None:
        if self._thread is None:
            raise SourceError(f"{self.name} is not open")
        frame = self._slot.take(self._frame_timeout)
        if frame is None:
            raise SourceError(f"{self.name} delivered no frame for {self._frame_timeout:g} s")
        return frame

    def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout=self._frame_timeout)
        if thread.is_alive():
            # Releasing a device under a thread blocked in its read can crash the driver binding;
            # leave it to the daemon thread and let the reopen take a fresh handle.
            log.warning("capture thread of %s is stuck in the driver; abandoning it", self.name)
            return
        self._grabber.close()
        log.info("closed %s", self.name)


class OpenCVCamera:
    """A V4L2 device or a network stream read through cv2.VideoCapture."""

    def __init__(self, target: int | str, width: int, height: int, fps: float) -> None:
        self._target = target
        self._size = (width, height)
        self._fps = fps
        self._capture: cv2.VideoCapture | None = None
        if isinstance(target, str) and target.startswith(STREAM_SCHEMES):
            self._api = cv2.CAP_ANY
            self.description = _redact_url(target)
        else:
            self._api = cv2.CAP_V4L2
            self.description = f"V4L2 camera {target}"

    def open(self) -> None:
        capture = cv2.VideoCapture(self._target, self._api)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"cannot open {self.description}; check that it exists and is not in use")
        if self._api == cv2.CAP_V4L2:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self._size[0])
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self._size[1])
            capture.set(cv2.CAP_PROP_FPS, self._fps)
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver's queue would serve stale frames first
        self._capture = capture

    def grab(self) -> np.ndarray:
        if self._capture is None:
            raise SourceError(f"{self.description} is not open")
        ok, image = self._capture.read()
        if not ok or image is None:
            raise SourceError(f"{self.description} stopped delivering frames")
        return image

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


def _redact_url(url: str) -> str:
    """Stream URLs may carry a password (rtsp://user:secret@host); never log it."""
    return re.sub(r"(://[^/:@]+):[^/@]*@", r"\1:***@", url)


# --- file sources -------------------------------------------------------------------------------


class RealtimePacer:
    """Maps media time onto the clock so a file plays at its own rate, the way a camera would."""

    def __init__(self, clock: Clock, period: float) -> None:
        self._clock = clock
        self._period = period
        self._offset: float | None = None  # clock time minus media time

    def late(self, media_time: float) -> bool:
        """True when the frame at ``media_time`` is over a frame period overdue: skip it."""
        now = self._clock.monotonic()
        if self._offset is None:
            self._offset = now - media_time
            return False
        return now - (self._offset + media_time) > self._period

    def wait(self, media_time: float) -> None:
        assert self._offset is not None, "late() sets the offset first"
        delay = self._offset + media_time - self._clock.monotonic()
        if delay > 0:
            self._clock.sleep(delay)


class _FileSource(_SourceBase):
    """What a video file and an image folder share: realtime pacing, skipping and frame numbering."""

    live = False

    def __init__(self, realtime: bool, clock: Clock) -> None:
        super().__init__()
        self._realtime = realtime
        self._clock = clock
        self._pacer: RealtimePacer | None = None
        self._index = 0
        self._bad = LogLimiter(log)

    def _start_pacing(self, period: float) -> None:
        self._pacer = RealtimePacer(self._clock, period) if self._realtime else None

    def _overdue(self, media_time: float) -> bool:
        """Realtime only: the frame at ``media_time`` is too late to show; it is counted as dropped."""
        if self._pacer is not None and self._pacer.late(media_time):
            self._dropped += 1
            return True
        return False

    def _unreadable(self, message: str, *args: object) -> None:
        self._skipped += 1
        self._bad.warning(self._clock.monotonic(), message, *args)

    def _deliver(self, image: np.ndarray, media_time: float) -> Frame:
        """Wait for the frame's moment (realtime only) and hand it out with the next index."""
        if self._pacer is not None:
            self._pacer.wait(media_time)
        frame = Frame(image, media_time, self._index)
        self._index += 1
        return frame


class VideoFileSource(_FileSource):
    """A video file; ends with None. Timestamps are the file's own."""

    def __init__(self, path: Path, realtime: bool, clock: Clock) -> None:
        super().__init__(realtime, clock)
        self.path = Path(path)
        self.name = f"video file {self.path}"
        self._capture: cv2.VideoCapture | None = None
        self._period = 1 / 30
        self._last_ts = -1.0
        self._position = 0

    def open(self) -> None:
        if not self.path.is_file():
            raise SourceError(f"video file {self.path} does not exist")
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"{self.path} is not a video OpenCV can decode (try an MJPG .avi or an .mp4)")
        fps = capture.get(cv2.CAP_PROP_FPS)
        if not 0 < fps <= 1000:
            log.warning("%s reports no usable frame rate (%r); assuming 30 fps", self.path, fps)
            fps = 30.0
        self._capture = capture
        self._period = 1 / fps
        self._start_pacing(self._period)
        log.info("opened %s (%.3g fps, %s)", self.path, fps, "realtime" if self._realtime else "as fast as possible")

    def _media_time(self, capture: cv2.VideoCapture) -> float:
        # The container's timestamp when it has one; some give 0 or repeat, so never go backwards.
        ts = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000
        if ts <= self._last_ts:
            ts = self._last_ts + self._period if self._position else 0.0
        self._last_ts = ts
        return ts

    def read(self) -> Frame | None:
        if self._capture is None:
            raise SourceError(f"{self.name} is not open")
        while True:
            if not self._capture.grab():  # grab() without decoding: skipped frames cost little
                return None
            ts = self._media_time(self._capture)
            self._position += 1
            if self._overdue(ts):
                continue
            ok, image = self._capture.retrieve()
            if not ok or image is None:
                self._unreadable("%s: frame %d cannot be decoded; skipped", self.path, self._position - 1)
                continue
            return self._deliver(image, ts)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
            log.info("closed %s", self.path)


class ImageFolderSource(_FileSource):
    """The images of a folder in name order, as frames ``1/fps`` s apart; unreadable ones skipped.

    Skipped images are named at DEBUG as they come and summed up in one warning at the end (or at
    close, when stopped earlier): the first few names and a count. A folder where no image decodes
    is a SourceError (exit 4), like a folder without images.
    """

    def __init__(self, folder: Path, fps: float, realtime: bool, clock: Clock) -> None:
        super().__init__(realtime, clock)
        self.folder = Path(folder)
        self.name = f"image folder {self.folder}"
        self._period = 1 / fps
        self._files: list[Path] = []
        self._position = 0
        self._undecodable: list[str] = []  # the first few names of those that cannot be decoded
        self._undecodable_count = 0
        self._reported = False

    def open(self) -> None:
        if not self.folder.is_dir():
            raise SourceError(f"image folder {self.folder} does not exist")
        self._files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self._files:
            raise SourceError(f"image folder {self.folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        self._position = 0
        self._undecodable = []
        self._undecodable_count = 0
        self._reported = False
        self._start_pacing(self._period)
        log.info("opened %s (%d images)", self.folder, len(self._files))

    def read(self) -> Frame | None:
        while self._position < len(self._files):
            path = self._files[self._position]
            ts = self._position * self._period  # by position, so a skipped image keeps the timing
            self._position += 1
            if self._overdue(ts):
                continue
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                self._skipped += 1
                self._undecodable_count += 1
                if len(self._undecodable) < _NAMED:
                    self._undecodable.append(path.name)
                log.debug("image %s cannot be decoded; skipped", path)
                continue
            return self._deliver(image, ts)
        if self._index == 0 and self._undecodable_count:
            self._reported = True
            raise SourceError(
                f"image folder {self.folder}: none of its {self._undecodable_count} images can be decoded "
                f"({self._some_undecodable()}); check that they are whole image files OpenCV reads "
                "(JPEG, PNG, BMP, WebP, TIFF, PGM/PPM)"
            )
        self._report_undecodable()
        return None

    def _report_undecodable(self) -> None:
        if self._undecodable_count and not self._reported:
            self._reported = True
            log.warning(
                "image folder %s: skipped %d of %d images that cannot be decoded: %s",
                self.folder, self._undecodable_count, self._position, self._some_undecodable(),
            )

    def _some_undecodable(self) -> str:
        """The first few names, then how many more: 'a.jpg, b.jpg, c.jpg and 4 more'."""
        listed = ", ".join(self._undecodable)
        more = self._undecodable_count - len(self._undecodable)
        return f"{listed} and {more} more" if more else listed

    def close(self) -> None:
        self._report_undecodable()
        self._files = []


# --- choosing a source --------------------------------------------------------------------------


def make_source(config: SourceConfig, clock: Clock, sample: Path = SAMPLE_CLIP) -> FrameSource:
    """Build (not open) the source ``config.name`` names; ``auto`` probes for a camera."""
    spec = config.name
    if spec == "auto":
        return _auto_source(config, clock, sample)
    if spec == "picamera2":
        from emocam.edge.picamera_source import Picamera2Camera  # picamera2 itself is imported only there

        return LiveSource(Picamera2Camera(config.width, config.height, config.fps))
    if spec.isdigit():
        return LiveSource(OpenCVCamera(int(spec), config.width, config.height, config.fps))
    match = _V4L2_PATH.match(spec)
    if match:
        return LiveSource(OpenCVCamera(int(match.group(1)), config.width, config.height, config.fps))
    if spec.startswith(STREAM_SCHEMES):
        return LiveSource(OpenCVCamera(spec, config.width, config.height, config.fps))
    path = Path(spec).expanduser()
    if path.is_dir():
        return ImageFolderSource(path, config.fps, config.realtime, clock)
    if path.is_file():
        return VideoFileSource(path, config.realtime, clock)
    raise SourceError(
        f"source {spec!r} is not a camera, stream, file or folder; use auto, picamera2, a V4L2 index "
        "(0) or /dev/videoN, an rtsp:// or http:// URL, a video file or a folder of images"
    )


def _auto_source(config: SourceConfig, clock: Clock, sample: Path) -> FrameSource:
    """picamera2 if it finds a camera, else the first V4L2 capture device, else the bundled sample."""
    from emocam.edge.picamera_source import Picamera2Camera, picamera2_cameras

    cameras, why_not = picamera2_cameras()
    if cameras:
        log.info("auto source: picamera2 found %d camera(s)", cameras)
        return LiveSource(Picamera2Camera(config.width, config.height, config.fps))
    index = first_v4l2_camera()
    if index is not None:
        log.info("auto source: V4L2 camera /dev/video%d", index)
        return LiveSource(OpenCVCamera(index, config.width, config.height, config.fps))
    log.warning(
        "no camera found (picamera2: %s; V4L2: no /dev/video* capture device); playing the bundled "
        "sample %s instead. Connect a camera, or pass --source",
        why_not, sample,
    )
    return VideoFileSource(sample, config.realtime, clock)


def first_v4l2_camera(dev: Path = Path("/dev")) -> int | None:
    """Index of the first /dev/videoN that OpenCV opens as a capture device.

    Checked in numeric order; nodes that are not capture devices (a webcam's metadata node, the
    Pi's codec and ISP nodes) fail to open and are passed over.
    """
    indexes = sorted(int(m.group(1)) for p in dev.glob("video*") if (m := _V4L2_NODE.match(p.name)))
    for index in indexes:
        capture = cv2.VideoCapture(index, cv2.CAP_V4L2)
        try:
            if capture.isOpened():
                return index
        finally:
            capture.release()
    return None
