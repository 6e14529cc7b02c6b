"""MediaPipe's BlazeFace face detector, run through LiteRT with a hand-written SSD decoder.

The model files ship inside this package, in ``edge/vision/detectors/models/`` (MediaPipe's Apache-2.0
models; their origin and digests are in the README there), so nothing is installed beside emocam.

Pipeline per frame: letterbox to the model's square RGB input scaled to [-1, 1] -> one invoke ->
sigmoid scores -> decode boxes and 6 keypoints against the SSD anchors -> weighted NMS (MediaPipe's
blending) -> undo the letterbox into frame pixels -> (short-range) a second pass on a square around
each face for steadier landmarks.

Smallest face found in a 640x480 frame (the astronaut photo scaled onto a gray frame): about 75 px
wide with the short-range model, about 40 px with the full-range one. With a 62-degree lens (Pi
Camera v2) that is a face within roughly 1 m and 2 m of the camera.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emocam.edge.errors import DetectorError, ModelError
from emocam.edge.vision.faces import Face, Point
from emocam.edge.vision.tflite_runtime import make_interpreter

log = logging.getLogger(__name__)

MODEL_DIR = Path(__file__).resolve().parent / "models"
# The models are package data: missing or corrupt means a broken install, not a missing download.
INSTALL_HINT = (
    "reinstall emocam, whose package ships it in edge/vision/detectors/models/ "
    "(`pip install --force-reinstall --no-deps .` in a checkout)"
)

# MediaPipe clips raw logits to +-100 before the sigmoid (score_clipping_thresh in its graphs).
_RAW_SCORE_LIMIT = 100.0
_NUM_KEYPOINTS = 6

# Landmark refinement: the second pass looks at a square this many times the face box, so the
# face spans ~50 of the short-range model's 128 input pixels. On the astronaut photo shifted,
# scaled (faces 80-220 px in 640x480) and rotated (-15..15 deg), 22 frames mapped back to the
# photo: eye spread (rms) 2.6 / 3.6 px and roll std 2.6 deg in one pass; 0.8 / 0.9 px and 0.8 deg
# with a 2.5x square (1.5x: 0.8 / 0.6 px, 1.0 deg; 3x: 1.1 / 1.0 px, 1.2 deg).
REFINE_SQUARE = 2.5
REFINE_MIN_IOU = 0.3  # the second pass must find the same face, not a neighbour


@dataclass(frozen=True, slots=True)
class BlazeFaceModel:
    """One BlazeFace variant: its file in MODEL_DIR and the SSD anchor layout it was trained with."""

    file_name: str
    input_size: int
    strides: tuple[int, ...]
    anchors_per_layer: int  # 2 when MediaPipe's interpolated_scale_aspect_ratio is 1.0, else 1


# From MediaPipe's face_detection_{short,full}_range_common.pbtxt (SsdAnchorsCalculatorOptions).
MODELS: dict[str, BlazeFaceModel] = {
    # MediaPipe: faces within ~2 m of a phone. 16x16 cells x 2 anchors + 8x8 cells x 6 = 896.
    "short": BlazeFaceModel("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 2),
    # MediaPipe: faces within ~5 m. 48x48 cells x 1 anchor = 2304.
    "full": BlazeFaceModel("face_detection_full_range.tflite", 192, (4,), 1),
}


def default_model_path(model: str = "short") -> Path | None:
    """Path of the bundled model file, or None if a broken install lost it."""
    path = MODEL_DIR / _model(model).file_name
    return path if path.is_file() else None


def ssd_anchors(spec: BlazeFaceModel) -> np.ndarray:
    """Anchor centres (N, 2) in [0, 1], in the model's output order.

    Consecutive layers with the same stride share one feature map, so their anchors are emitted
    together per cell (MediaPipe's SsdAnchorsCalculator). Anchor sizes are all 1 for BlazeFace
    (fixed_anchor_size), so only centres are needed.
    """
    centres: list[np.ndarray] = []
    layer = 0
    while layer < len(spec.strides):
        stride = spec.strides[layer]
        same = layer
        while same < len(spec.strides) and spec.strides[same] == stride:
            same += 1
        per_cell = (same - layer) * spec.anchors_per_layer
        cells = spec.input_size // stride
        grid = (np.arange(cells, dtype=np.float32) + 0.5) / cells
        ys, xs = np.meshgrid(grid, grid, indexing="ij")
        cell_centres = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(cell_centres, per_cell, axis=0))
        layer = same
    return np.concatenate(centres)


class BlazeFaceDetector:
    """Finds faces with 6 landmarks: (right eye, left eye, nose tip, mouth, right ear, left ear).

    The model orders the eyes by image position, the eye on the image's left first: in an
    upright, unmirrored frame that is the subject's right eye, as emocam.edge.vision.faces.Face documents.
    Boxes are clipped to the frame; landmarks are not (an ear can lie outside it).

    ``refine_landmarks`` runs the model a second time on a square around each face to steady
    its landmarks (one more invoke per face; by default on for "short", off for "full"). Build
    once; ``detect`` reuses one interpreter and is not thread-safe.
    """

    name = "blazeface"

    def __init__(
        self,
        model_path: Path | None = None,
        min_score: float = 0.6,
        iou_threshold: float = 0.3,
        num_threads: int = 1,
        model: str = "short",
        refine_landmarks: bool | None = None,
    ) -> None:
        if not 0.0 < min_score < 1.0:
            raise DetectorError(f"BlazeFace min_score={min_score}; expected a value between 0 and 1")
        if not 0.0 < iou_threshold < 1.0:
            raise DetectorError(f"BlazeFace iou_threshold={iou_threshold}; expected a value between 0 and 1")
        self.model = model
        self.spec = _model(model)
        path = Path(model_path) if model_path is not None else default_model_path(model)
        if path is None or not path.is_file():
            shown = path if path is not None else self.spec.file_name
            raise DetectorError(f"BlazeFace model {shown} not found; {INSTALL_HINT}")
        self.model_path = path
        self.min_score = min_score
        self.iou_threshold = iou_threshold
        # Default: refine the short-range model's landmarks (3x steadier for 2x the time); the
        # full-range model already sees faces at 1.5x the resolution and costs 3x more per pass.
        self.refine_landmarks = model == "short" if refine_landmarks is None else refine_landmarks
        try:
            self._interpreter, self.runtime = make_interpreter(path, num_threads)
        except ModelError as exc:
            raise DetectorError(f"{exc}; {INSTALL_HINT}") from exc
        self._input_index, self._boxes_index, self._scores_index = self._check_tensors()
        self._anchors = ssd_anchors(self.spec)
        log.info("BlazeFace %s-range model %s on %s", model, path, self.runtime)

    def _check_tensors(self) -> tuple[int, int, int]:
        """Find the tensors by shape, and refuse a file that is not the chosen variant."""
        size = self.spec.input_size
        inputs = self._interpreter.get_input_details()
        outputs = {tuple(int(v) for v in d["shape"]): d["index"] for d in self._interpreter.get_output_details()}
        anchors = len(ssd_anchors(self.spec))
        boxes_shape, scores_shape = (1, anchors, 4 + 2 * _NUM_KEYPOINTS), (1, anchors, 1)
        if (
            len(inputs) != 1
            or tuple(int(v) for v in inputs[0]["shape"]) != (1, size, size, 3)
            or inputs[0]["dtype"] != np.float32
            or boxes_shape not in outputs
            or scores_shape not in outputs
        ):
            raise DetectorError(
                f"{self.model_path} is not the BlazeFace {self.model}-range model (expected a float "
                f"(1, {size}, {size}, 3) input and {anchors} anchors); pass the matching model "
                f"option, or {INSTALL_HINT}"
            )
        return int(inputs[0]["index"]), int(outputs[boxes_shape]), int(outputs[scores_shape])

    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        """Faces in a BGR (or gray) uint8 frame, best score first."""
        frame = _as_bgr(image_bgr)
        found = self._find(frame)
        if self.refine_landmarks:
            found = [self._refine(frame, detection) for detection in found]
        height, width = frame.shape[:2]
        faces = [face for detection in found if (face := detection.to_face(width, height)) is not None]
        log.debug("BlazeFace: %d faces", len(faces))
        return faces

    def _find(self, frame: np.ndarray) -> list[_Detection]:
        """One pass of the model over the whole of ``frame``; points in its pixels, unclipped."""
        tensor, letterbox = _letterbox(frame, self.spec.input_size)
        self._interpreter.set_tensor(self._input_index, tensor)
        self._interpreter.invoke()
        raw_scores = self._interpreter.get_tensor(self._scores_index)[0, :, 0]
        clipped = np.clip(raw_scores.astype(np.float64), -_RAW_SCORE_LIMIT, _RAW_SCORE_LIMIT)
        scores = 1.0 / (1.0 + np.exp(-clipped))
        keep = np.flatnonzero(scores >= self.min_score)
        if keep.size == 0:
            return []
        raw = self._interpreter.get_tensor(self._boxes_index)[0, keep]
        points = _decode(raw, self._anchors[keep], self.spec.input_size)
        return [
            _Detection(letterbox.to_frame(blended), score)
            for blended, score in _weighted_nms(points, scores[keep], self.iou_threshold)
        ]

    def _refine(self, frame: np.ndarray, detection: _Detection) -> _Detection:
        """Run the model again on a square around the face, where it spans far more input pixels.

        In a whole 640x480 frame a face is ~20 of the model's 128 pixels and the eye points jitter
        by about one input pixel: up to 4-5 frame pixels and 3-6 degrees of roll between frames
        a pixel apart. On the face's own square they land ~3x closer, which is what alignment
        needs. The first pass's score is kept; box and landmarks come from the second.
        """
        (x0, y0), (x1, y1) = detection.points[:2]
        side = max(1, round(REFINE_SQUARE * max(x1 - x0, y1 - y0)))
        left, top = round((x0 + x1 - side) / 2), round((y0 + y1 - side) / 2)
        square = _crop_replicate(frame, left, top, side)
        expected = detection.points[:2] - (left, top)
        best, best_iou = None, REFINE_MIN_IOU
        for candidate in self._find(square):  # a neighbour's face may share the square
            overlap = float(_iou(expected, candidate.points[np.newaxis, :2])[0])
            if overlap > best_iou:
                best, best_iou = candidate, overlap
        if best is None:
            return detection
        return _Detection(best.points + (left, top), detection.score)


@dataclass(frozen=True, slots=True)
class _Detection:
    """Box corners then 6 keypoints as (8, 2) frame pixels, and the score."""

    points: np.ndarray
    score: float

    def to_face(self, width: int, height: int) -> Face | None:
        x0, y0 = np.clip(self.points[0], 0, (width, height))
        x1, y1 = np.clip(self.points[1], 0, (width, height))
        if x1 <= x0 or y1 <= y0:  # the whole box lies outside the frame
            return None
        landmarks: tuple[Point, ...] = tuple((float(x), float(y)) for x, y in self.points[2:])
        return Face(
            box=(float(x0), float(y0), float(x1 - x0), float(y1 - y0)),
            score=float(self.score),
            landmarks=landmarks,
        )


@dataclass(frozen=True, slots=True)
class _Letterbox:
    """Where the frame sits inside the square model input, to map detections back."""

    frame_width: int
    frame_height: int
    input_size: int
    pad_x: int
    pad_y: int
    content_width: int
    content_height: int

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        """Normalized input coordinates (..., 2) -> frame pixels."""
        scale = np.array(
            [self.frame_width / self.content_width, self.frame_height / self.content_height]
        )
        pixels: np.ndarray = (points * self.input_size - np.array([self.pad_x, self.pad_y])) * scale
        return pixels


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"expected a BGR or gray uint8 frame, got {image.dtype} of shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"empty frame of shape {image.shape}")
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image


def _crop_replicate(frame: np.ndarray, left: int, top: int, side: int) -> np.ndarray:
    """frame[top:top+side, left:left+side], repeating edge pixels where it leaves the frame."""
    height, width = frame.shape[:2]
    # Clamp the slice to at least one row and column of the frame, then pad what is missing.
    y0, x0 = min(max(top, 0), height - 1), min(max(left, 0), width - 1)
    y1, x1 = max(min(top + side, height), y0 + 1), max(min(left + side, width), x0 + 1)
    inner = frame[y0:y1, x0:x1]  # a view: no copy when the square lies inside the frame
    pads = (y0 - top, top + side - y1, x0 - left, left + side - x1)
    if not any(pads):
        return inner
    if any(pad < 0 for pad in pads):  # the square lies wholly off the frame: clamp index-wise
        rows = np.clip(np.arange(top, top + side), 0, height - 1)
        cols = np.clip(np.arange(left, left + side), 0, width - 1)
        return frame[rows[:, np.newaxis], cols[np.newaxis, :]]
    return cv2.copyMakeBorder(inner, *pads, cv2.BORDER_REPLICATE)


def _letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, _Letterbox]:
    """BGR frame -> (1, size, size, 3) float32 RGB in [-1, 1], aspect kept, centred, black padding."""
    height, width = image.shape[:2]
    scale = size / max(height, width)
    content_w = min(size, max(1, round(width * scale)))
    content_h = min(size, max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (content_w, content_h), interpolation=interpolation)
    pad_x, pad_y = (size - content_w) // 2, (size - content_h) // 2
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[pad_y : pad_y + content_h, pad_x : pad_x + content_w] = resized
    rgb = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB)
    tensor = (rgb.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0))[np.newaxis]
    return tensor, _Letterbox(width, height, size, pad_x, pad_y, content_w, content_h)


def _decode(raw: np.ndarray, anchors: np.ndarray, size: int) -> np.ndarray:
    """(K, 16) regressor rows -> (K, 8, 2) normalized points: box min, box max, 6 keypoints.

    Each row is (dx, dy, w, h, kx0, ky0, ...) in input pixels, centre and keypoints relative to the
    anchor centre (MediaPipe: x_scale = y_scale = w_scale = h_scale = input size).
    """
    values = raw.astype(np.float64).reshape(-1, 2 + _NUM_KEYPOINTS, 2) / size
    centre = values[:, 0] + anchors
    half = values[:, 1] / 2.0
    points = np.empty_like(values)
    points[:, 0] = centre - half
    points[:, 1] = centre + half
    points[:, 2:] = values[:, 2:] + anchors[:, np.newaxis, :]
    return points


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (2, 2) box against (K, 2, 2) boxes, as (min, max) corner pairs."""
    low = np.maximum(box[0], boxes[:, 0])
    high = np.minimum(box[1], boxes[:, 1])
    inter = np.prod(np.clip(high - low, 0.0, None), axis=1)
    area = np.prod(box[1] - box[0])
    areas = np.prod(boxes[:, 1] - boxes[:, 0], axis=1)
    union = area + areas - inter
    iou: np.ndarray = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return iou


def _weighted_nms(
    points: np.ndarray, scores: np.ndarray, iou_threshold: float
) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's WEIGHTED NMS: each cluster of overlapping detections becomes their
    score-weighted mean (box and keypoints), scored by its best member. Blending steadies the
    landmarks that alignment depends on, compared with keeping only the best box."""
    valid = np.all(points[:, 1] > points[:, 0], axis=1)
    points, scores = points[valid], scores[valid]
    remaining = np.argsort(-scores, kind="stable")
    results: list[tuple[np.ndarray, float]] = []
    while remaining.size:
        top = remaining[0]
        overlap = _iou(points[top, :2], points[remaining, :2]) > iou_threshold
        overlap[0] = True
        members = remaining[overlap]
        weights = scores[members]
        blended = np.tensordot(weights, points[members], axes=1) / weights.sum()
        results.append((blended, float(scores[top])))
        remaining = remaining[~overlap]
    return results


def _model(model: str) -> BlazeFaceModel:
    try:
        return MODELS[model]
    except KeyError:
        raise DetectorError(
            f"BlazeFace model={model!r} is unknown; use one of {sorted(MODELS)}"
        ) from None
