"""File sources: a video file or a folder of images, read on demand.

In realtime mode they play at their own frame rate and skip frames the loop is too slow for, as a
camera would; otherwise they go as fast as the loop can, stamped with the media's own timestamps.
Both end with None.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from emocam.edge.capture.frames import Clock, Frame, SourceBase
from emocam.edge.capture.opencv import open_capture
from emocam.edge.errors import SourceError
from emocam.edge.log_limit import LogLimiter

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"})
_NAMED = 3  # undecodable images named in a folder's warning; the rest are counted



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


class FileSource(SourceBase):
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


def _open_video(path: Path) -> cv2.VideoCapture:
    """An MJPEG .avi through OpenCV's own reader, anything else (or an .avi it refuses) through FFmpeg.

    OpenCV's reader decodes with libjpeg-turbo, as ``cv2.imread`` and training's JPEG test faces do,
    and gives the same pixels on Arm and x86; FFmpeg's YUV -> BGR conversion differs between the
    two (tests/arm64 measures it). It is also faster: 11.5 against 27.6 ms a 640x480 frame here.
    """
    if path.suffix.lower() == ".avi":
        capture = open_capture(str(path), cv2.CAP_OPENCV_MJPEG)
        if capture.isOpened():
            return capture
        capture.release()  # not MJPEG inside (XVID, H.264 ...): FFmpeg reads those
    return open_capture(str(path))


class VideoFileSource(FileSource):
    """A video file; ends with None. Timestamps are the file's own."""

    def __init__(self, path: Path, realtime: bool, clock: Clock) -> None:
        super().__init__(realtime, clock)
        self.path = Path(path)
        self.name = f"video file {self.path}"
        self._capture: cv2.VideoCapture | None = None
        self._period = 1 / 30
        self._last_ts = -1.0
        self._position = 0
        self._by_position = False

    def open(self) -> None:
        if not self.path.is_file():
            raise SourceError(f"video file {self.path} does not exist")
        capture = _open_video(self.path)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"{self.path} is not a video OpenCV can decode (try an MJPG .avi or an .mp4)")
        fps = capture.get(cv2.CAP_PROP_FPS)
        if not 0 < fps <= 1000:
            log.warning("%s reports no usable frame rate (%r); assuming 30 fps", self.path, fps)
            fps = 30.0
        self._capture = capture
        # OpenCV's MJPEG reader reports the position after the frame just read: count frames instead
        # (an AVI has one constant frame rate).
        self._by_position = capture.getBackendName() == "CV_MJPEG"
        self._period = 1 / fps
        self._start_pacing(self._period)
        log.info("opened %s (%.3g fps, %s)", self.path, fps, "realtime" if self._realtime else "as fast as possible")

    def _media_time(self, capture: cv2.VideoCapture) -> float:
        if self._by_position:
            return self._position * self._period
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


class ImageFolderSource(FileSource):
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
