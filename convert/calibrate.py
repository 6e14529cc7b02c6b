"""Temperature scaling folded into the converted model: calibrated confidences at no run-time cost.

The temperature T is fitted on the run's validation split, re-encoded as JPEG as users' images
are (``emocam.train.calibration.fit_temperature``). Every member network ends in a dense layer named
``probabilities`` with a softmax; dividing its kernel and bias by T divides the logits by T, so
the int8 model computes softmax(z / T) with exactly the ops it had before. With flip TTA or an
ensemble the model averages several softmaxes, and each of them is tempered the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from emocam.convert.quantize import ConvertError
from emocam.train.calibration import expected_calibration_error, fit_temperature, tempered

log = logging.getLogger(__name__)

OUTPUT_LAYER = "probabilities"  # the last layer of every emocam.train.architectures network
# Below this many validation faces (a user's folder: a few dozen a label) one face moves a 15-bin
# ECE by several points and the fitted temperature by as much: both are recorded, and flagged.
ROUGH_BELOW = 200


@dataclass(frozen=True, slots=True)
class Calibration:
    temperature: float
    split: str
    n: int
    ece_before: float
    ece_after: float

    def to_dict(self) -> dict[str, Any]:
        return {"temperature": round(self.temperature, 4), "split": self.split, "n": self.n,
                "ece_before": round(self.ece_before, 6), "ece_after": round(self.ece_after, 6)}


def _output_layer(model: Any) -> Any:
    """The member's last dense softmax, found inside wrappers too (a centre crop nests the net)."""
    found = [layer for layer in model._flatten_layers() if layer.name == OUTPUT_LAYER]
    if not found:
        raise ConvertError(
            f"model {model.name} has no layer named {OUTPUT_LAYER!r}, so its logits cannot be tempered; "
            "convert it with --temperature 1"
        )
    layer = found[0]
    if getattr(layer.activation, "__name__", "") != "softmax" or not getattr(layer, "use_bias", False):
        raise ConvertError(f"layer {OUTPUT_LAYER!r} of {model.name} is not a dense softmax with a bias; "
                           "convert it with --temperature 1")
    return layer


def member_logits(model: Any, faces: np.ndarray, flip: bool) -> list[np.ndarray]:
    """The logits of one member network for each view it will see: the faces, and their mirrors.
    log(p) differs from the logits by a constant per face, which softmax(z / T) ignores."""
    _output_layer(model)  # refuse a model that cannot be tempered before spending time on it
    views = [faces, faces[:, :, ::-1]] if flip else [faces]
    logits = []
    for view in views:
        probs = model.predict(np.ascontiguousarray(view)[..., None].astype(np.float32), batch_size=256, verbose=0)
        logits.append(np.log(np.clip(np.asarray(probs, np.float64), 1e-30, 1.0)))
    return logits


def fold_temperature(model: Any, temperature: float) -> None:
    """Divide the member's logits by ``temperature``, in place."""
    layer = _output_layer(model)
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel / temperature, bias / temperature])


def calibrate(members: list[Any], faces: np.ndarray, labels: np.ndarray, flip: bool, split: str) -> Calibration:
    """Fit one temperature for the averaged model on ``faces`` and fold it into every member."""
    logits = [view for model in members for view in member_logits(model, faces, flip)]
    temperature = fit_temperature(labels, logits)
    result = Calibration(
        temperature=temperature,
        split=split,
        n=len(labels),
        ece_before=expected_calibration_error(labels, tempered(logits, 1.0)),
        ece_after=expected_calibration_error(labels, tempered(logits, temperature)),
    )
    for model in members:
        fold_temperature(model, temperature)
    log.info("temperature %.3f fitted on %s (n=%d): ECE %.4f -> %.4f", temperature, split, len(labels),
             result.ece_before, result.ece_after)
    if len(labels) < ROUGH_BELOW:
        log.warning("%d validation faces are too few to measure calibration: the temperature and ECE above are "
                    "rough (%d or more make them reliable; --temperature 1 keeps the confidences as trained)",
                    len(labels), ROUGH_BELOW)
    return result
