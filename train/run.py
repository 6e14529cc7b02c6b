"""The training run directory: its file names and how its recorded config is read back.

``emocam-train fit`` writes a run; evaluate and convert read it through here, so a file name or
the meaning of a recorded key lives in one place.

    best.keras      the float32 inference model of the best validation epoch
    last.keras      the training model with optimizer state, rewritten every epoch (--resume)
    state.json      last finished epoch and best validation accuracy so far
    config.json     the resolved TrainConfig plus architecture, params, MACs, labels, preprocessing
    labels.json     label names in output order
    history.csv     per-epoch loss, accuracy and validation accuracy
    metrics.json    validation metrics of best.keras
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emocam.edge.errors import EmocamError

BEST_MODEL = "best.keras"
LAST_CHECKPOINT = "last.keras"
STATE = "state.json"
CONFIG = "config.json"
LABELS = "labels.json"
HISTORY = "history.csv"
METRICS = "metrics.json"
# Files that mark a directory as a training run: writing a new run over them would destroy it.
MARKERS = (STATE, BEST_MODEL, LAST_CHECKPOINT)


class RunError(EmocamError, ValueError):
    """A run directory's file is missing or unreadable; the message names it."""

    exit_code = 2


def run_directory_of(model_path: Path) -> Path | None:
    """The run directory a model path belongs to: the folder itself, or the folder holding a
    best.keras; None for anything else (a bare .keras elsewhere, a .tflite)."""
    path = Path(model_path)
    if path.is_dir():
        return path
    if path.suffix == ".keras" and (path.parent / CONFIG).is_file():
        return path.parent
    return None


def read_config(run_dir: Path) -> dict[str, Any]:
    """The run's config.json as a dict ({} when the run has none)."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(
            f"run config {path} is not readable JSON ({exc}); re-run emocam-train fit or fix the file"
        ) from exc
    if not isinstance(data, dict):
        raise RunError(f"run config {path} holds {type(data).__name__}, not a JSON object; re-run emocam-train fit")
    return data


@dataclass(frozen=True, slots=True)
class ValidationSplit:
    """How a run drew its validation split, so later steps can draw the very same one."""

    fraction: float = 0.1
    seed: int = 1337
    grouping: str = "pixels"
    jpeg_quality: int = 95

    @classmethod
    def of_run(cls, config: dict[str, Any]) -> ValidationSplit:
        # Runs before duplicate grouping (v1.x models) recorded neither key: they split by file,
        # scored as stored.
        try:
            return cls(
                fraction=float(config.get("val_fraction", 0.1)),
                seed=int(config.get("seed", 0)),
                grouping=str(config.get("val_grouping", "none")),
                jpeg_quality=int(config.get("val_jpeg_quality", 0)),
            )
        except (TypeError, ValueError) as exc:
            raise RunError(f"run config: val_fraction, seed and val_jpeg_quality must be numbers ({exc})") from exc
