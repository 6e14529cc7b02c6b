"""The training run directory: its file names, when fit may write one, and how it is read back.

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
from emocam.train.config import TrainConfig, from_recorded

BEST_MODEL = "best.keras"
LAST_CHECKPOINT = "last.keras"
STATE = "state.json"
CONFIG = "config.json"
LABELS = "labels.json"
HISTORY = "history.csv"
METRICS = "metrics.json"
# Files that mark a directory as a training run: writing a new run over them would destroy it.
MARKERS = (STATE, BEST_MODEL, LAST_CHECKPOINT)
# Everything fit writes: a folder holding any of these is (the start of) a run.
RUN_FILES = (BEST_MODEL, LAST_CHECKPOINT, STATE, CONFIG, LABELS, HISTORY, METRICS)


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


def read_json(path: Path, what: str) -> Any:
    """The JSON in one of a run's files; RunError naming the file when it is not readable JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"{what} {path} is not readable JSON ({exc}); re-run emocam-train fit or fix the file") from exc


def read_config(run_dir: Path) -> dict[str, Any]:
    """The run's config.json as a dict ({} when the run has none)."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        return {}
    data = read_json(path, "run config")
    if not isinstance(data, dict):
        raise RunError(f"run config {path} holds {type(data).__name__}, not a JSON object; re-run emocam-train fit")
    return data


def read_labels(run_dir: Path) -> tuple[str, ...] | None:
    """The label names in output order from the run's labels.json (a list, or an object with a
    ``labels`` list); None when there is no labels.json."""
    path = Path(run_dir) / LABELS
    if not path.is_file():
        return None
    data = read_json(path, "labels file")
    if isinstance(data, dict) and "labels" in data:
        data = data["labels"]
    if not isinstance(data, list) or not all(isinstance(v, str) for v in data):
        raise RunError(f"{path} must hold a JSON list of label names in output order")
    if len(data) < 2 or len(set(data)) != len(data):
        raise RunError(f"{path} lists {data}; expected 2 or more distinct label names")
    return tuple(data)


def read_train_config(run_dir: Path) -> TrainConfig | None:
    """The knobs the run was trained with (what --resume continues), None when it recorded none."""
    recorded = read_config(run_dir)
    return from_recorded(recorded, str(Path(run_dir) / CONFIG)) if recorded else None


def read_state(run_dir: Path) -> tuple[int, float]:
    """(last finished epoch, best validation accuracy so far) from the run's state.json."""
    path = Path(run_dir) / STATE
    state = read_json(path, "run state")
    try:
        return int(state["epoch"]), float(state["best_val_accuracy"])
    except (TypeError, KeyError, ValueError) as exc:
        raise RunError(
            f"run state {path} must hold {{\"epoch\": N, \"best_val_accuracy\": A}} ({exc!r}); "
            "fix it, or start the run again with --overwrite"
        ) from exc


def resumable(run_dir: Path) -> bool:
    """Whether the run has what --resume continues from: its state and last checkpoint."""
    return (Path(run_dir) / STATE).is_file() and (Path(run_dir) / LAST_CHECKPOINT).is_file()


def check_out(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse, before anything is read or written, a --out that fit would spoil: a file; a run
    (replaced only with --overwrite); with --resume, a run that cannot be resumed or a folder
    that is no run at all. A missing or empty folder is a new run, with or without --resume."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"--out {run_dir} is a file, not a run directory; choose another --out")
    existing = [name for name in MARKERS if (run_dir / name).exists()]
    if overwrite or not run_dir.is_dir():
        return
    if not resume:
        if existing:
            raise RunError(
                f"--out {run_dir} already holds a run ({', '.join(existing)}); continue it with --resume, "
                "choose another --out, or replace it with --overwrite"
            )
        return
    if resumable(run_dir):
        read_state(run_dir)  # a broken state.json is refused now, not after the data is read
        return
    if existing:
        missing = [name for name in (STATE, LAST_CHECKPOINT) if not (run_dir / name).is_file()]
        raise RunError(
            f"--resume: the run in {run_dir} has {', '.join(existing)} but no {' or '.join(missing)} to continue "
            "from; replace it with --overwrite, or choose another --out"
        )
    others = sorted(p.name for p in run_dir.iterdir() if p.name not in RUN_FILES)
    if others and not any((run_dir / name).exists() for name in RUN_FILES):
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise RunError(
            f"--resume: {run_dir} is not a run directory (it holds {shown} and no {STATE}); "
            "give the --out of the run to continue, or a new folder"
        )


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
