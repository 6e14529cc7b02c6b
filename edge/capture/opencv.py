"""``cv2.VideoCapture``, opened with what FFmpeg and OpenCV's V4L2 code print kept out of the user's way.

Opening a file that is not a video makes FFmpeg write ``moov atom not found`` to stderr, and
probing a V4L2 node that is not a camera makes OpenCV write ``[ WARN:0@0.1] ... can't open
camera by index``, beside the one line emocam prints about it. Those lines go to the debug log
instead, where ``log_level = "debug"`` shows them.
"""

from __future__ import annotations

import logging

import cv2

from emocam.edge.native_stderr import routed_stderr

log = logging.getLogger(__name__)


def _to_debug_log(line: str) -> bool:
    if line.strip():
        log.debug("OpenCV: %s", line.strip())
    return True


def open_capture(target: int | str, api: int = cv2.CAP_ANY) -> cv2.VideoCapture:
    """``cv2.VideoCapture(target, api)``; check ``isOpened()`` as usual."""
    with routed_stderr(_to_debug_log):
        return cv2.VideoCapture(target, api)
