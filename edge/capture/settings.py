"""The ``[source]`` section: which camera, stream, file or folder, and how to read it."""

from __future__ import annotations

from dataclasses import dataclass

from emocam.edge.field_checks import check_range, check_whole


@dataclass(frozen=True, slots=True)
class SourceConfig:
    name: str = "auto"  # auto | picamera2 | V4L2 index | /dev/videoN | file | folder | rtsp:// | http://
    width: int = 640  # camera capture size (cameras only; files keep theirs)
    height: int = 480
    fps: float = 30.0  # camera frame rate, and the rate of an image folder
    realtime: bool = True  # files play at their own rate; false = as fast as possible

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"name={self.name!r} is empty; use auto, picamera2, a V4L2 index, a file, a folder "
                             "or a URL")
        check_whole("width", self.width, 16, 8192)
        check_whole("height", self.height, 16, 8192)
        check_range("fps", self.fps, above=0)
