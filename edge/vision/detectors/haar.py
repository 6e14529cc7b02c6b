"""OpenCV's Haar frontal-face cascade: the fallback detector. Boxes only, no landmarks, no score.

The cascade XML ships with opencv-python(-headless) 4.x in ``cv2.data.haarcascades``. OpenCV 5
dropped both the XML files and ``CascadeClassifier``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from emocam.edge.errors import DetectorError
from emocam.edge.vision.faces import Face
from emocam.edge.vision.preprocess import to_gray

log = logging.getLogger(__name__)

CASCADE_FILE = "haarcascade_frontalface_default.xml"
_FIX = "install OpenCV 4 (`pip install 'opencv-python-headless>=4.8,<5'`) or use detector 'blazeface'"


def default_cascade_path() -> Path:
    """The frontal-face cascade that ships with OpenCV 4."""
    data = getattr(cv2, "data", None)
    folder = getattr(data, "haarcascades", None)
    if folder is None:
        raise DetectorError(f"OpenCV {cv2.__version__} ships no Haar cascades (cv2.data.haarcascades); {_FIX}")
    return Path(folder) / CASCADE_FILE


class HaarFaceDetector:
    """Haar cascade on the gray frame. Settings from COMPONENTS.md: 8-15 ms at 640x480
    with scaleFactor 1.2 and minNeighbors 5, against 48-105 ms and a false positive with defaults.
    """

    name = "haar"

    def __init__(
        self,
        cascade_path: Path | None = None,
        scale_factor: float = 1.2,
        min_neighbors: int = 5,
        min_face_fraction: float = 1 / 6,
    ) -> None:
        if not hasattr(cv2, "CascadeClassifier"):
            raise DetectorError(f"OpenCV {cv2.__version__} has no CascadeClassifier; {_FIX}")
        if scale_factor <= 1.0:
            raise DetectorError(f"Haar scale_factor={scale_factor}; expected a value above 1.0 (e.g. 1.2)")
        if min_neighbors < 0:
            raise DetectorError(f"Haar min_neighbors={min_neighbors}; expected 0 or more (e.g. 5)")
        if not 0.0 < min_face_fraction <= 1.0:
            raise DetectorError(f"Haar min_face_fraction={min_face_fraction}; expected a value in (0, 1]")
        self.cascade_path = Path(cascade_path) if cascade_path is not None else default_cascade_path()
        if not self.cascade_path.is_file():
            raise DetectorError(f"Haar cascade {self.cascade_path} does not exist; {_FIX}")
        self._cascade = cv2.CascadeClassifier(str(self.cascade_path))
        if self._cascade.empty():
            raise DetectorError(f"Haar cascade {self.cascade_path} could not be loaded; {_FIX}")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        # The smallest face searched for is a fraction of the frame's shorter side, so the cost per
        # frame stays about the same across resolutions: 1/6 of 480 px is COMPONENTS.md's 80 px.
        self.min_face_fraction = min_face_fraction
        log.info("Haar cascade %s", self.cascade_path.name)

    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        """Faces as upright boxes, largest first; score is 1.0 because the cascade gives none."""
        gray = cv2.equalizeHist(to_gray(image_bgr))
        min_side = max(20, round(min(gray.shape[:2]) * self.min_face_fraction))
        boxes = self._cascade.detectMultiScale(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(min_side, min_side)
        )
        faces = [Face(box=(float(x), float(y), float(w), float(h)), score=1.0) for x, y, w, h in boxes]
        faces.sort(key=lambda face: face.box[2] * face.box[3], reverse=True)
        log.debug("Haar: %d faces", len(faces))
        return faces
