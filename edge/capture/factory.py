"""Choosing a frame source from ``[source] name``: a camera, a stream, a file, a folder, or auto.

``auto`` probes picamera2, then the first V4L2 capture device, and falls back to the bundled sample
clip so the interactive demo shows something without a camera.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import cv2

from emocam.edge.capture.files import ImageFolderSource, VideoFileSource
from emocam.edge.capture.frames import Clock, FrameSource
from emocam.edge.capture.live import STREAM_SCHEMES, LiveSource, OpenCVCamera
from emocam.edge.capture.opencv import open_capture
from emocam.edge.capture.settings import SourceConfig
from emocam.edge.errors import SourceError

log = logging.getLogger(__name__)

SAMPLE_CLIP = Path(__file__).resolve().parent.parent / "samples" / "astronaut.avi"
_V4L2_PATH = re.compile(r"^/dev/video(\d+)$")
_V4L2_NODE = re.compile(r"^video(\d+)$")



def make_source(config: SourceConfig, clock: Clock, sample: Path | None = None) -> FrameSource:
    """Build (not open) the source ``config.name`` names; ``auto`` probes for a camera.

    ``sample`` is what ``auto`` plays when there is no camera: the interactive demo passes the
    bundled clip. Without it (the service, any run with a config file) no camera is a SourceError,
    exit 4, so systemd restarts the service until the camera is there, and a user's Home Assistant
    never gets the sample's events as if they were the kitchen's.
    """
    spec = config.name
    if spec == "auto":
        return _auto_source(config, clock, sample)
    if spec == "picamera2":
        from emocam.edge.capture.picamera import Picamera2Camera  # picamera2 itself is imported only there

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


def _auto_source(config: SourceConfig, clock: Clock, sample: Path | None) -> FrameSource:
    """picamera2 if it finds a camera, else the first V4L2 capture device, else ``sample`` if given."""
    from emocam.edge.capture.picamera import Picamera2Camera, picamera2_cameras

    cameras, why_not = picamera2_cameras()
    if cameras:
        log.info("auto source: picamera2 found %d camera(s)", cameras)
        return LiveSource(Picamera2Camera(config.width, config.height, config.fps))
    index = first_v4l2_camera()
    if index is not None:
        log.info("auto source: V4L2 camera /dev/video%d", index)
        return LiveSource(OpenCVCamera(index, config.width, config.height, config.fps))
    missing = f"no camera found (picamera2: {why_not}; V4L2: no /dev/video* capture device)"
    if sample is None:
        raise SourceError(
            f"{missing}; connect a camera (and check that the emocam user is in the video group), or set "
            "[source] name to a device, stream, file or folder"
        )
    log.warning("%s; playing the bundled sample %s instead. Connect a camera, or pass --source", missing, sample)
    return VideoFileSource(sample, config.realtime, clock)


def first_v4l2_camera(dev: Path = Path("/dev")) -> int | None:
    """Index of the first /dev/videoN that OpenCV opens as a capture device.

    Checked in numeric order; nodes that are not capture devices (a webcam's metadata node, the
    Pi's codec and ISP nodes) fail to open and are passed over.
    """
    indexes = sorted(int(m.group(1)) for p in dev.glob("video*") if (m := _V4L2_NODE.match(p.name)))
    for index in indexes:
        capture = open_capture(index, cv2.CAP_V4L2)
        try:
            if capture.isOpened():
                return index
        finally:
            capture.release()
    return None
