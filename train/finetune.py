"""Fine-tuning on a user's own faces: ``--init-from RUN --data FOLDER`` with FOLDER/<label>/*.png.

The labels come from the base model (its run's labels.json), never from the folder: the model
keeps every output in the base model's order, whichever classes the folder holds. Defaults that
suit a few hundred faces (fewer epochs, a lower learning rate, a short warm-up) apply only to
such a run and only to knobs not given on the command line; config.json records the result.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from emocam.train import bundled, run
from emocam.train.config import TrainConfig, TrainConfigError
from emocam.train.data import IMAGE_SUFFIXES, DataError, is_class_folder, resolve_classes

log = logging.getLogger(__name__)

# Measured on a 2-core CPU under load (vgg-m, ~30 ms per training face per epoch): 260 faces plus
# 600 replayed ones take about 4 minutes; 1,200 replayed ones (200 a class) took 9.
FINE_TUNE_DEFAULTS: dict[str, Any] = {
    "epochs": 10,  # a warm start converges in a few epochs; early stopping ends it sooner
    "learning_rate": 0.002,  # a tenth of training from scratch: adjust the base model, do not erase it
    "warmup_epochs": 1,  # a short warm-up; the optimizer state starts fresh
    "patience": 5,  # epochs without a better validation accuracy on the user's own faces
    "batch_size": 32,  # a few hundred faces still take several steps per epoch
    "val_fraction": 0.2,  # a few dozen faces per class: a fifth of them is still a handful to score on
}


def is_fine_tune(cfg: TrainConfig) -> bool:
    """A warm start on a user's folder of <label>/ folders (not on a FER-2013 layout)."""
    return bool(cfg.init_from) and is_class_folder(cfg.data)


def _base_config(init_from: str) -> dict[str, Any]:
    """What the base model's run recorded ({} for a bare .keras file); the bundled weights carry theirs."""
    if bundled.is_bundled(init_from):
        return bundled.describe()
    run_dir = run.run_directory_of(Path(init_from))
    return run.read_config(run_dir) if run_dir is not None else {}


def base_labels(init_from: str) -> tuple[str, ...] | None:
    """The base model's label names in output order, from its run's labels.json (None if unknown)."""
    if bundled.is_bundled(init_from):
        return bundled.labels()
    run_dir = run.run_directory_of(Path(init_from))
    return run.read_labels(run_dir) if run_dir is not None else None


def resolve(cfg: TrainConfig, given: set[str]) -> TrainConfig:
    """``cfg`` with the base model's architecture, crop and class scheme for each of them not in
    ``given`` (the flags typed): weights fit only the network they came from. On a fine-tune
    (``is_fine_tune``) also the small-folder defaults. Unchanged without --init-from."""
    if not cfg.init_from:
        return cfg
    base = _base_config(cfg.init_from)
    small_folder = is_fine_tune(cfg)
    changes: dict[str, Any] = {name: value for name, value in FINE_TUNE_DEFAULTS.items()
                               if small_folder and name not in given}
    if "architecture" not in given and isinstance(base.get("architecture"), str):
        changes["architecture"] = base["architecture"]
    # A pooling-head base trained on random crops keeps that augmentation: its filters were learnt
    # on faces seen through a 40x40 window, and it is scored on whole faces either way.
    if "crop" not in given and isinstance(base.get("crop"), int) and not isinstance(base["crop"], bool):
        changes["crop"] = base["crop"]
    if "classes" not in given:
        labels = base_labels(cfg.init_from)
        scheme = base.get("classes")
        if isinstance(scheme, str) and labels is not None and resolve_classes(scheme)[0] == labels:
            changes["classes"] = scheme  # keeps a merge-disgust run merging
        elif labels is not None:
            changes["classes"] = labels
    if changes:
        log.info("%s %s on %s with %s (%s; a flag overrides each)", "fine-tuning" if small_folder else "starting from",
                 cfg.init_from, cfg.data,
                 ", ".join(f"--{k.replace('_', '-')} {v if isinstance(v, str | int | float) else list(v)}"
                           for k, v in changes.items()),
                 "defaults for a small folder" if small_folder else "the base model's")
    return replace(cfg, **changes)


def check_folder(cfg: TrainConfig) -> None:
    """Refuse, before any image is decoded, a user folder the run cannot learn from: a class the
    --init-from model has no output for, or one class alone with nothing to contrast it with."""
    folder = Path(cfg.data)
    labels, renames = resolve_classes(cfg.classes)
    base = base_labels(cfg.init_from) if cfg.init_from else None
    if base is not None and labels != base:
        raise TrainConfigError(
            f"--classes {cfg.classes!r} gives labels {list(labels)}, but the --init-from model's are {list(base)}; "
            "leave --classes out to keep the base model's"
        )
    counts: dict[str, int] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        name = sub.name.strip().lower()
        label = renames.get(name, name)
        if label not in labels and cfg.init_from:  # without a base model, --classes six drops disgust
            raise DataError(
                f"{sub}: {name!r} is not one of the model's labels ({', '.join(labels)}); rename the folder to one "
                "of them or remove it"
            )
        found = sum(1 for p in sub.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        counts[label] = counts.get(label, 0) + found
    present = [label for label in labels if counts.get(label)]
    if not present:
        raise DataError(f"{folder} holds no images in its label folders ({', '.join(sorted(counts))}); collect faces "
                        f"into them with `emocam collect --label LABEL --out {folder}`")
    if len(present) == 1 and not cfg.replay_from and not cfg.extra_data:
        raise DataError(
            f"{folder} holds faces of one class only ({present[0]}): a classifier cannot learn from one class; "
            "add --replay-from FER2013 (a sample of every class) or collect faces of more classes"
        )


def warn_missing(cfg: TrainConfig) -> None:
    """One warning naming the model's classes a fine-tune's folder has no images of."""
    if not is_fine_tune(cfg):
        return
    folder = Path(cfg.data)
    labels, renames = resolve_classes(cfg.classes)
    present = {renames.get(d.name.lower(), d.name.lower()) for d in folder.iterdir()
               if d.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in d.iterdir())}
    missing = [label for label in labels if label not in present]
    if missing:
        helped = "; --replay-from (e.g. FER-2013) helps it keep them" if not cfg.replay_from else ", helped by replay"
        log.warning("%s has no images of %s: kept from the base model %s%s", folder, ", ".join(missing),
                    cfg.init_from, helped)
