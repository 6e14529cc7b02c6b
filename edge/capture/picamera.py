"""The Raspberry Pi camera through picamera2, the only module that imports it (lazily).

picamera2 comes from apt on Raspberry Pi OS (python3-picamera2) and cannot work elsewhere, so it is
imported inside these functions, never at module level.

Two streams of the same size come from each request: "main" in RGB888, which is B,G,R in memory
(what OpenCV and the face detector take, no conversion), and "lores" in YUV420, whose Y plane is
the classifier's grey. That grey is the ISP's own luma, the same bytes whatever CPU reads it,
where BGR -> grey on the CPU is not (COMPONENTS.md). The colour space is sYCC: full-range BT.601,
the luma JPEG and FER-2013's faces have; picamera2's video default is limited range (16..235),
which would flatten every face's contrast. picamera2 returns YUV420 as a (H * 3/2, stride) array
whose stride may be wider than the image: the Y plane is its top H rows, cut to W columns.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from emocam.edge.capture.frames import Picture
from emocam.edge.errors import SourceError

log = logging.getLogger(__name__)

# What picamera2 and libcamera raise when a camera is missing, busy or misconfigured.
_CAMERA_ERRORS = (RuntimeError, OSError, ValueError, IndexError)


def picamera2_cameras() -> tuple[int, str]:
    """(number of cameras picamera2 sees, why none when 0), without opening any of them."""
    try:
        from picamera2 import Picamera2
    except ImportError:
        return 0, "not installed (apt install python3-picamera2)"
    except ValueError as exc:
        # apt's picamera2 built against numpy 1.x fails to import under a pip-installed numpy 2.
        return 0, f"cannot be imported ({exc}); pin numpy<2 in the venv"
    try:
        count = len(Picamera2.global_camera_info())
    except _CAMERA_ERRORS as exc:
        return 0, f"camera enumeration failed ({exc})"
    return count, "" if count else "no camera connected"


class Picamera2Camera:
    """A libcamera camera: RGB888 (BGR in memory) for the detector, YUV420's luma for the classifier."""

    def __init__(self, width: int, height: int, fps: float, camera_num: int = 0) -> None:
        self._size = (width, height)
        self._fps = fps
        self._camera_num = camera_num
        self._camera: Any = None
        self._lores_size: tuple[int, ...] = self._size
        self.description = f"picamera2 camera {camera_num}"

    def open(self) -> None:
        try:
            from libcamera import ColorSpace
            from picamera2 import Picamera2
        except (ImportError, ValueError) as exc:
            raise SourceError(
                f"picamera2 cannot be imported ({exc}); on Raspberry Pi OS run `sudo apt install "
                "python3-picamera2` and make the venv with --system-site-packages"
            ) from exc
        try:
            camera = Picamera2(self._camera_num)
        except _CAMERA_ERRORS as exc:
            raise SourceError(f"cannot open {self.description} ({exc}); is it connected and free?") from exc
        try:
            config = camera.create_video_configuration(
                main={"format": "RGB888", "size": self._size},
                lores={"format": "YUV420", "size": self._size},
                colour_space=ColorSpace.Sycc(),
                controls={"FrameRate": self._fps},
            )
            camera.configure(config)
            # libcamera may round a size to what the sensor pipeline supports: use what it chose.
            self._lores_size = tuple(camera.camera_configuration()["lores"]["size"])
            camera.start()
        except _CAMERA_ERRORS as exc:
            camera.close()
            raise SourceError(f"cannot start {self.description} at {self._size} ({exc})") from exc
        self._camera = camera

    def grab(self) -> Picture:
        if self._camera is None:
            raise SourceError(f"{self.description} is not open")
        try:
            (bgr, yuv420), _ = self._camera.capture_arrays(["main", "lores"])  # one request: the same frame
        except _CAMERA_ERRORS as exc:
            raise SourceError(f"{self.description} stopped delivering frames ({exc})") from exc
        width, height = self._lores_size
        return Picture(bgr, luma_plane(yuv420, (width, height)))

    def close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is None:
            return
        try:
            camera.stop()
        finally:
            camera.close()


def luma_plane(yuv420: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The Y plane of picamera2's YUV420 array, (H * 3/2, stride) with stride >= W, as H x W uint8."""
    width, height = size
    if yuv420.ndim != 2 or yuv420.shape[0] != height * 3 // 2 or yuv420.shape[1] < width:
        raise SourceError(
            f"the camera's YUV420 buffer is {yuv420.shape}, expected ({height * 3 // 2}, >= {width}) for "
            f"{width}x{height}; use a size the camera supports (even width and height)"
        )
    return yuv420[:height, :width]
