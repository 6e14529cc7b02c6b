"""Emotion classifier: one TFLite interpreter, loaded once, validated against its sidecar.

Faces come in as prepared uint8 crops (see emocam.edge.vision.preprocess) and leave as probabilities per label.
All faces of a frame go through one ``invoke`` when the model has a dynamic batch dimension.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from emocam.edge.errors import ModelError
from emocam.edge.vision.model_info import ModelInfo, load_model_info
from emocam.edge.vision.preprocess import stack_faces
from emocam.edge.vision.tflite_runtime import make_interpreter

log = logging.getLogger(__name__)

_DTYPES = {"int8": np.int8, "uint8": np.uint8, "float32": np.float32, "float16": np.float16}


class EmotionClassifier:
    """Wraps the interpreter; build it once at start-up, call ``probabilities`` per frame."""

    def __init__(self, model_path: Path, num_threads: int = 1) -> None:
        self.model_path = Path(model_path)
        self.info: ModelInfo = load_model_info(self.model_path)
        self._interpreter, self.runtime = make_interpreter(self.model_path, num_threads)
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._check_against_sidecar()
        signature = self._input.get("shape_signature", self._input["shape"])
        self.dynamic_batch = int(signature[0]) == -1
        self._batch = int(self._input["shape"][0])
        if self._batch != 1 or self.dynamic_batch:
            self._resize(1)  # make_interpreter allocated the file's own shape
        log.info(
            "loaded model %s v%s (%s, %s) via %s", self.model_path.name, self.info.version,
            self.info.input.dtype, ",".join(self.info.labels), self.runtime,
        )

    @property
    def labels(self) -> tuple[str, ...]:
        return self.info.labels

    def _check_against_sidecar(self) -> None:
        where = f"model {self.model_path} and its sidecar"
        spec = self.info.input
        in_dtype = np.dtype(self._input["dtype"]).name
        out_dtype = np.dtype(self._output["dtype"]).name
        if in_dtype != spec.dtype or out_dtype != self.info.output.dtype:
            raise ModelError(
                f"{where} disagree on dtypes: tflite has {in_dtype}->{out_dtype}, sidecar says "
                f"{spec.dtype}->{self.info.output.dtype}"
            )
        in_shape = tuple(int(v) for v in self._input["shape"][1:])
        if in_shape != tuple(spec.shape[1:]):
            raise ModelError(f"{where} disagree on input shape: {in_shape} vs {tuple(spec.shape[1:])}")
        size = self.info.preprocessing.size
        if in_shape != (size, size, 1):
            raise ModelError(f"{where}: input {in_shape} does not fit preprocessing size {size}x{size}x1")
        classes = int(self._output["shape"][-1])
        if classes != len(self.info.labels):
            raise ModelError(f"{where} disagree: {classes} outputs but {len(self.info.labels)} labels")
        in_scale, in_zero = self._input["quantization"]
        if spec.dtype in ("int8", "uint8") and (
            not np.isclose(in_scale, spec.scale) or int(in_zero) != spec.zero_point
        ):
            raise ModelError(
                f"{where} disagree on input quantization: ({in_scale}, {in_zero}) vs ({spec.scale}, {spec.zero_point})"
            )

    def _resize(self, batch: int) -> None:
        shape = [batch, *[int(v) for v in self._input["shape"][1:]]]
        self._interpreter.resize_tensor_input(self._input["index"], shape)
        self._interpreter.allocate_tensors()
        self._batch = batch

    def _quantize(self, pixels: np.ndarray) -> np.ndarray:
        spec = self.info.input
        dtype = _DTYPES[spec.dtype]
        if spec.dtype in ("int8", "uint8"):
            info = np.iinfo(spec.dtype)
            values = np.round(pixels.astype(np.float32) / spec.scale + spec.zero_point)
            return np.clip(values, info.min, info.max).astype(dtype)
        return pixels.astype(dtype)

    def _dequantize(self, raw: np.ndarray) -> np.ndarray:
        spec = self.info.output
        if spec.dtype in ("int8", "uint8"):
            return (raw.astype(np.float32) - spec.zero_point) * spec.scale
        return raw.astype(np.float32)

    def _invoke(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape[0] != self._batch:
            self._resize(batch.shape[0])
        self._interpreter.set_tensor(self._input["index"], self._quantize(batch))
        self._interpreter.invoke()
        return self._dequantize(self._interpreter.get_tensor(self._output["index"]))

    def probabilities(self, faces: list[np.ndarray] | np.ndarray) -> np.ndarray:
        """Prepared (N, S, S[, 1]) uint8 faces -> (N, classes) float32 probabilities."""
        batch = stack_faces(faces)
        if batch.shape[0] == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        if self.dynamic_batch:
            return self._invoke(batch)
        return np.concatenate([self._invoke(batch[i : i + 1]) for i in range(batch.shape[0])])
