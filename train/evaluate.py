"""``emocam-train evaluate MODEL DATA``: score a .keras or .tflite model on a labelled dataset.

Both model kinds go through ``emocam.train.predictors`` and ``emocam.train.metrics``, so their numbers compare.
The dataset is loaded with the model's own labels, so label indices line up with its outputs;
classes the model lacks (disgust, for a six-class model) are skipped and reported on stderr.
With ``--json`` stdout is exactly one JSON object and everything for humans goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from emocam.edge.errors import EmocamError
from emocam.train import run
from emocam.train.calibration import Reliability, reliability, write_reliability_png
from emocam.train.data import CLASS_SCHEMES, VAL_GROUPINGS, Dataset, jpeg_reencoded, load_dataset, training_split
from emocam.train.metrics import Report, classification_report, format_report, write_confusion_png
from emocam.train.predictors import (
    DEFAULT_BATCH_SIZE,
    EvaluationError,
    Predictor,
    ensemble,
    load_predictor,
    with_flip_tta,
)

log = logging.getLogger(__name__)


def predictions(predictor: Predictor, dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(true indices into the model's labels, probabilities); dataset labels are matched by name."""
    labels = tuple(predictor.labels)
    missing = [name for name in dataset.label_names if name not in labels]
    if missing:
        raise EvaluationError(
            f"{dataset.source} has classes {missing} that the model does not know (its labels: "
            f"{', '.join(labels)}); load the data with the model's labels as classes"
        )
    # Usually the identity; a different order (e.g. --classes merge-disgust) is remapped by name.
    to_model = np.array([labels.index(name) for name in dataset.label_names], dtype=np.int64)
    y_true = to_model[np.asarray(dataset.labels, dtype=np.int64)]
    return y_true, predictor.probabilities(dataset.images)


def evaluate(predictor: Predictor, dataset: Dataset) -> Report:
    """Score ``predictor`` on ``dataset``."""
    y_true, probs = predictions(predictor, dataset)
    return classification_report(y_true, probs, predictor.labels)


def evaluate_with_calibration(predictor: Predictor, dataset: Dataset) -> tuple[Report, Reliability]:
    """``evaluate`` plus the reliability curve (and ECE) of the same predictions."""
    y_true, probs = predictions(predictor, dataset)
    return classification_report(y_true, probs, predictor.labels), reliability(y_true, probs)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emocam-train evaluate",
        description="Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix of a model.",
    )
    parser.add_argument("model", type=Path, help="a .tflite (with its .json sidecar), a .keras, or a run directory")
    parser.add_argument("data", type=Path, help="Kaggle-layout folder or .zip, fer2013.csv, or a <class>/ folder")
    parser.add_argument(
        "--split", default="test", choices=("train", "test", "publictest", "privatetest", "validation"),
        help="train, test, publictest, privatetest, or validation: the part of train/ a run held out for "
        "model selection, drawn with --val-fraction and --seed (default: test)",
    )
    defaults = run.ValidationSplit()  # what a model outside a run directory is scored with
    # Default None: taken from the run's config.json when MODEL is a run (or its best.keras).
    parser.add_argument("--val-fraction", type=float, default=None,
                        help="with --split validation: the run's --val-fraction "
                        f"(default: the run's, else {defaults.fraction})")
    parser.add_argument("--seed", type=int, default=None,
                        help=f"with --split validation: the run's --seed (default: the run's, else {defaults.seed})")
    parser.add_argument("--val-grouping", choices=VAL_GROUPINGS, default=None,
                        help="with --split validation: the run's --val-grouping "
                        f"(default: the run's, else {defaults.grouping})")
    parser.add_argument("--jpeg-quality", type=int, default=0, metavar="Q",
                        help="score the split after re-encoding every face as a JPEG of quality Q, as users' photos "
                        "and FER-2013's test files are (default 0: as stored)")
    parser.add_argument("--reliability-png", type=Path, default=None, metavar="PATH",
                        help="also draw the reliability diagram (accuracy against confidence, with the ECE)")
    parser.add_argument(
        "--classes",
        default=None,
        help=f"{', '.join(CLASS_SCHEMES)} or comma-separated names (default: the model's labels; "
        "data classes the model lacks are skipped)",
    )
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    parser.add_argument("--flip-tta", action="store_true", help="average each face with its mirror image")
    parser.add_argument("--centre-crop", type=int, default=0, metavar="N",
                        help="score pooling-head Keras models on the central NxN pixels of each face (e.g. 40, "
                        "the training crop); the choice emocam-convert --centre-crop bakes in (default 0: whole face)")
    parser.add_argument("--ensemble-with", type=Path, action="append", default=[], metavar="MODEL",
                        help="average MODEL's probabilities with the first model's (repeat for more); "
                        "the choice emocam-convert --ensemble-with bakes in")
    parser.add_argument("--confusion-png", type=Path, default=None, metavar="PATH",
                        help="also draw the confusion matrix")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help="faces per model call (default: 256)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for inference (default 0: all cores)")
    return parser


