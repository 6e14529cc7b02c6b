"""The Raspberry Pi camera through picamera2, the only module that imports it (lazily).

picamera2 comes from apt on Raspberry Pi OS (python3-picamera2) and cannot work elsewhere, so it is
imported inside these functions, never at module level. Its "RGB888" format is B,G,R in memory,
which is what OpenCV and the rest of the pipeline expect, so frames need no conversion.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

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
    """A libcamera camera: one RGB888 (BGR in memory) main stream of the configured size."""

    def __init__(self, width: int, height: int, fps: float, camera_num: int = 0) -> None:
        self._size = (width, height)
        self._fps = fps
        self._camera_num = camera_num
        self._camera: Any = None
        self.description = f"picamera2 camera {camera_num}"

    def open(self) -> None:
        try:
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
                controls={"FrameRate": self._fps},
            )
            camera.configure(config)
            camera.start()
        except _CAMERA_ERRORS as exc:
            camera.close()
            raise SourceError(f"cannot start {self.description} at {self._size} ({exc})") from exc
        self._camera = camera

    def grab(self) -> np.ndarray:
        if self._camera is None:
            raise SourceError(f"{self.description} is not open")
        try:
            image: np.ndarray = self._camera.capture_array("main")
        except _CAMERA_ERRORS as exc:
            raise SourceError(f"{self.description} stopped delivering frames ({exc})") from exc
        return image

    def close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is None:
            return
        try:
            camera.stop()
        finally:
            camera.close()
