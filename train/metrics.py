"""Classification metrics for emotion models: pure numpy, plus a confusion-matrix PNG via OpenCV.

One ``Report`` per evaluation, so a .keras and a .tflite evaluated on the same data give numbers
that compare field by field. Conventions follow scikit-learn's defaults, so results can be checked
against it: precision of a class that is never predicted is 0, and macro-F1 averages over the
classes that occur in the truth or the predictions (a class absent from both says nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClassScores:
    """Precision, recall and F1 of one class, and how many true samples it had."""

    precision: float
    recall: float
    f1: float
    support: int

    def to_dict(self) -> dict[str, float | int]:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1, "support": self.support}


@dataclass(frozen=True, slots=True)
class Report:
    """The result of one evaluation; ``confusion_matrix[true][predicted]`` in ``labels`` order."""

    labels: tuple[str, ...]
    n: int
    accuracy: float
    macro_f1: float
    per_class: Mapping[str, ClassScores]
    confusion_matrix: tuple[tuple[int, ...], ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: plain floats, ints, lists and dicts only."""
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "n": self.n,
            "labels": list(self.labels),
            "per_class": {label: scores.to_dict() for label, scores in self.per_class.items()},
            "confusion_matrix": [list(row) for row in self.confusion_matrix],
        }


def _as_labels(values: np.ndarray | Sequence[int], name: str, n_classes: int) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D class indices, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class indices, got {array.dtype}")
    array = array.astype(np.int64)
    if array.size and (array.min() < 0 or array.max() >= n_classes):
        raise ValueError(f"{name} holds indices outside 0..{n_classes - 1}")
    return array


def confusion_matrix(y_true: np.ndarray | Sequence[int], y_pred: np.ndarray | Sequence[int], n: int) -> np.ndarray:
    """(n, n) int64 counts; rows are the true class, columns the predicted one."""
    if n < 1:
        raise ValueError(f"number of classes must be >= 1, got {n}")
    true = _as_labels(y_true, "y_true", n)
    pred = _as_labels(y_pred, "y_pred", n)
    if true.shape != pred.shape:
        raise ValueError(f"y_true has {true.size} entries but y_pred has {pred.size}")
    return np.bincount(true * n + pred, minlength=n * n).reshape(n, n)


def _safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    # 0/0 -> 0, as scikit-learn's zero_division default does, rather than NaN in the JSON.
    out = np.zeros(numerator.shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def classification_report(
    y_true: np.ndarray | Sequence[int], probs: np.ndarray, labels: Sequence[str]
) -> Report:
    """Score (N, C) probabilities (or logits) against true indices into ``labels``."""
    labels = tuple(str(label) for label in labels)
    scores = np.asarray(probs)
    if scores.ndim != 2 or scores.shape[1] != len(labels):
        raise ValueError(f"probs must have shape (N, {len(labels)}) for labels {list(labels)}, got {scores.shape}")
    true = _as_labels(y_true, "y_true", len(labels))
    if true.size != scores.shape[0]:
        raise ValueError(f"y_true has {true.size} entries but probs has {scores.shape[0]} rows")
    pred = scores.argmax(axis=1) if true.size else np.zeros(0, dtype=np.int64)
    matrix = confusion_matrix(true, pred, len(labels))

    hits = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    precision = _safe_ratio(hits, predicted.astype(np.float64))
    recall = _safe_ratio(hits, support.astype(np.float64))
    f1 = _safe_ratio(2 * precision * recall, precision + recall)
    present = (support > 0) | (predicted > 0)
    n = int(true.size)
    return Report(
        labels=labels,
        n=n,
        accuracy=float(hits.sum() / n) if n else 0.0,
        macro_f1=float(f1[present].mean()) if present.any() else 0.0,
        per_class={
            label: ClassScores(float(precision[i]), float(recall[i]), float(f1[i]), int(support[i]))
            for i, label in enumerate(labels)
        },
        confusion_matrix=tuple(tuple(int(v) for v in row) for row in matrix),
    )


def top1_agreement(probs_a: np.ndarray, probs_b: np.ndarray) -> float:
    """Share of rows whose arg-max class is the same in both (e.g. float vs int8 model)."""
    a, b = np.asarray(probs_a), np.asarray(probs_b)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"expected two (N, C) arrays of the same shape, got {a.shape} and {b.shape}")
    if a.shape[0] == 0:
        raise ValueError("cannot compare predictions of zero samples")
    return float(np.mean(a.argmax(axis=1) == b.argmax(axis=1)))


