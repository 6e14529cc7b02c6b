"""Confidence calibration: expected calibration error, a reliability diagram, and a temperature.

Events publish ``confidence`` and Home Assistant users put thresholds on it, so 0.8 should mean
right about 80% of the time. A network trained with label smoothing and augmentation is usually
under- or over-confident by a few points; one scalar temperature T fitted on validation fixes
most of it without changing any prediction (softmax(z / T) keeps the arg-max).

For a model whose output is a mean of softmaxes (flip TTA, ensembles) the temperature divides
each member's logits before its softmax, which ``emocam-convert`` folds into the last dense layer
of every member: free at run time. ``log(p)`` serves as the logits of a single softmax (they
differ by a constant per row, which softmax ignores).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ECE_BINS = 15  # the usual choice (Guo et al., 2017), so numbers compare with the literature


@dataclass(frozen=True, slots=True)
class Reliability:
    """Per confidence bin: how many predictions, their mean confidence and their accuracy."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]
    confidence: tuple[float, ...]
    accuracy: tuple[float, ...]
    ece: float


def reliability(y_true: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS) -> Reliability:
    """Bins of equal width over the top-1 confidence; ECE is the count-weighted |acc - conf|."""
    probs = np.asarray(probs, dtype=np.float64)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(y_true)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    conf_sum = np.bincount(which, weights=confidence, minlength=bins)
    acc_sum = np.bincount(which, weights=correct.astype(np.float64), minlength=bins)
    safe = np.maximum(counts, 1)
    mean_conf, mean_acc = conf_sum / safe, acc_sum / safe
    ece = float(np.sum(counts * np.abs(mean_acc - mean_conf)) / max(len(confidence), 1))
    return Reliability(tuple(edges.tolist()), tuple(int(c) for c in counts), tuple(mean_conf.tolist()),
                       tuple(mean_acc.tolist()), ece)


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS) -> float:
    return reliability(y_true, probs, bins).ece


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def tempered(member_logits: Sequence[np.ndarray], temperature: float) -> np.ndarray:
    """The mean over members (views, models) of softmax(logits / T): what the baked model outputs."""
    return np.mean([_softmax(np.asarray(z, np.float64) / temperature) for z in member_logits], axis=0)


def fit_temperature(
    y_true: np.ndarray, member_logits: Sequence[np.ndarray], low: float = 0.25, high: float = 4.0
) -> float:
    """The T that minimises the validation negative log-likelihood of ``tempered`` (golden-section
    search on log T: the NLL is unimodal in T for a single softmax and in practice for means)."""
    y = np.asarray(y_true)
    rows = np.arange(len(y))

    def nll(log_t: float) -> float:
        probs = tempered(member_logits, float(np.exp(log_t)))
        return float(-np.mean(np.log(np.clip(probs[rows, y], 1e-12, 1.0))))

    a, b = np.log(low), np.log(high)
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = nll(c), nll(d)
    for _ in range(60):  # (high/low) shrinks below 1e-12 of a log unit long before this ends
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = nll(d)
    return float(np.exp((a + b) / 2.0))


def write_reliability_png(curve: Reliability, path: Path, title: str = "") -> Path:
    """A reliability diagram: accuracy per confidence bin against the diagonal, with counts."""
    size, margin = 480, 60
    image = np.full((size + 2 * margin, size + 2 * margin, 3), 255, np.uint8)

    def point(x: float, y: float) -> tuple[int, int]:
        return int(margin + x * size), int(margin + (1.0 - y) * size)

    cv2.rectangle(image, point(0, 1), point(1, 0), (0, 0, 0), 1)
    cv2.line(image, point(0, 0), point(1, 1), (160, 160, 160), 1, cv2.LINE_AA)
    total = max(sum(curve.counts), 1)
    for i, count in enumerate(curve.counts):
        if not count:
            continue
        left, right = curve.edges[i], curve.edges[i + 1]
        cv2.rectangle(image, point(left, curve.accuracy[i]), point(right, 0), (200, 120, 40), -1)
        cv2.rectangle(image, point(left, curve.accuracy[i]), point(right, 0), (90, 50, 10), 1)
        share = count / total
        cv2.rectangle(image, point(left, share), point(right, 0), (60, 60, 220), -1)  # share of predictions
        cv2.circle(image, point(curve.confidence[i], curve.accuracy[i]), 3, (0, 0, 0), -1, cv2.LINE_AA)
    font = cv2.FONT_HERSHEY_SIMPLEX
    heading = f"{title}  ECE {curve.ece * 100:.2f}%" if title else f"ECE {curve.ece * 100:.2f}%"
    cv2.putText(image, heading, (margin, margin - 22), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(
        image, "confidence", (margin + size // 2 - 40, size + margin + 40), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA
    )
    cv2.putText(
        image, "accuracy (blue bars); share of faces (red)", (margin, margin - 6), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA
    )
    for tick in (0.0, 0.5, 1.0):
        cv2.putText(
            image, f"{tick:.1f}", (point(tick, 0)[0] - 10, size + margin + 18), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA
        )
        cv2.putText(image, f"{tick:.1f}", (margin - 34, point(0, tick)[1] + 4), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}")
    return path
