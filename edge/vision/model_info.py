"""The model's JSON sidecar: everything the device needs to know about a .tflite file.

``model.tflite`` travels with ``model.json`` beside it. The sidecar holds the labels in output
order, the input/output tensors (shape, dtype, quantization), the preprocessing contract, where the
model came from and how well it did, and the sha256 of the .tflite, so a truncated or swapped file
is caught before the camera opens. The device never hard-codes labels or preprocessing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emocam.edge.errors import ModelError
from emocam.edge.vision.preprocess import Preprocessing

SIDECAR_SCHEMA = 1
BUNDLED_MODEL = Path(__file__).resolve().parent.parent / "models" / "emocam-fer6.tflite"


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """Shape (batch first; -1 or 1 for the batch), dtype name and affine quantization of a tensor."""

    shape: tuple[int, ...]
    dtype: str
    scale: float = 0.0
    zero_point: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "dtype": self.dtype, "scale": self.scale, "zero_point": self.zero_point}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TensorSpec:
        return cls(
            shape=tuple(int(v) for v in data["shape"]),
            dtype=str(data["dtype"]),
            scale=float(data.get("scale", 0.0)),
            zero_point=int(data.get("zero_point", 0)),
        )


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A parsed, validated sidecar."""

    labels: tuple[str, ...]
    input: TensorSpec
    output: TensorSpec
    preprocessing: Preprocessing
    sha256: str
    name: str = "emocam"
    version: str = "0"
    architecture: str = ""
    params: int = 0
    macs: int = 0
    source_run: str = ""
    metrics: Mapping[str, Any] = field(default_factory=dict)
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SIDECAR_SCHEMA,
            "name": self.name,
            "version": self.version,
            "labels": list(self.labels),
            "input": self.input.to_dict(),
            "output": self.output.to_dict(),
            "preprocessing": self.preprocessing.to_dict(),
            "architecture": self.architecture,
            "params": self.params,
            "macs": self.macs,
            "source_run": self.source_run,
            "metrics": dict(self.metrics),
            "created": self.created,
            "sha256": self.sha256,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "sidecar") -> ModelInfo:
        try:
            if int(data.get("schema", 0)) != SIDECAR_SCHEMA:
                raise ValueError(f"schema={data.get('schema')!r}, expected {SIDECAR_SCHEMA}")
            labels = tuple(str(label) for label in data["labels"])
            if len(labels) < 2 or len(set(labels)) != len(labels):
                raise ValueError(f"labels={list(labels)} must be 2 or more distinct names")
            info = cls(
                labels=labels,
                input=TensorSpec.from_dict(data["input"]),
                output=TensorSpec.from_dict(data["output"]),
                preprocessing=Preprocessing.from_dict(data.get("preprocessing", {})),
                sha256=str(data["sha256"]),
                name=str(data.get("name", "emocam")),
                version=str(data.get("version", "0")),
                architecture=str(data.get("architecture", "")),
                params=int(data.get("params", 0)),
                macs=int(data.get("macs", 0)),
                source_run=str(data.get("source_run", "")),
                metrics=dict(data.get("metrics", {})),
                created=str(data.get("created", "")),
            )
        except KeyError as exc:
            raise ModelError(f"{where}: missing key {exc.args[0]!r}; regenerate it with emocam-convert") from exc
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{where}: {exc}; regenerate it with emocam-convert") from exc
        if info.output.shape[-1] != len(info.labels):
            raise ModelError(
                f"{where}: output has {info.output.shape[-1]} classes but {len(info.labels)} labels; "
                "regenerate it with emocam-convert"
            )
        return info


def sidecar_path(model_path: Path) -> Path:
    """``model.tflite`` -> ``model.json``."""
    return model_path.with_suffix(".json")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_model_info(model_path: Path, verify_sha256: bool = True) -> ModelInfo:
    """Read and check the sidecar of ``model_path``; every problem is a ModelError naming the file."""
    model_path = Path(model_path)
    if not model_path.is_file():
        raise ModelError(
            f"model file {model_path} does not exist; point model.path at a .tflite made by "
            "emocam-convert, or leave it unset to use the bundled model"
        )
    side = sidecar_path(model_path)
    if not side.is_file():
        raise ModelError(f"sidecar {side} for model {model_path} does not exist; emocam-convert writes both")
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"sidecar {side} is not readable JSON ({exc}); regenerate it with emocam-convert") from exc
    if not isinstance(data, dict):
        raise ModelError(f"sidecar {side} must hold a JSON object")
    info = ModelInfo.from_dict(data, where=str(side))
    if verify_sha256:
        actual = file_sha256(model_path)
        if actual != info.sha256:
            raise ModelError(
                f"model file {model_path} has sha256 {actual[:12]}..., but its sidecar says "
                f"{info.sha256[:12]}...; the file is corrupt or belongs to another sidecar. "
                "Copy the .tflite and .json from the same emocam-convert run"
            )
    return info


def write_model_info(model_path: Path, info: ModelInfo) -> Path:
    """Write the sidecar beside ``model_path`` (atomically, so a reader never sees half a file)."""
    side = sidecar_path(Path(model_path))
    tmp = side.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(info.to_dict(), indent=2) + "\n", encoding="utf-8")
    tmp.replace(side)
    return side
