"""Find a TFLite interpreter: ai-edge-litert first, then tflite-runtime, then tensorflow.lite.

TensorFlow is only the last resort, for a workstation that has it anyway; the Pi never needs it.
This is the one place in edge/ that may touch it, and only when the two device runtimes are absent.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from edge.errors import ModelError

_CANDIDATES = (
    ("ai_edge_litert.interpreter", "Interpreter"),
    ("tflite_runtime.interpreter", "Interpreter"),
)


def interpreter_class() -> tuple[type, str]:
    """Return (Interpreter class, module name) of the first runtime that imports."""
    for module_name, attr in _CANDIDATES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        return getattr(module, attr), module_name
    try:
        tf_lite = importlib.import_module("tensorflow.lite")  # workstation fallback only
    except ImportError:
        pass
    else:
        return tf_lite.Interpreter, "tensorflow.lite"
    raise ModelError(
        "no TFLite runtime is installed; run `pip install ai-edge-litert` "
        "(or `pip install tflite-runtime 'numpy<2'` on 32-bit Raspberry Pi OS)"
    )


def make_interpreter(model_path: Path, num_threads: int = 1) -> tuple[Any, str]:
    """Build an interpreter for ``model_path``; a file TFLite cannot parse is a ModelError."""
    cls, runtime = interpreter_class()
    try:
        return cls(model_path=str(model_path), num_threads=num_threads), runtime
    except (ValueError, RuntimeError) as exc:
        raise ModelError(
            f"model file {model_path} is not a valid TFLite model ({exc}); "
            "re-copy it or regenerate it with emocam-convert"
        ) from exc
