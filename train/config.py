"""Every training knob in one place, each with its default and what it is for.

The resolved config is saved as ``config.json`` in the run directory, next to the weights, so
conversion and evaluation never have to guess how a model was made.
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, NamedTuple

from emocam.edge.errors import EmocamError


def knob(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TrainConfig:
    data: str = knob("", "dataset: Kaggle folder, .zip, fer2013.csv or a folder of <class>/ images")
    extra_data: tuple[str, ...] = knob((), "more class-folder datasets mixed into training (fine-tuning on your faces)")
    replay_from: str = knob(
        "",
        "fine-tuning: mix a fixed, seeded sample of this dataset's training split (e.g. FER-2013) into training, "
        "so classes your folder lacks keep what the base model knew; never used for validation",
    )
    replay_per_class: int = knob(
        100, "images per class drawn from --replay-from (100 x 6 keeps a fine-tune of a few hundred faces to minutes)"
    )
    out: str = knob("runs/emocam", "run directory: weights, config, labels, history, metrics")
    classes: str = knob("six", "six (drop disgust), seven, or merge-disgust (disgust counted as angry)")
    architecture: str = knob("vgg-m", "a name from emocam.train.architectures.ARCHITECTURES")
    epochs: int = knob(60, "maximum epochs (early stopping may end sooner)")
    batch_size: int = knob(64, "images per step")
    learning_rate: float = knob(0.02, "peak learning rate (SGD with Nesterov momentum)")
    schedule: str = knob(
        "cosine",
        "cosine (warm-up, then decay over --epochs) or "
        "plateau (halve on a stalled validation accuracy; any run length)",
    )
    warmup_epochs: int = knob(2, "linear warm-up epochs before the cosine decay")
    momentum: float = knob(0.9, "SGD momentum")
    weight_decay: float = knob(5e-4, "decoupled weight decay")
    label_smoothing: float = knob(0.1, "label smoothing of the cross-entropy")
    class_weighting: str = knob("sqrt", "class imbalance: none, sqrt (inverse square root frequency) or balanced")
    patience: int = knob(15, "early stopping: epochs without a better validation accuracy")
    val_fraction: float = knob(0.1, "stratified share of train/ held out for validation and model selection")
    val_grouping: str = knob(
        "pixels",
        "pixels: pixel-identical images stay on one side of the validation split "
        "(no twin of a validation image in training); none: split by file (runs before v2)",
    )
    val_jpeg_quality: int = knob(
        95,
        "score validation during training after re-encoding as JPEG of this quality, "
        "as the test files and most users' images are (0 = as stored)",
    )
    seed: int = knob(1337, "seed for the split, initialization and augmentation")
    limit_per_class: int = knob(0, "use at most this many training images per class (0 = all; smoke runs)")
    # Augmentation: the original project's shear, zoom and flip, plus rotation, shift, brightness,
    # contrast and random erasing.
    augment_in: str = knob(
        "data",
        "data: OpenCV in the input pipeline, fast on every backend; "
        "model: Keras layers (v1's recipe; ~5x slower on JAX)",
    )
    flip: bool = knob(True, "random horizontal flip")
    rotation_deg: float = knob(10.0, "random rotation range, degrees")
    shear: float = knob(0.1, "random shear factor")
    zoom: float = knob(0.1, "random zoom range")
    shift: float = knob(0.1, "random shift, fraction of the image")
    brightness: float = knob(0.2, "random brightness change, fraction of the range")
    contrast: float = knob(0.2, "random contrast change")
    erasing: float = knob(0.25, "probability of erasing a random rectangle (random erasing / cutout)")
    jpeg: float = knob(
        0.5, "probability of re-encoding a training face as JPEG (quality drawn from --jpeg-quality-min..95)"
    )
    jpeg_quality_min: int = knob(60, "lowest JPEG quality of the random re-encoding")
    crop: int = knob(
        0,
        "train on random CROP x CROP crops of each face, scored on the whole face "
        "(0 = whole faces; needs a pooling-head architecture)",
    )
    precision: str = knob(
        "float32",
        "float32, or mixed_bfloat16 (about 1.4x faster where the CPU has AVX512_BF16 or AMX, or on a GPU); "
        "weights stay float32 either way",
    )
    ema: float = knob(
        0.0,
        "exponential moving average of the weights, this momentum per step (e.g. 0.999; 0 = off); "
        "validation and best.keras use the average",
    )
    cache_dir: str = knob("", "where decoded datasets are cached (default ~/.cache/emocam)")
    init_from: str = knob(
        "",
        "start from these weights: 'bundled' (the float weights of the model emocam ships), a run directory "
        "or a .keras file of the same architecture and classes; a longer schedule on a finished run, or "
        "fine-tuning on your faces",
    )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["extra_data"] = list(self.extra_data)
        return data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One --flag per knob, defaults and help taken from TrainConfig itself."""
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        help_text = f"{f.metadata.get('help', '')} (default: {default!r})"
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif isinstance(default, tuple):
            parser.add_argument(flag, action="append", default=None, help=help_text)
        else:
            # Named choices are listed by argparse itself, in --help and in its error message.
            parser.add_argument(flag, type=type(default), default=None, help=help_text, choices=CHOICES.get(f.name))