def format_report(report: Report) -> str:
    """An aligned text table of the per-class scores, then the confusion matrix."""
    width = max(9, *(len(label) for label in report.labels)) + 2
    lines = [
        f"accuracy {report.accuracy:.4f}   macro-F1 {report.macro_f1:.4f}   n={report.n}",
        "",
        f"{'class':<{width}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}",
    ]
    for label, s in report.per_class.items():
        lines.append(f"{label:<{width}}{s.precision:>10.4f}{s.recall:>10.4f}{s.f1:>10.4f}{s.support:>10d}")
    lines += ["", "confusion matrix (rows: true class, columns: predicted class)"]
    cell = max(7, *(len(label) + 1 for label in report.labels), len(str(report.n)) + 1)
    lines.append(" " * width + "".join(f"{label:>{cell}}" for label in report.labels))
    for label, row in zip(report.labels, report.confusion_matrix, strict=True):
        lines.append(f"{label:<{width}}" + "".join(f"{count:>{cell}d}" for count in row))
    return "\n".join(lines)


# Layout of the PNG, in pixels; cells are large enough for "surprise" at the chosen font scale.
_CELL = 72
_LEFT = 96
_TOP = 64
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _centered_text(
    image: np.ndarray, text: str, center: tuple[int, int], scale: float, color: tuple[int, int, int]
) -> None:
    (w, h), _ = cv2.getTextSize(text, _FONT, scale, 1)
    origin = (int(center[0] - w / 2), int(center[1] + h / 2))
    cv2.putText(image, text, origin, _FONT, scale, color, 1, cv2.LINE_AA)


def render_confusion(report: Report) -> np.ndarray:
    """The confusion matrix as a BGR image: cells shaded by row share, with counts and labels."""
    n = len(report.labels)
    matrix = np.asarray(report.confusion_matrix, dtype=np.float64).reshape(n, n)
    # Row-normalized, so a small class's errors are as visible as a large one's.
    shares = _safe_ratio(matrix, matrix.sum(axis=1, keepdims=True).repeat(n, axis=1))
    image = np.full((_TOP + n * _CELL + 40, _LEFT + n * _CELL + 16, 3), 255, dtype=np.uint8)
    title = f"accuracy {report.accuracy:.3f}  macro-F1 {report.macro_f1:.3f}  n={report.n}"
    cv2.putText(image, title, (8, 20), _FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    for j, label in enumerate(report.labels):
        _centered_text(image, label, (_LEFT + j * _CELL + _CELL // 2, _TOP - 14), 0.42, (0, 0, 0))
    for i, label in enumerate(report.labels):
        y0 = _TOP + i * _CELL
        cv2.putText(image, label, (6, y0 + _CELL // 2 + 5), _FONT, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
        for j in range(n):
            x0 = _LEFT + j * _CELL
            share = float(shares[i, j])
            # White -> dark blue (BGR); text flips to white where the cell gets dark.
            color = tuple(int(round(255 - share * (255 - c))) for c in (130, 40, 10))
            cv2.rectangle(image, (x0, y0), (x0 + _CELL - 1, y0 + _CELL - 1), color, thickness=-1)
            cv2.rectangle(image, (x0, y0), (x0 + _CELL - 1, y0 + _CELL - 1), (200, 200, 200), thickness=1)
            ink = (255, 255, 255) if share > 0.5 else (0, 0, 0)
            _centered_text(image, str(int(matrix[i, j])), (x0 + _CELL // 2, y0 + _CELL // 2 - 9), 0.5, ink)
            _centered_text(image, f"{share:.0%}", (x0 + _CELL // 2, y0 + _CELL // 2 + 13), 0.4, ink)
    footer_y = _TOP + n * _CELL + 24
    footer = "rows: true class, columns: predicted"
    cv2.putText(image, footer, (_LEFT, footer_y), _FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return image


def write_confusion_png(report: Report, path: Path) -> Path:
    """Write ``render_confusion(report)`` to ``path``; an unwritable path is an OSError naming it."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"confusion matrix path {path} must end in .png")
    if not path.parent.is_dir():
        raise OSError(f"cannot write {path}: folder {path.parent} does not exist; create it first")
    try:
        ok = cv2.imwrite(str(path), render_confusion(report))
    except cv2.error as exc:
        raise OSError(f"cannot write {path}: {exc}") from exc
    if not ok:
        raise OSError(f"cannot write {path}; check that the folder is writable")
    log.info("wrote confusion matrix %s", path)
    return path
