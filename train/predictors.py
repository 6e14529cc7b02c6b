"""One interface over both model kinds, so a .keras and its int8 .tflite are scored the same way.

``load_predictor`` takes a ``.tflite`` (run by ``emocam.edge.vision.classifier.EmotionClassifier``, the device's
own inference code, so verification measures what the Pi will do), a ``.keras`` or a training run
directory (its ``best.keras``). Every predictor maps (N, 48, 48) uint8 faces to (N, C) float32
probabilities in ``labels`` order. Keras is imported only when a .keras model is loaded.
"""

from __future__ import annotations

import logging
import os
import zipfile
from pathlib import Path
from typing import Protocol

import numpy as np

from emocam.edge.errors import EmocamError, ModelError
from emocam.edge.vision.preprocess import Preprocessing, stack_faces
from emocam.train import run

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 256
_HOW_TO_FIX = (
    "give a .tflite written by emocam-convert (with its .json sidecar), a .keras model, "
    "or a run directory written by `emocam-train fit`"
)


class EvaluationError(EmocamError, ValueError):
    """A model or evaluation input that cannot be used; the message names the path and the fix."""

    exit_code = 2


class Predictor(Protocol):
    """Anything that turns prepared faces into class probabilities."""

    @property
    def labels(self) -> tuple[str, ...]: ...

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W) or (N, H, W, 1) uint8 -> (N, len(labels)) float32."""
        ...


def _chunks(images: np.ndarray, batch_size: int) -> list[np.ndarray]:
    return [images[start : start + batch_size] for start in range(0, len(images), batch_size)]


def _resolve_threads(num_threads: int) -> int:
    # 0 means "all cores"; the interpreter itself insists on >= 1.
    return num_threads if num_threads > 0 else (os.cpu_count() or 1)


class TflitePredictor:
    """A .tflite model run by the device's ``EmotionClassifier`` (quantization handled there)."""

    def __init__(self, path: Path, num_threads: int = 0, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        from emocam.edge.vision.classifier import EmotionClassifier

        self.path = Path(path)
        self.batch_size = batch_size
        try:
            self._classifier = EmotionClassifier(self.path, num_threads=_resolve_threads(num_threads))
        except ModelError as exc:
            raise EvaluationError(str(exc)) from exc

    @property
    def labels(self) -> tuple[str, ...]:
        return self._classifier.labels

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        batch = stack_faces(images)
        if len(batch) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return np.concatenate([self._classifier.probabilities(chunk) for chunk in _chunks(batch, self.batch_size)])


def _labels_beside(path: Path) -> tuple[str, ...]:
    """Label names in output order: labels.json beside the model, else config.json's ``labels``
    (both read by ``run``, which owns the run directory's files)."""
    try:
        labels = run.read_labels(path.parent)
        recorded = run.read_config(path.parent).get("labels") if labels is None else None
    except run.RunError as exc:
        raise EvaluationError(str(exc)) from exc
    if labels is not None:
        return labels
    if recorded is not None:
        if not isinstance(recorded, list) or len(recorded) < 2 or not all(isinstance(v, str) for v in recorded):
            raise EvaluationError(f"{path.parent / run.CONFIG} must hold a list of 2 or more label names in "
                                  f"output order under 'labels', got {recorded!r}")
        return tuple(recorded)
    raise EvaluationError(
        f"no labels for {path}: put labels.json (a JSON list of label names in output order) beside it; "
        "`emocam-train fit` writes one into every run directory"
    )


class KerasPredictor:
    """A .keras inference model: input (size, size, 1) float pixels 0..255, output probabilities."""

    def __init__(self, path: Path, num_threads: int = 0, batch_size: int = DEFAULT_BATCH_SIZE,
                 centre_crop: int = 0) -> None:
        self.path = Path(path)
        self.batch_size = batch_size
        if not zipfile.is_zipfile(self.path):
            raise EvaluationError(f"{self.path} is not a Keras .keras file (not a zip archive); {_HOW_TO_FIX}")
        self._labels = _labels_beside(self.path)
        try:
            self._configure_threads(num_threads)
            import keras  # only here: a .tflite evaluation must not pull in TensorFlow
        except ImportError as exc:
            raise EvaluationError(
                f"cannot load {self.path}: Keras is not installed ({exc}); run `pip install 'emocam[train]'` "
                "or evaluate the converted .tflite instead"
            ) from exc
        try:
            self._model = keras.saving.load_model(self.path, compile=False)
        except (ValueError, KeyError, TypeError, OSError, zipfile.BadZipFile) as exc:
            raise EvaluationError(f"{self.path} is not a loadable Keras model ({exc}); {_HOW_TO_FIX}") from exc
        self._check_shapes()
        if centre_crop:
            from emocam.train.architectures import with_centre_crop

            try:
                self._model = with_centre_crop(self._model, centre_crop)
            except ValueError as exc:
                raise EvaluationError(f"{self.path}: {exc}") from exc
        log.info("loaded Keras model %s (%s)%s", self.path, ",".join(self._labels),
                 f", scored on its {centre_crop}x{centre_crop} centre" if centre_crop else "")

    @staticmethod
    def _configure_threads(num_threads: int) -> None:
        if num_threads <= 0 or os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
            return
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(num_threads)
            tf.config.threading.set_inter_op_parallelism_threads(num_threads)
        except RuntimeError:  # TensorFlow already started in this process; its pools are fixed
            log.debug("TensorFlow already initialized; --threads %d not applied", num_threads)

    def _check_shapes(self) -> None:
        input_shape = tuple(self._model.input_shape)
        output_shape = tuple(self._model.output_shape)
        size = Preprocessing().size
        if input_shape[1:] != (size, size, 1):
            raise EvaluationError(
                f"{self.path} takes input {input_shape[1:]}, but the preprocessing gives {(size, size, 1)} faces; "
                "evaluate the inference model (best.keras) of a run"
            )
        if len(output_shape) != 2 or output_shape[1] != len(self._labels):
            raise EvaluationError(
                f"{self.path} has output {output_shape[1:]} but {len(self._labels)} labels "
                f"({', '.join(self._labels)}) beside it; the labels belong to another model"
            )

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        batch = stack_faces(images)
        if len(batch) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        # The model normalizes inside, so it takes the raw 0..255 pixels as float.
        out = [
            np.asarray(self._model.predict_on_batch(chunk.astype(np.float32)), dtype=np.float32)
            for chunk in _chunks(batch, self.batch_size)
        ]
        return np.concatenate(out)


class FlipTTAPredictor:
    """Averages a predictor's probabilities over each face and its mirror image."""

    def __init__(self, inner: Predictor) -> None:
        self.inner = inner

    @property
    def labels(self) -> tuple[str, ...]:
        return self.inner.labels

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        batch = stack_faces(images)
        mirrored = np.ascontiguousarray(batch[:, :, ::-1])
        return ((self.inner.probabilities(batch) + self.inner.probabilities(mirrored)) / 2).astype(np.float32)


def with_flip_tta(predictor: Predictor) -> Predictor:
    """Horizontal-flip test-time augmentation: faces are left-right symmetric, expressions too."""
    return FlipTTAPredictor(predictor)


class EnsemblePredictor:
    """The mean of several predictors' probabilities; all must share labels in the same order."""

    def __init__(self, members: list[Predictor]) -> None:
        if not members:
            raise EvaluationError("an ensemble needs at least one model")
        first = tuple(members[0].labels)
        for member in members[1:]:
            if tuple(member.labels) != first:
                raise EvaluationError(
                    f"{getattr(member, 'path', member)} predicts {list(member.labels)}, but "
                    f"{getattr(members[0], 'path', members[0])} predicts {list(first)}; "
                    "an ensemble averages models trained on the same classes"
                )
        self.members = members

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.members[0].labels)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return np.mean([member.probabilities(images) for member in self.members], axis=0).astype(np.float32)


