"""Does the converted model still classify like the float one? Measured on a held-out split.

The float reference is the Keras model; the converted model runs through
``emocam.edge.vision.classifier.EmotionClassifier``, the device's own inference code, so what is measured here
is what the Pi will do (quantization of the input, dynamic batch, dequantization of the output).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from emocam.convert.quantize import ConvertError
from emocam.train.metrics import classification_report, top1_agreement

# Faces per call: bounds the interpreter's tensors (a whole test split in one call would need
# gigabytes of activations) while keeping the per-call overhead negligible.
CHUNK = 256


class Predictor(Protocol):
    """What EmotionClassifier and emocam.train.predictors' predictors both offer."""

    @property
    def labels(self) -> tuple[str, ...]: ...

    def probabilities(self, faces: np.ndarray) -> np.ndarray: ...


class AccuracyDropError(ConvertError):
    """The converted model lost more accuracy than allowed; nothing was written."""

    exit_code = 8  # emocam's 3 is a missing or corrupt model: the table in the README


@dataclass(frozen=True, slots=True)
class Comparison:
    """One converted model against the float reference on the same images."""

    precision: str  # int8, float16, float32
    split: str
    n: int
    float_accuracy: float  # fractions 0..1, as emocam.train.metrics reports them
    accuracy: float
    macro_f1: float
    agreement: float  # share of images where both pick the same class

    @property
    def drop_points(self) -> float:
        """Accuracy lost by conversion, in percentage points."""
        return 100.0 * (self.float_accuracy - self.accuracy)

    def to_metrics(self, data: str, validation: dict[str, Any]) -> dict[str, Any]:
        """The sidecar's ``metrics`` block."""
        return {
            "split": self.split,
            "n": self.n,
            "data": data,
            "float_accuracy": round(self.float_accuracy, 6),
            f"{self.precision}_accuracy": round(self.accuracy, 6),
            "agreement": round(self.agreement, 6),
            "macro_f1": round(self.macro_f1, 6),
            "validation": validation,
        }

    def summary(self) -> str:
        return (
            f"{self.precision:>7}: accuracy {self.accuracy:.2%} (float {self.float_accuracy:.2%}, "
            f"drop {self.drop_points:+.2f} points), top-1 agreement {self.agreement:.2%}, "
            f"macro-F1 {self.macro_f1:.4f}  [{self.split}, n={self.n}]"
        )


def predict_all(model: Predictor, faces: np.ndarray) -> np.ndarray:
    """(N, S, S) uint8 faces -> (N, C) probabilities, CHUNK faces per call."""
    if len(faces) == 0:
        raise ConvertError("the verification split holds no images")
    return np.concatenate([model.probabilities(faces[i : i + CHUNK]) for i in range(0, len(faces), CHUNK)])


def compare(
    precision: str,
    candidate: Predictor,
    reference_probs: np.ndarray,
    faces: np.ndarray,
    truth: np.ndarray,
    labels: Sequence[str],
    split: str,
) -> Comparison:
    """Score ``candidate`` on ``faces`` and against the float model's probabilities on them."""
    if tuple(candidate.labels) != tuple(labels):
        raise ConvertError(f"the {precision} model's labels {list(candidate.labels)} differ from {list(labels)}")
    probs = predict_all(candidate, faces)
    reference = classification_report(truth, reference_probs, labels)
    report = classification_report(truth, probs, labels)
    return Comparison(
        precision=precision,
        split=split,
        n=report.n,
        float_accuracy=reference.accuracy,
        accuracy=report.accuracy,
        macro_f1=report.macro_f1,
        agreement=top1_agreement(reference_probs, probs),
    )


def check_drop(result: Comparison, max_drop: float) -> None:
    """Raise AccuracyDropError when conversion cost more than ``max_drop`` accuracy points, or more
    than one image where one image is worth more than that (a user's few dozen validation faces:
    one face of 52 is 1.9 points, noise rather than a loss the limit was meant to catch)."""
    allowed = max(max_drop, 100.0 / result.n) if max_drop >= 0 and result.n else max_drop
    if result.drop_points > allowed + 1e-9:
        one_image = f" (one image of {result.n} is {100.0 / result.n:.2f})" if allowed != max_drop else ""
        raise AccuracyDropError(
            f"{result.precision} accuracy {result.accuracy:.2%} is {result.drop_points:.2f} points below the float "
            f"model's {result.float_accuracy:.2%} on {result.split} (n={result.n}); "
            f"the limit is --max-drop {max_drop}{one_image}. "
            "Nothing was written. Try a larger --representative-count, or pass --force to keep it anyway"
        )