def from_arguments(args: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    """Flags given on the command line override ``base`` (a resumed run's saved config)."""
    values = (base or TrainConfig()).to_dict()
    for f in fields(TrainConfig):
        given = getattr(args, f.name, None)
        if given is not None:
            values[f.name] = given
    values["extra_data"] = tuple(values["extra_data"])
    return TrainConfig(**values)


class TrainConfigError(EmocamError, ValueError):
    """A training knob has a value it cannot take; the message names the flag and what is allowed."""

    exit_code = 2


CHOICES: dict[str, tuple[str, ...]] = {
    "classes": ("six", "seven", "merge-disgust"),
    "schedule": ("cosine", "plateau"),
    "class_weighting": ("none", "sqrt", "balanced"),
    "augment_in": ("data", "model"),
    "val_grouping": ("pixels", "none"),
    "precision": ("float32", "mixed_bfloat16"),
}


class Range(NamedTuple):
    """The values a numeric knob may take; None = unbounded on that side."""

    low: float | None
    high: float | None = None
    low_open: bool = False  # the lowest value itself is not allowed
    high_open: bool = False  # nor the highest

    def admits(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (value == self.low and self.low_open)):
            return False
        return self.high is None or value < self.high or (value == self.high and not self.high_open)

    def __str__(self) -> str:
        low = f"{'>' if self.low_open else '>='} {self.low:g}" if self.low is not None else ""
        high = f"{'<' if self.high_open else '<='} {self.high:g}" if self.high is not None else ""
        return " and ".join(part for part in (low, high) if part)


RANGES: dict[str, Range] = {
    "epochs": Range(1),
    "batch_size": Range(1),
    "learning_rate": Range(0, 10, low_open=True),
    "warmup_epochs": Range(0),
    "momentum": Range(0, 1),
    "weight_decay": Range(0, 1),
    "label_smoothing": Range(0, 1),
    "patience": Range(1),
    "val_fraction": Range(0, 1, low_open=True, high_open=True),
    "val_jpeg_quality": Range(0, 100),
    "limit_per_class": Range(0),
    "replay_per_class": Range(1),
    "rotation_deg": Range(0, 180),
    "shear": Range(0, 1),
    "zoom": Range(0, 0.9),
    "shift": Range(0, 0.5),
    "brightness": Range(0, 1),
    "contrast": Range(0, 1),
    "erasing": Range(0, 1),
    "jpeg": Range(0, 1),
    "jpeg_quality_min": Range(1, 95),
    "crop": Range(0),
    "ema": Range(0, 1),
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def problems(cfg: TrainConfig) -> list[str]:
    """Every knob that is out of range or not one of its choices, each as one readable line.
    Checked before any data is read or any file written, so a typo costs nothing."""
    found: list[str] = []
    for name, choices in CHOICES.items():
        value = getattr(cfg, name)
        if name == "classes" and not isinstance(value, str):
            continue  # a list of class names is checked by the data loader
        if value not in choices:
            found.append(f"{_flag(name)} {value!r} is not one of: {', '.join(choices)}")
    for name, allowed in RANGES.items():
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            found.append(f"{_flag(name)} {value!r} is not a number")
        elif value != value:  # NaN compares false with everything
            found.append(f"{_flag(name)} nan is not a number")
        elif not allowed.admits(value):
            found.append(f"{_flag(name)} {value!r} is out of range: expected {allowed}")
    if found:
        return found  # the checks below compare numbers
    if cfg.crop and cfg.crop < 8:
        found.append(f"--crop {cfg.crop} is too small: use 0 (whole faces) or a size such as 40")
    if cfg.ema and cfg.ema < 0.5:
        found.append(f"--ema {cfg.ema} is too small to average anything: use 0 (off) or e.g. 0.999")
    return found


def from_recorded(recorded: dict[str, Any], where: str) -> TrainConfig:
    """The knobs a run recorded (its config.json) as a TrainConfig, each checked for its type, so a
    hand-edited file is one clear error; keys that are no knob (labels, params, ...) are skipped."""
    values: dict[str, Any] = {}
    for f in fields(TrainConfig):
        if f.name not in recorded:
            continue
        value, default = recorded[f.name], f.default
        if isinstance(default, tuple) or f.name == "classes" and isinstance(value, list):
            ok = isinstance(value, list) and all(isinstance(item, str) for item in value)
            value = tuple(value) if ok else value
        elif isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int | float):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            ok = ok and (isinstance(default, float) or float(value).is_integer())
            value = type(default)(value) if ok else value
        else:
            ok = isinstance(value, str)
        if not ok:
            raise TrainConfigError(
                f"{where}: {f.name} is {value!r}, not {_kind(default)}; fix the file, "
                "or start a new run there with --overwrite"
            )
        values[f.name] = value
    return TrainConfig(**values)


def _kind(default: Any) -> str:
    if isinstance(default, tuple):
        return "a list of paths"
    return {bool: "true or false", int: "a whole number", float: "a number"}.get(type(default), "a string")


def validate(cfg: TrainConfig) -> TrainConfig:
    found = problems(cfg)
    if found:
        raise TrainConfigError("; ".join(found))
    return cfg
