"""Cut a face out of a frame the way FER-2013 frames its faces: eyes level, same scale and position.

With eye landmarks (BlazeFace) the crop is rotated so the eyes are level and scaled so the eyes sit
where FER-2013's do. Without them (Haar) an upright square is derived from the box with constants
measured on the same dataset. Either way the crop is finished by ``emocam.edge.vision.preprocess.prepare_face``,
so the last resize is the contract's.

The rotation is a small fixed-point bilinear sampler written in numpy rather than cv2.warpAffine:
integer weights and plain IEEE arithmetic give the same pixels on x86 and Arm by construction,
which OpenCV does not promise for its linear warps (its linear resize already differs; see
COMPONENTS.md). Large faces are first shrunk by an integer factor with INTER_AREA (exact on both),
so sampling never skips source pixels.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from emocam.edge.vision.faces import Face
from emocam.edge.vision.preprocess import Preprocessing, prepare_face, to_gray

# FER-2013 framing, measured by bench/crop_framing.py on 400 random train crops (231 passed its
# checks) with MediaPipe's 468-point face mesh as the ruler (eye centre = mean of the 16
# eye-contour points): inter-ocular distance / width median 0.357 (IQR 0.327..0.383), eye
# midpoint x / width 0.494 (0.482..0.508), y / height 0.395 (0.375..0.411), roll -1.3 deg.
# BlazeFace's eye points sit a little further apart than the mesh's contour centres, so the
# constants are set so that the same ruler on our own crops (astronaut, +-15 deg rotations, LFW
# subset: 80 faces measured) reads FER's values: 0.357 / 0.499 / 0.397 with the constants below
# (0.354 / 0.490 / 0.394 before BlazeFace's second, refining pass; the constants held for both).
EYE_DISTANCE = 0.38  # BlazeFace inter-ocular distance / crop side
EYE_LINE_X = 0.5  # eye midpoint x / crop side: centred (FER's 0.494 is within the ruler's noise)
EYE_LINE_Y = 0.395  # eye midpoint y / crop side

# Box-only framing (Haar has no landmarks). FER-2013's crops line up with OpenCV's Haar box: on
# 272 of 400 train crops (x4, padded) Haar found one face, and the crop side is 1.02 box widths
# (IQR 0.97..1.09) with centres offset by -0.002 / -0.001 box widths (IQRs within +-0.015).
# Our Haar-aligned real faces then read 0.350 / 0.483 / 0.383 with the ruler above.
BOX_TO_CROP = 1.02  # crop side / box width
BOX_SHIFT_X = 0.0  # (crop centre - box centre) x / box width
BOX_SHIFT_Y = 0.0  # (crop centre - box centre) y / box width

# Work at up to this many times the model input before the contract's INTER_AREA resize, so the
# bilinear rotation itself never has to shrink much (which would alias).
SUPERSAMPLE = 2
_WEIGHT_BITS = 8  # bilinear weights in 1/256ths: ample for 8-bit pixels


def crop_geometry(face: Face) -> tuple[tuple[float, float], float, tuple[float, float]]:
    """Where the FER-style square lies in the frame: (centre x, y), side, (cos, sin) of its rotation.

    The rotation comes from the eye vector itself (no trig calls), so it is the same on every CPU.
    """
    if face.has_eyes:
        (x1, y1), (x2, y2) = face.landmarks[0], face.landmarks[1]
        dx, dy = float(x2 - x1), float(y2 - y1)
        distance = math.sqrt(dx * dx + dy * dy)
        if distance > 0.0:
            cos, sin = dx / distance, dy / distance
            side = distance / EYE_DISTANCE
            # From the eye midpoint to the crop centre, in the crop's rotated axes.
            ox, oy = (0.5 - EYE_LINE_X) * side, (0.5 - EYE_LINE_Y) * side
            centre = ((x1 + x2) / 2 + cos * ox - sin * oy, (y1 + y2) / 2 + sin * ox + cos * oy)
            return centre, side, (cos, sin)
    x, y, width, height = face.box
    side = BOX_TO_CROP * width
    centre = (x + width / 2 + BOX_SHIFT_X * width, y + height / 2 + BOX_SHIFT_Y * width)
    return centre, side, (1.0, 0.0)


def align_face(image_bgr: np.ndarray, face: Face, prep: Preprocessing = Preprocessing()) -> np.ndarray:
    """One face of a frame -> a (size, size) uint8 crop framed like FER-2013, ready for the model.

    Parts of the square outside the frame repeat the frame's edge pixels: FER-2013 crops show image
    to their edges (a flat black or white bar on 14 of 400 measured), so a black bar would be a
    feature the model rarely saw.
    """
    if image_bgr.ndim not in (2, 3) or image_bgr.shape[0] == 0 or image_bgr.shape[1] == 0:
        raise ValueError(f"expected a non-empty gray or BGR image, got shape {image_bgr.shape}")
    (cx, cy), side, (cos, sin) = crop_geometry(face)
    if not side > 0.0 or not math.isfinite(side):
        raise ValueError(f"face {face.box} gives a crop side of {side}; the box or eyes are degenerate")
    if side > 4 * max(image_bgr.shape[:2]):  # bounds the work area; no real face is this big
        raise ValueError(f"face {face.box} {face.landmarks} gives a crop side of {side:.0f} px, "
                         f"over 4x the {image_bgr.shape[1]}x{image_bgr.shape[0]} frame")
    # Shrink big faces by an integer factor first (an exact box filter with INTER_AREA), rounded up
    # so the face then spans at most SUPERSAMPLE * size pixels and at least size pixels. Sampling
    # about one shrunk pixel per output pixel then never steps over source detail.
    limit = SUPERSAMPLE * prep.size
    shrink = max(1, math.ceil(side / limit))
    work = min(max(round(side / shrink), prep.size), limit)

    # Axis-aligned bounds of the rotated square, one pixel of margin for the bilinear neighbours.
    reach = side / 2 * (abs(cos) + abs(sin)) + 1.0
    x0 = math.floor(cx - reach)
    y0 = math.floor(cy - reach)
    span_x = math.ceil(cx + reach) - x0
    span_y = math.ceil(cy + reach) - y0
    span_x += -span_x % shrink
    span_y += -span_y % shrink
    region = _take_clamped(image_bgr, x0, y0, span_x, span_y)
    gray = to_gray(region)
    if shrink > 1:
        gray = cv2.resize(gray, (span_x // shrink, span_y // shrink), interpolation=cv2.INTER_AREA)

    # Output pixel centres in the crop's own axes, centred on the crop centre, in frame pixels.
    step = side / work
    offsets = (np.arange(work, dtype=np.float64) + 0.5) * step - side / 2
    u, v = offsets[np.newaxis, :], offsets[:, np.newaxis]
    # Rotate into the frame, then into region pixels whose centres sit on integers.
    src_x = ((cx - x0) + (cos * u - sin * v)) / shrink - 0.5
    src_y = ((cy - y0) + (sin * u + cos * v)) / shrink - 0.5
    crop = _bilinear(gray, src_x, src_y)
    return prepare_face(crop, prep)


def _take_clamped(image: np.ndarray, x0: int, y0: int, width: int, height: int) -> np.ndarray:
    """image[y0:y0+height, x0:x0+width] where indices outside the frame repeat its edge pixels."""
    rows = np.clip(np.arange(y0, y0 + height), 0, image.shape[0] - 1)
    cols = np.clip(np.arange(x0, x0 + width), 0, image.shape[1] - 1)
    return image[rows[:, np.newaxis], cols[np.newaxis, :]]


def _bilinear(gray: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Sample a 2-D uint8 image at float positions with fixed-point bilinear weights.

    Positions past the edge clamp to it (replicate). All arithmetic after the floor is integer, so
    the result does not depend on the CPU's floating-point unit.
    """
    one = 1 << _WEIGHT_BITS
    height, width = gray.shape
    fx, fy = np.floor(xs), np.floor(ys)
    wx = np.rint((xs - fx) * one).astype(np.int32)
    wy = np.rint((ys - fy) * one).astype(np.int32)
    ix, iy = fx.astype(np.int64), fy.astype(np.int64)
    x_a, x_b = np.clip(ix, 0, width - 1), np.clip(ix + 1, 0, width - 1)
    y_a, y_b = np.clip(iy, 0, height - 1), np.clip(iy + 1, 0, height - 1)
    pixels = gray.astype(np.int32)
    top = pixels[y_a, x_a] * (one - wx) + pixels[y_a, x_b] * wx
    bottom = pixels[y_b, x_a] * (one - wx) + pixels[y_b, x_b] * wx
    total = top * (one - wy) + bottom * wy
    crop: np.ndarray = ((total + (1 << (2 * _WEIGHT_BITS - 1))) >> (2 * _WEIGHT_BITS)).astype(np.uint8)
    return crop