def ensemble(predictors: list[Predictor]) -> Predictor:
    """Average the predictors (one alone is returned as it is)."""
    return predictors[0] if len(predictors) == 1 else EnsemblePredictor(predictors)


def load_predictor(path: Path, num_threads: int = 0, batch_size: int = DEFAULT_BATCH_SIZE,
                   centre_crop: int = 0) -> Predictor:
    """A .tflite, a .keras, or a run directory (its best.keras); ``num_threads`` 0 = all cores;
    ``centre_crop`` scores a Keras model on the central crop of each face (a .tflite has it baked in)."""
    path = Path(path)
    if batch_size < 1:
        raise EvaluationError(f"batch size must be >= 1, got {batch_size}")
    if not path.exists():
        raise EvaluationError(f"model {path} does not exist; {_HOW_TO_FIX}")
    if path.is_dir():
        best = path / run.BEST_MODEL
        if not best.is_file():
            raise EvaluationError(f"{path} is a folder without {run.BEST_MODEL}; {_HOW_TO_FIX}")
        path = best
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        if centre_crop:
            raise EvaluationError(f"{path}: a .tflite's centre crop is fixed when it is converted "
                                  "(emocam-convert --centre-crop); evaluate its .keras to choose one")
        return TflitePredictor(path, num_threads, batch_size)
    if suffix == ".keras":
        return KerasPredictor(path, num_threads, batch_size, centre_crop)
    raise EvaluationError(f"model {path} has an unknown suffix {path.suffix or '(none)'!r}; {_HOW_TO_FIX}")
