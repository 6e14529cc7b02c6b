"""The preprocessing contract shared by training, conversion and the device.

face crop -> grayscale -> resize to the model input -> uint8 pixels 0..255.
Normalization (x / 255) lives inside the model, so the contract ends at uint8 and the int8
model's input quantization (scale 1, zero point -128) is exact.

Resizing uses only modes that give bit-identical pixels on x86 and Arm (COMPONENTS.md):
INTER_AREA to shrink, INTER_LINEAR_EXACT to enlarge. INTER_LINEAR differs by +-1 on about a
quarter of the pixels between the two, which is enough to flip a class now and then.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

RESIZE_MODE = "area_down_linear_exact_up"


@dataclass(frozen=True, slots=True)
class Preprocessing:
    """How a face crop becomes a model input; recorded in every model sidecar."""

    size: int = 48
    color: str = "gray"
    resize: str = RESIZE_MODE
    input_range: tuple[int, int] = (0, 255)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["input_range"] = list(self.input_range)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessing:
        """Build from a sidecar's ``preprocessing`` block; raises ValueError on anything unknown."""
        unknown = set(data) - {"size", "color", "resize", "input_range"}
        if unknown:
            raise ValueError(f"unknown preprocessing keys {sorted(unknown)}")
        prep = cls(
            size=int(data.get("size", 48)),
            color=str(data.get("color", "gray")),
            resize=str(data.get("resize", RESIZE_MODE)),
            input_range=tuple(int(v) for v in data.get("input_range", (0, 255))),  # type: ignore[arg-type]
        )
        if prep.color != "gray":
            raise ValueError(f"preprocessing.color={prep.color!r}; only 'gray' is supported")
        if prep.resize != RESIZE_MODE:
            raise ValueError(f"preprocessing.resize={prep.resize!r}; only {RESIZE_MODE!r} is supported")
        if prep.input_range != (0, 255):
            raise ValueError(f"preprocessing.input_range={list(prep.input_range)}; only [0, 255] is supported")
        if not 8 <= prep.size <= 512:
            raise ValueError(f"preprocessing.size={prep.size}; expected 8..512")
        return prep


def to_gray(image: np.ndarray) -> np.ndarray:
    """Return a 2-D uint8 grayscale copy of a gray, BGR or BGRA image (OpenCV channel order)."""
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    raise ValueError(f"expected a gray, BGR or BGRA image, got shape {image.shape}")


def resize_exact(gray: np.ndarray, size: int) -> np.ndarray:
    """Resize a 2-D image to size x size with the platform-exact modes of the contract."""
    height, width = gray.shape[:2]
    if (height, width) == (size, size):
        return gray
    shrinking = height >= size and width >= size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR_EXACT
    return cv2.resize(gray, (size, size), interpolation=interpolation)


def prepare_face(crop: np.ndarray, prep: Preprocessing = Preprocessing()) -> np.ndarray:
    """One face crop (any size, gray or BGR) -> (size, size) uint8, exactly as training saw it."""
    if crop.size == 0:
        raise ValueError("empty face crop")
    return resize_exact(to_gray(crop), prep.size)


def stack_faces(faces: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """Prepared faces -> an (N, size, size, 1) uint8 batch, the layout every model takes."""
    batch = np.asarray(faces, dtype=np.uint8)
    if batch.ndim == 3:
        batch = batch[..., np.newaxis]
    if batch.ndim != 4 or batch.shape[-1] != 1:
        raise ValueError(f"expected (N, H, W) or (N, H, W, 1) faces, got {batch.shape}")
    return batch
