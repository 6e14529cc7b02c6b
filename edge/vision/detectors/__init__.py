"""Face detectors behind the emocam.edge.vision.faces.FaceDetector protocol, chosen by name.

"blazeface" (MediaPipe, 6 landmarks) is preferred: its eye points let emocam.edge.vision.align level the face.
"haar" (OpenCV 4 cascade, box only) is the fallback. "auto" takes BlazeFace when its model file is
there (it ships in edge/vision/detectors/models/), else Haar.
"""

from __future__ import annotations

import logging

from emocam.edge.errors import DetectorError
from emocam.edge.vision.detectors.blazeface import INSTALL_HINT, BlazeFaceDetector, default_model_path
from emocam.edge.vision.detectors.haar import HaarFaceDetector
from emocam.edge.vision.faces import FaceDetector
from emocam.edge.vision.settings import DETECTOR_NAMES

log = logging.getLogger(__name__)

__all__ = ["DETECTOR_NAMES", "BlazeFaceDetector", "HaarFaceDetector", "make_detector"]


def make_detector(
    name: str = "auto", *, min_score: float = 0.6, num_threads: int = 1, model: str = "short"
) -> FaceDetector:
    """Build the named detector once, at start-up; raises DetectorError saying how to fix it.

    ``min_score`` and ``num_threads`` apply to BlazeFace (Haar has neither a score nor threads);
    ``model`` picks BlazeFace's "short" or "full" range model. At 640x480 "short" finds faces from
    about 75 px wide (within ~1 m of a 62-degree camera) and "full" from about 40 px (~2 m).
    Measured on a 2-core x86 VM, one thread, 640x480: "short" 1.5 ms a frame plus ~1.6 ms per
    face for its landmark refinement; "full" 4.7 ms a frame (see emocam.edge.vision.detectors.blazeface).
    """
    if name == "auto":
        if default_model_path(model) is not None:
            name = "blazeface"
        else:
            log.warning("BlazeFace model missing (%s); falling back to Haar, no landmarks", INSTALL_HINT)
            name = "haar"
    if name == "blazeface":
        return BlazeFaceDetector(min_score=min_score, num_threads=num_threads, model=model)
    if name == "haar":
        return HaarFaceDetector()
    raise DetectorError(f"face detector {name!r} is unknown; use one of {', '.join(DETECTOR_NAMES)}")
