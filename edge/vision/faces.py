"""What a face detector hands to the rest of the pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Face:
    """One detected face, in pixel coordinates of the frame it was found in.

    ``landmarks`` start with the two eyes, the one on the image's left first (the subject's right
    eye in an unmirrored frame), then nose and mouth, and ears, when the detector gives them; Haar
    gives none.
    """

    box: tuple[float, float, float, float]  # x, y, width, height
    score: float
    landmarks: tuple[Point, ...] = ()

    @property
    def has_eyes(self) -> bool:
        return len(self.landmarks) >= 2


class FaceDetector(Protocol):
    """Finds faces in a BGR uint8 frame. Built once at start-up; ``detect`` is called per frame."""

    name: str

    def detect(self, image_bgr: np.ndarray) -> list[Face]: ...
