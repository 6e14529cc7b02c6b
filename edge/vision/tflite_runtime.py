"""Find a TFLite interpreter: ai-edge-litert first, then tflite-runtime, then tensorflow.lite.

TensorFlow is only the last resort, for a workstation that has it anyway; the Pi never needs it.
This is the one place in edge/ that may touch it, and only when the two device runtimes are absent.

The runtimes' own C++ log lines ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", at the
first allocation in a process) are turned into records of this module's logger, so the configured
log level (EMOCAM_LOG_LEVEL) governs them like any other line.
"""

from __future__ import annotations

import importlib
import logging
import re
from pathlib import Path
from typing import Any

from emocam.edge.errors import ModelError
from emocam.edge.native_stderr import routed_stderr

log = logging.getLogger(__name__)

# tflite's minimal logger writes "INFO: ...", "WARNING: ..." or "ERROR: ..." lines.
_RUNTIME_LINE = re.compile(r"(INFO|WARNING|ERROR): (.*)")
_LEVELS = {"INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR}

_CANDIDATES = (
    ("ai_edge_litert.interpreter", "Interpreter"),
    ("tflite_runtime.interpreter", "Interpreter"),
)


def interpreter_class() -> tuple[type[Any], str]:
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
    """Build an interpreter for ``model_path``, its tensors allocated; a file TFLite cannot parse
    or allocate is a ModelError. Resizing an input later needs another ``allocate_tensors()``."""
    cls, runtime = interpreter_class()

    def relog(line: str) -> bool:
        match = _RUNTIME_LINE.fullmatch(line)
        if match:
            log.log(_LEVELS[match.group(1)], "%s: %s", runtime, match.group(2))
        return match is not None

    try:
        with routed_stderr(relog):
            interpreter = cls(model_path=str(model_path), num_threads=num_threads)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(
            f"model file {model_path} is not a valid TFLite model ({exc}); "
            "re-copy it or regenerate it with emocam-convert"
        ) from exc
    return interpreter, runtime
