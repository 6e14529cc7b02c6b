"""emocam-convert: a training run -> int8 ``model.tflite`` + sidecar, verified through the device's code.

The composition root: it parses arguments, wires emocam.convert.quantize and emocam.convert.verify together,
prints the verification report on stdout and maps errors to exit codes. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from emocam import __version__
from emocam.convert.calibrate import calibrate
from emocam.convert.quantize import (
    PRECISIONS,
    ConvertError,
    Source,
    check_output_path,
    convert_keras,
    load_keras_model,
    output_path,
    pin_input_range,
    publish,
    read_source,
    representative_indices,
    staging,
    with_centre_cropping,
    with_ensemble_averaging,
    with_flip_averaging,
    write_model,
)
from emocam.convert.verify import Comparison, check_drop, compare, predict_all
from emocam.edge.errors import EmocamError, ModelError
from emocam.edge.vision.classifier import EmotionClassifier
from emocam.edge.vision.model_info import write_model_info
from emocam.train import run
from emocam.train.calibration import expected_calibration_error
from emocam.train.data import Dataset, default_cache_dir, is_class_folder, jpeg_reencoded, load_dataset, subset
from emocam.train.metrics import classification_report
from emocam.train.tf_startup import quiet_tensorflow_startup

log = logging.getLogger(__name__)

SAMPLING_SEED = 0  # calibration and --verify-limit samples: the same run and data give the same model
EXIT_CODES = """exit codes (one table for emocam, emocam-train and emocam-convert: see the README):
  0  written (and verified)
  2  bad input (SOURCE, --data, arguments) or the TFLite converter failed
  3  the converted model does not load in the device's code (corrupt or unsupported by LiteRT)
  8  int8 lost more than --max-drop accuracy points; nothing was written (see --force)"""


def _precisions(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    extra = [name for name in names if name not in PRECISIONS[1:]]
    if extra:
        raise argparse.ArgumentTypeError(f"{','.join(extra)}: choose from {','.join(PRECISIONS[1:])}")
    return names


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number (0 or more)") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be 0 or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emocam-convert",
        description="Convert a trained Keras model to full-integer int8 TFLite with a JSON sidecar, "
        "then check it through the device's inference code against the float model.",
        epilog="example: emocam-convert runs/fer6 --data ../shared/datasets/fer2013.zip --out model.tflite\n\n"
        + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", type=Path, metavar="SOURCE",
                        help="a run directory made by emocam-train, or a .keras file with labels.json beside it")
    parser.add_argument("--data", default="",
                        help="dataset (Kaggle folder, .zip, fer2013.csv or <class>/ folders); default: the run's own")
    parser.add_argument("--out", type=Path, default=Path("model.tflite"),
                        help="the .tflite to write; its sidecar goes beside it as .json (default: %(default)s)")
    parser.add_argument("--representative-count", type=_non_negative, default=500,
                        help="training images used to calibrate int8, equal per class (default: %(default)s)")
    parser.add_argument("--verify-split", default="test",
                        help="split to verify on (default: %(default)s; a folder of <label>/ faces has none, so "
                        "the run's own validation split of it is verified on)")
    parser.add_argument("--verify-limit", type=_non_negative, default=0,
                        help="verify on at most this many images, a seeded random sample (default: all)")
    parser.add_argument("--max-drop", type=float, default=1.0,
                        help="most accuracy points int8 may lose against float (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="write the model even if it lost more than --max-drop")
    parser.add_argument("--also", type=_precisions, default=(), metavar="float32,float16",
                        help="also write these precisions for comparison, as <out>-<precision>.tflite")
    parser.add_argument("--flip-tta", action="store_true",
                        help="bake flip test-time augmentation into the model (mean of the face and its mirror; "
                        "twice the cost per face). Decide with emocam-train evaluate --split validation --flip-tta")
    parser.add_argument("--ensemble-with", type=Path, action="append", default=[], metavar="SOURCE",
                        help="average SOURCE's probabilities with the first model's, in one model (repeat for "
                        "more; the cost per face adds up). Decide with emocam-train evaluate --split validation "
                        "--ensemble-with")
    parser.add_argument("--centre-crop", type=_non_negative, default=0, metavar="N",
                        help="score every member on the central NxN pixels of the face (pooling-head networks "
                        "trained on crops); decide with emocam-train evaluate --split validation --centre-crop N")
    parser.add_argument("--temperature", type=_temperature, default="auto", metavar="auto|T",
                        help="divide the logits by T so confidences are calibrated; auto fits T on the run's "
                        "JPEG-scored validation split and records the calibration error before and after in the "
                        "sidecar (default: auto; 1 keeps them as trained)")
    parser.add_argument("--model-version", default="", metavar="VERSION",
                        help="model version for the sidecar (default: the date and time)")
    parser.add_argument("--version", action="version", version=f"emocam-convert {__version__}")
    parser.add_argument("--name", default="", help="model name for the sidecar (default: the --out file name)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    return parser


def _limit(dataset: Dataset, limit: int) -> Dataset:
    if not limit or limit >= len(dataset):
        return dataset
    # A random sample rather than per class, so the accuracy estimates the whole split's.
    index = np.sort(np.random.default_rng(SAMPLING_SEED).permutation(len(dataset))[:limit])
    return subset(dataset, index, f"[{limit} sampled]")


def _check_classes(dataset: Dataset, source: Source) -> Dataset:
    if dataset.label_names != source.labels:
        raise ConvertError(
            f"{dataset.source} gives classes {list(dataset.label_names)}, "
            f"but the model's labels are {list(source.labels)}"
        )
    return dataset


def _load(data: str, split: str, source: Source) -> Dataset:
    # The run's class scheme, so merge-disgust data is merged here too, not dropped; and the run's
    # cache, so the images training decoded are not decoded again.
    cache_dir = Path(source.cache_dir) if source.cache_dir else default_cache_dir()
    loaded = load_dataset(data, split, source.classes or source.labels, source.preprocessing, cache_dir)
    dataset = _check_classes(loaded, source)
    log.info("%s", dataset.summary())
    return dataset


def _run_split(data: str, source: Source) -> tuple[Dataset, Dataset] | None:
    """The run's own (training, validation) split, re-drawn as ``emocam-train fit`` drew it (its
    replay sample in training), so the sidecar can say how the converted model scores on data that
    chose it. None when the run did not record it."""
    if source.split is None:
        log.warning("%s records no validation split; the sidecar will have no validation metrics", source.run_dir)
        return None
    from emocam.train.data import training_split  # the one place the validation split is drawn

    train, validation = training_split(data, source.split, source.classes or source.labels, source.extra_data,
                                       source.cache_dir, replay_from=source.replay_from,
                                       replay_per_class=source.replay_per_class)
    return _check_classes(train, source), _check_classes(validation, source)


def _calibration_and_verification(data: str, own: str, args: argparse.Namespace, source: Source,
                                  split: tuple[Dataset, Dataset] | None) -> tuple[Dataset, Dataset, str]:
    """(images to calibrate int8 on, images to verify on, the verification split's name). A user's
    folder of <label>/ faces has no test split: the run's training split (replay included)
    calibrates and its validation split verifies, so no image verifies that also calibrated; a
    folder other than the one the run trained on (``own``) is verified on whole."""
    if not is_class_folder(data):
        train = _load(data, "train", source)
        test = _limit(_load(data, args.verify_split, source), args.verify_limit)
        if test.source == train.source:
            log.warning("%s has no separate %r split: verifying on training images", data, args.verify_split)
        return train, test, args.verify_split
    if split is None:
        raise ConvertError(f"{data} is a folder of <label>/ faces with no test split, and {source.run_dir} records no "
                           "validation split to verify on; convert a run that emocam-train fit wrote")
    if Path(data).resolve() != Path(own).resolve():
        log.info("verifying on all of %s, a folder the run did not train on", data)
        return split[0], _limit(_load(data, "train", source), args.verify_limit), "test"
    log.info("%s has no test split: calibrating on the run's training split, verifying on its validation split", data)
    return split[0], _limit(split[1], args.verify_limit), "validation"


def _validation_metrics(classifier: EmotionClassifier, validation: Dataset | None) -> dict[str, Any]:
    if validation is None:
        return {}
    probs = predict_all(classifier, validation.images)
    report = classification_report(validation.labels, probs, classifier.labels)
    return {"split": "validation", "source": validation.source, "accuracy": round(report.accuracy, 6),
            "macro_f1": round(report.macro_f1, 6), "n": report.n,
            "ece": round(expected_calibration_error(validation.labels, probs), 6)}


def _scored_validation(validation: Dataset | None, source: Source) -> Dataset | None:
    """Validation as the run scored it (JPEG-re-encoded since v2 runs), or None."""
    if validation is None or source.split is None or not source.split.jpeg_quality:
        return None
    return jpeg_reencoded(validation, source.split.jpeg_quality)


class _KerasReference:
    """The float Keras model exactly as converted (ensemble, flip TTA and temperature included)."""

    def __init__(self, model: Any, labels: tuple[str, ...]) -> None:
        self.model, self.labels = model, labels

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        batch = np.asarray(images, np.float32)[..., None]
        return np.asarray(self.model.predict(batch, batch_size=256, verbose=0), np.float32)


def _load_models(sources: list[Source], args: argparse.Namespace, calibration_split: Dataset | None
                 ) -> tuple[Any, Source, dict[str, Any]]:
    """The model to convert, what it was made from, and its calibration record: the first source
    alone or averaged with the --ensemble-with ones, tempered, then mirrored for flip TTA."""
    from emocam.convert.calibrate import fold_temperature

    source = sources[0]
    members = [load_keras_model(member) for member in sources]
    if args.centre_crop:
        members = [with_centre_cropping(model, member, args.centre_crop) for model, member in members]
    networks = [model for model, _ in members]
    record: dict[str, Any] = {}
    if args.temperature == "auto" and calibration_split is None:
        log.warning("%s records no JPEG-scored validation split to fit a temperature on; confidences are left "
                    "as trained (give --temperature T to set one)", source.run_dir)
    elif args.temperature == "auto":
        assert calibration_split is not None
        record = calibrate(networks, calibration_split.images, calibration_split.labels, args.flip_tta,
                           calibration_split.source).to_dict()
    elif args.temperature != 1.0:
        for network in networks:
            fold_temperature(network, args.temperature)
        record = {"temperature": args.temperature, "split": "given with --temperature"}
    model, source = with_ensemble_averaging(members) if len(members) > 1 else members[0]
    if args.flip_tta:
        model, source = with_flip_averaging(model, source)
    return model, source, record


def _temperature(text: str) -> str | float:
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.05 <= value <= 20:  # also refuses NaN
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither 'auto' nor a temperature from 0.05 to 20 (1 = as trained)"
        )
    return value


def convert(args: argparse.Namespace, now: datetime) -> list[Path]:
    """Every step, in order; returns the files written. Raises EmocamError (DataError, RunError, ...)."""
    check_output_path(args.out)
    # Every run is read (no TensorFlow) before any data is: a typo in a path costs nothing.
    sources = [read_source(args.source), *(read_source(path, "--ensemble-with") for path in args.ensemble_with)]
    source = sources[0]
    data = args.data or source.data
    if not data:
        raise ConvertError(f"no --data given and {source.run_dir / run.CONFIG} names no dataset; pass --data PATH")
    # The run's validation split is of the data it trained on, even when --data names another
    # dataset to verify on (a model fine-tuned on a user's folder, verified on FER-2013's test).
    own = source.data if source.data and Path(source.data).exists() else data
    split = _run_split(own, source)
    validation = split[1] if split is not None else None
    scored_validation = _scored_validation(validation, source)
    model, source, calibration_record = _load_models(sources, args, scored_validation)

    train, test, verify_split = _calibration_and_verification(data, own, args, source, split)
    chosen = representative_indices(train.labels, args.representative_count, len(source.labels), SAMPLING_SEED)
    calibration = pin_input_range(train.images[chosen], source.preprocessing)
    log.info("calibrating int8 on %d training images", len(calibration))

    reference_probs = predict_all(_KerasReference(model, source.labels), test.images)

    name = args.name or args.out.stem
    version = args.model_version or f"{now:%Y.%m.%d-%H%M}"
    threads = min(4, os.cpu_count() or 1)
    print(f"verifying on {test.source} ({len(test)} images) against the float Keras model")
    with staging(args.out) as folder:
        staged: list[Path] = []
        results: list[Comparison] = []
        for precision in ("int8", *args.also):
            path = folder / output_path(args.out, precision).name
            content = convert_keras(model, precision, calibration if precision == "int8" else None)
            model_name = name if precision == "int8" else f"{name}-{precision}"
            info = write_model(path, content, source, model_name, version, now)
            classifier = EmotionClassifier(path, threads)
            result = compare(
                precision, classifier, reference_probs, test.images, test.labels, source.labels, verify_split
            )
            print(result.summary())
            validation_metrics = _validation_metrics(classifier, validation)
            jpeg_metrics = _validation_metrics(classifier, scored_validation)
            for metrics in (validation_metrics, jpeg_metrics):
                if metrics:
                    print(f"{precision:>7}: validation accuracy {metrics['accuracy']:.2%}, ECE {metrics['ece']:.4f} "
                          f"[{metrics['source']}, n={metrics['n']}]")
            sidecar_metrics = result.to_metrics(str(data), validation_metrics)
            if jpeg_metrics:
                sidecar_metrics["validation_jpeg"] = jpeg_metrics
            if calibration_record:
                sidecar_metrics["calibration"] = calibration_record
            write_model_info(path, replace(info, metrics=sidecar_metrics))
            staged.append(path)
            results.append(result)
        if args.force and results[0].drop_points > args.max_drop:
            log.warning("int8 lost %.2f accuracy points (limit %s); writing it anyway (--force)",
                        results[0].drop_points, args.max_drop)
        elif not args.force:
            check_drop(results[0], args.max_drop)
        written = publish(folder, staged, args.out.parent)
    for path in written:
        print(f"wrote {path}")
    return written


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else list(argv)
    if "--version" in given[:-1] and not given[given.index("--version") + 1].startswith("-"):
        # Before 0.2 `--version X` named the model; printing emocam's version instead would
        # silently skip the conversion a script asked for.
        print("emocam-convert: error: the sidecar's model version is now --model-version "
              f"{given[given.index('--version') + 1]}; --version prints emocam's version", file=sys.stderr)
        return 2
    args = build_parser().parse_args(given)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # TensorFlow's start-up and export chatter
        quiet_tensorflow_startup()
        logging.getLogger("tensorflow").setLevel(logging.WARNING)
    try:
        convert(args, datetime.now(UTC))
    except ModelError as exc:  # the converted model failed in the device's own code (3)
        print(f"emocam-convert: the converted model does not work on the device: {exc}", file=sys.stderr)
        return exc.exit_code
    except EmocamError as exc:  # the source, the run directory, the data, the arguments: each has its code
        print(f"emocam-convert: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
