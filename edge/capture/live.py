"""Live sources: a camera or a stream, read by a capture thread into a one-slot hand-off.

The loop always gets the newest frame and capture never waits on inference: a frame the loop had
no time for is replaced and counted as dropped. A camera that goes silent for ``FRAME_TIMEOUT`` s
raises SourceError, and the daemon reopens it with back-off.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Protocol

import cv2

from emocam.edge.capture.frames import Frame, Picture, SourceBase
from emocam.edge.capture.opencv import open_capture
from emocam.edge.errors import SourceError

log = logging.getLogger(__name__)

STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://")
FRAME_TIMEOUT = 5.0  # a live source silent this long is treated as failed and reopened



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

    def grab(self) -> Picture: ...  # BGR uint8 (and luma); raises SourceError when the device fails

    def close(self) -> None: ...


class LiveSource(SourceBase):
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
                picture = self._grabber.grab()
            except SourceError as exc:
                self._slot.fail(exc)
                return
            if stop.is_set():
                return
            self._slot.put(Frame(picture.image, time.monotonic(), self._index, picture.gray))
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
        capture = open_capture(self._target, self._api)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"cannot open {self.description}; check that it exists and is not in use")
        if self._api == cv2.CAP_V4L2:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self._size[0])
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self._size[1])
            capture.set(cv2.CAP_PROP_FPS, self._fps)
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver's queue would serve stale frames first
        self._capture = capture

    def grab(self) -> Picture:
        if self._capture is None:
            raise SourceError(f"{self.description} is not open")
        ok, image = self._capture.read()
        if not ok or image is None:
            raise SourceError(f"{self.description} stopped delivering frames")
        return Picture(image)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


def _redact_url(url: str) -> str:
    """Stream URLs may carry a password (rtsp://user:secret@host); never log it."""
    return re.sub(r"(://[^/:@]+):[^/@]*@", r"\1:***@", url)