def _classes(arg: str | None, predictor: Predictor) -> str | tuple[str, ...]:
    if arg is None:
        return tuple(predictor.labels)
    if arg in CLASS_SCHEMES:
        return arg
    return tuple(name.strip() for name in arg.split(",") if name.strip())


def _skipped_lines(dataset: Dataset) -> list[str]:
    lines = [
        f"skipped {count} '{name}' images: the model has no such class"
        for name, count in sorted(dataset.dropped.items())
    ]
    if dataset.skipped:
        lines.append(f"skipped {dataset.skipped} unreadable or corrupt images")
    return lines


def _check_output(path: Path | None, flag: str) -> None:
    # Before the slow part: a typo in the output path should not cost a whole evaluation.
    if path is None:
        return
    if path.suffix.lower() != ".png":
        raise EvaluationError(f"{flag} {path} must end in .png")
    if not path.parent.is_dir():
        raise EvaluationError(f"{flag} {path}: folder {path.parent} does not exist; create it first")


def _validation_split(args: argparse.Namespace) -> run.ValidationSplit | None:
    """With ``--split validation``, how the run drew it (its config.json, read through the run
    module), overridden by the flags; None for the other splits. Read before any model loads, so
    a broken config.json costs nothing."""
    if args.split != "validation":
        return None
    run_dir = run.run_directory_of(args.model)
    recorded = run.ValidationSplit.of_run(run.read_config(run_dir)) if run_dir else run.ValidationSplit()
    return replace(
        recorded,
        fraction=recorded.fraction if args.val_fraction is None else args.val_fraction,
        seed=recorded.seed if args.seed is None else args.seed,
        grouping=recorded.grouping if args.val_grouping is None else args.val_grouping,
    )


def _load_split(args: argparse.Namespace, classes: str | tuple[str, ...], split: run.ValidationSplit | None) -> Dataset:
    """The split to score. ``validation`` is re-drawn from train/ exactly as ``fit`` drew it, so
    choices such as flip TTA can be made without looking at the test split."""
    if split is None:
        return load_dataset(args.data, split=args.split, classes=classes)
    return training_split(args.data, split, classes)[1]


def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    _check_output(args.confusion_png, "--confusion-png")
    _check_output(args.reliability_png, "--reliability-png")
    if not 0 <= args.jpeg_quality <= 100:
        raise EvaluationError(f"--jpeg-quality {args.jpeg_quality} must be from 1 to 100 (0 = as stored)")
    validation = _validation_split(args)
    models = [args.model, *args.ensemble_with]
    predictor = ensemble([load_predictor(path, num_threads=args.threads, batch_size=args.batch_size,
                                         centre_crop=args.centre_crop) for path in models])
    if args.flip_tta:
        predictor = with_flip_tta(predictor)
    dataset = _load_split(args, _classes(args.classes, predictor), validation)
    dataset = jpeg_reencoded(dataset, args.jpeg_quality)
    for line in _skipped_lines(dataset):
        print(line, file=err)
    report, curve = evaluate_with_calibration(predictor, dataset)
    human = out if not args.json else err
    name = " + ".join(str(path) for path in models)
    crop = f", {args.centre_crop}x{args.centre_crop} centre" if args.centre_crop else ""
    print(f"model {name} on {dataset.source}{' (flip TTA)' if args.flip_tta else ''}{crop}", file=human)
    print(format_report(report), file=human)
    print(f"expected calibration error {curve.ece:.4f} ({len(curve.counts)} bins)", file=human)
    if args.confusion_png is not None:
        write_confusion_png(report, args.confusion_png)  # logs the path it wrote
    if args.reliability_png is not None:
        write_reliability_png(curve, args.reliability_png, title=Path(args.model).name)
        log.info("wrote %s", args.reliability_png)
    if args.json:
        result: dict[str, Any] = {
            **report.to_dict(),
            "model": str(args.model),
            "data": dataset.source,
            "split": args.split,
            "skipped": dict(sorted(dataset.dropped.items())),
            "unreadable": dataset.skipped,
            "flip_tta": bool(args.flip_tta),
            "jpeg_quality": args.jpeg_quality,
            "centre_crop": args.centre_crop,
            "ece": curve.ece,
            "ensemble_with": [str(path) for path in args.ensemble_with],
        }
        print(json.dumps(result), file=out)
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed usage to stderr; hand back its status
        return int(exc.code or 0)
    try:
        return _run(args, sys.stdout, sys.stderr)
    except EmocamError as exc:  # the model, the data, the run directory: each has its exit code
        print(f"emocam-train evaluate: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # the PNG could not be written
        print(f"emocam-train evaluate: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    sys.exit(main())
