"""The ``[detector]`` and ``[model]`` sections: which face detector, and which emotion model.

The detector names live here, once: the config checks them and ``vision.detectors.make_detector``
dispatches on them. Kept free of OpenCV and LiteRT, so reading a config costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from emocam.edge.field_checks import check_choice, check_range, check_whole

DETECTOR_NAMES = ("auto", "blazeface", "haar")
DETECTOR_MODELS = ("short", "full")


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    name: str = "auto"  # auto (BlazeFace; Haar if its bundled model is missing) | blazeface | haar
    min_score: float = 0.6  # BlazeFace confidence a detection needs
    model: str = "short"  # BlazeFace range: short (faces within ~2 m) | full (~5 m)
    num_threads: int = 1

    def __post_init__(self) -> None:
        check_choice("name", self.name, DETECTOR_NAMES)
        check_range("min_score", self.min_score, 0, 1)
        check_choice("model", self.model, DETECTOR_MODELS)
        check_whole("num_threads", self.num_threads, 1, 64)


@dataclass(frozen=True, slots=True)
class ModelConfig:
    # .tflite with its .json sidecar beside it; empty = the bundled model. load_config makes a
    # relative path in a file absolute against the file's folder; parse_config leaves it to the cwd.
    path: str = ""
    num_threads: int = 1

    def __post_init__(self) -> None:
        check_whole("num_threads", self.num_threads, 1, 64)

    @property
    def resolved_path(self) -> Path:
        # Imported here: vision.model_info pulls in OpenCV (through the preprocessing contract),
        # which `emocam listen` and `remove-discovery` never need (about 20 MB and 0.1 s).
        from emocam.edge.vision.model_info import BUNDLED_MODEL

        return Path(self.path).expanduser() if self.path else BUNDLED_MODEL
