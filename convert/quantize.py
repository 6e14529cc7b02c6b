"""Keras -> TFLite: full-integer int8 (int8 input and output), plus float32 and float16 for comparison.

The source is a training run directory (``best.keras``, ``labels.json``, ``config.json``,
``metrics.json``) or a bare ``.keras`` file with ``labels.json`` beside it. The model is checked
against the preprocessing contract before anything is converted. int8 is calibrated on a
stratified, seeded sample of training images, so the same run and data give the same model.

Outputs are written into a staging folder beside the destination and renamed into place only
after they were verified, so a failed conversion never replaces a good model with a bad one.

TensorFlow is imported only inside the functions that need it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from emocam.edge.errors import EmocamError
from emocam.edge.native_stderr import routed_stderr
from emocam.edge.vision.model_info import ModelInfo, TensorSpec, file_sha256, sidecar_path, write_model_info
from emocam.edge.vision.preprocess import Preprocessing
from emocam.edge.vision.tflite_runtime import make_interpreter
from emocam.train import run
from emocam.train.run import ValidationSplit

log = logging.getLogger(__name__)

PRECISIONS = ("int8", "float32", "float16")
INSTALL_HINT = "install them with: pip install 'emocam[train]'"
# int8 input quantization that the contract promises: pixels 0..255 map to -128..127 exactly.
CONTRACT_INPUT_QUANT = (1.0, -128)


class ConvertError(EmocamError):
    """Bad input to emocam-convert (source, data, arguments) or a conversion that failed."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class Source:
    """A Keras model and what its training run recorded about it."""

    keras_path: Path
    run_dir: Path
    labels: tuple[str, ...]
    preprocessing: Preprocessing = Preprocessing()
    architecture: str = ""
    params: int = 0
    macs: int = 0
    classes: str | tuple[str, ...] = ()  # the run's class scheme ("six", "merge-disgust", ...)
    data: str = ""  # the dataset the run trained on; '' when unknown
    cache_dir: str = ""  # where the run cached decoded data; '' for the default
    # How the run drew its validation split from its data, so conversion can score the converted
    # model on it; None when the run did not record it (a bare .keras file).
    split: ValidationSplit | None = None
    extra_data: tuple[str, ...] = ()
    replay_from: str = ""  # a fine-tune's replay dataset, mixed into its training split ('' for none)
    replay_per_class: int = 0
    ensemble_runs: tuple[Path, ...] = ()  # the other members' runs when several models are averaged


def _read_labels(run_dir: Path, keras_path: Path) -> tuple[str, ...]:
    labels = run.read_labels(run_dir)
    if labels is None:
        raise ConvertError(
            f"{run_dir / run.LABELS} not found beside {keras_path}; emocam-train writes it into the run directory. "
            'For a bare .keras file, write the label names in output order there, e.g. ["angry", "happy"]'
        )
    return labels


def read_source(path: Path, flag: str = "SOURCE") -> Source:
    """Find the .keras file and read the run's labels, config and metrics through the run
    module; no TensorFlow needed. ``flag`` names the argument in messages (--ensemble-with)."""
    path = Path(path)
    if path.is_dir():
        keras_path = path / run.BEST_MODEL
        if not keras_path.is_file():
            raise ConvertError(
                f"run directory {path} has no {run.BEST_MODEL}; train one with emocam-train, "
                "or pass the .keras file itself as SOURCE"
            )
    elif path.is_file():
        if path.suffix != ".keras":
            raise ConvertError(f"{flag} {path} is neither a run directory nor a .keras file")
        keras_path = path
    else:
        raise ConvertError(f"{flag} {path} does not exist; pass a run directory (runs/<name>) or a .keras file")
    run_dir = keras_path.parent
    labels = _read_labels(run_dir, keras_path)

    config_path = run_dir / run.CONFIG
    config: Mapping[str, Any] = run.read_config(run_dir)
    if not config_path.is_file():
        log.warning("%s not found; architecture, params and MACs are taken from the model itself", config_path)
    try:
        preprocessing = Preprocessing.from_dict(config.get("preprocessing", {}))
    except (TypeError, ValueError) as exc:
        raise ConvertError(f"run config {config_path}: preprocessing {exc}") from exc

    classes = config.get("classes", "")
    extra_data = config.get("extra_data", [])
    try:
        params, macs = int(config.get("params", 0) or 0), int(config.get("macs", 0) or 0)
        # fit always records its split; a hand-written config without a seed has no split to redraw.
        split = ValidationSplit.of_run(dict(config)) if "seed" in config else None
        replay_per_class = int(config.get("replay_per_class", 0) or 0)
    except (TypeError, ValueError) as exc:  # RunError is a ValueError
        raise ConvertError(
            f"run config {config_path}: params, macs, val_fraction, seed, val_jpeg_quality and replay_per_class "
            f"must be numbers ({exc})"
        ) from exc
    if not isinstance(extra_data, list) or not all(isinstance(item, str) for item in extra_data):
        raise ConvertError(f"run config {config_path}: extra_data must be a list of dataset paths, got {extra_data!r}")
    return Source(
        keras_path=keras_path,
        run_dir=run_dir,
        labels=labels,
        preprocessing=preprocessing,
        architecture=str(config.get("architecture", "")),
        params=params,
        macs=macs,
        classes=tuple(str(c) for c in classes) if isinstance(classes, list) else str(classes),
        data=str(config.get("data", "") or ""),
        cache_dir=str(config.get("cache_dir", "") or ""),
        split=split,
        extra_data=tuple(extra_data),
        replay_from=str(config.get("replay_from", "") or ""),
        replay_per_class=replay_per_class,
    )


def _keras() -> Any:
    try:
        import keras
        import tensorflow  # noqa: F401  (the converter lives there; fail here rather than later)
    except ImportError as exc:
        raise ConvertError(f"converting needs TensorFlow and Keras ({exc}); {INSTALL_HINT}") from exc
    if keras.backend.backend() != "tensorflow":
        raise ConvertError(
            f"KERAS_BACKEND is {keras.backend.backend()!r}; the TFLite converter needs the TensorFlow "
            "backend: run emocam-convert with KERAS_BACKEND=tensorflow (a model trained with JAX converts fine)"
        )
    return keras


def load_keras_model(source: Source) -> tuple[Any, Source]:
    """Load the model, check it fits the contract and the labels; fill params/MACs it lacks."""
    path = source.keras_path
    # A .keras file is a zip archive; checking that first turns a renamed text file into a clear
    # message (and needs no TensorFlow).
    if not zipfile.is_zipfile(path):
        raise ConvertError(
            f"{path} is not a Keras model (a .keras file is the zip archive that model.save() writes); "
            "point SOURCE at a run directory made by emocam-train or at its best.keras"
        )
    keras = _keras()
    try:
        model = keras.models.load_model(path, compile=False)
    except (ValueError, TypeError, KeyError, AttributeError, OSError, zipfile.BadZipFile) as exc:
        raise ConvertError(
            f"{path} could not be loaded as a Keras model ({exc}); re-save it with model.save()"
        ) from exc

    inputs, outputs = list(getattr(model, "inputs", None) or []), list(getattr(model, "outputs", None) or [])
    if len(inputs) != 1 or len(outputs) != 1:
        raise ConvertError(f"{path} has {len(inputs)} inputs and {len(outputs)} outputs; expected exactly one of each")
    size = source.preprocessing.size
    in_shape = tuple(inputs[0].shape[1:])
    if in_shape != (size, size, 1):
        raise ConvertError(
            f"{path} takes input {in_shape}, but the preprocessing contract gives ({size}, {size}, 1) "
            "grayscale faces with pixels 0..255; retrain with the contract's input size"
        )
    out_shape = tuple(outputs[0].shape[1:])
    if out_shape != (len(source.labels),):
        raise ConvertError(
            f"{path} outputs {out_shape}, but {source.run_dir / 'labels.json'} lists {len(source.labels)} labels "
            f"{list(source.labels)}; the labels file must belong to this model"
        )

    if not (source.architecture and source.params and source.macs):
        from emocam.train.architectures import count_macs  # imports Keras; only needed without a config

        source = replace(
            source,
            architecture=source.architecture or str(model.name),
            params=source.params or int(model.count_params()),
            macs=source.macs or count_macs(model),
        )
    return model, source


def representative_indices(labels: np.ndarray, count: int, n_classes: int, seed: int = 0) -> np.ndarray:
    """Up to ``count`` indices, as equal per class as the data allows, the same for the same seed.

    Equal shares rather than the data's proportions: a rare class (fear, surprise) must still
    shape the activation ranges the int8 model keeps.
    """
    if count < 1:
        raise ConvertError(f"--representative-count {count}: need at least 1 image")
    rng = np.random.default_rng(seed)
    pools = [list(rng.permutation(np.flatnonzero(labels == c))) for c in range(n_classes)]
    chosen: list[int] = []
    # Round-robin over the classes, so a short class leaves its share to the others.
    while len(chosen) < count and any(pools):
        for pool in pools:
            if pool and len(chosen) < count:
                chosen.append(int(pool.pop()))
    return np.sort(np.asarray(chosen, dtype=np.int64))


def pin_input_range(images: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """Copy of the calibration images with one pixel at each end of the contract's input range.

    The converter takes the input tensor's quantization from the calibration min/max. FER faces
    rarely reach pure white, and a brightest pixel of 250 would give scale 250/255 and clip real
    white pixels on the device. Two pixels of one image change nothing else measurably.
    """
    pinned = np.array(images, dtype=np.uint8, copy=True)
    low, high = prep.input_range
    flat = pinned.reshape(len(pinned), -1)
    flat[0, 0], flat[0, 1] = low, high
    return pinned


def _calibration(images: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    batch = images.reshape(*images.shape[:3], 1).astype(np.float32)

    def batches() -> Iterator[list[np.ndarray]]:
        for i in range(len(batch)):
            yield [batch[i : i + 1]]

    return batches


def _converter_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (ValueError, RuntimeError, TypeError)
    try:  # not part of TF's public API; without it the ValueError/RuntimeError cover most cases
        from tensorflow.lite.python.convert_phase import ConverterError
    except ImportError:
        return errors
    return (*errors, ConverterError)


def convert_keras(model: Any, precision: str, calibration: np.ndarray | None = None) -> bytes:
    """One precision of ``model`` as .tflite bytes; int8 needs (N, S, S) uint8 calibration images."""
    if precision not in PRECISIONS:
        raise ConvertError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    _keras()
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if precision == "int8":
        if calibration is None or len(calibration) == 0:
            raise ConvertError("int8 conversion needs calibration images; the training split gave none")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _calibration(calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    elif precision == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    chatter = io.StringIO()  # Keras' export prints to stdout, which carries our report
    native: list[str] = []  # the MLIR quantizer's raw "fully_quantize: 0, ..." line, written to fd 2
    try:
        with (contextlib.redirect_stdout(chatter), routed_stderr(lambda line: native.append(line) or True),
              warnings.catch_warnings()):
            # TF asks for explicit input statistics (a quantization-aware-training feature); ours
            # come from the calibration images, pinned to the contract's range.
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
            content = converter.convert()
    except _converter_errors() as exc:
        raise ConvertError(f"the TFLite converter failed on {precision}: {exc}") from exc
    finally:
        log.debug("converter output: %s %s", chatter.getvalue().strip(), " ".join(native).strip())
    log.info("converted %s: %d bytes", precision, len(content))
    return bytes(content)


def tensor_specs(model_path: Path) -> tuple[TensorSpec, TensorSpec]:
    """Input and output TensorSpec as the runtime sees them (batch -1 when dynamic)."""
    interpreter, _ = make_interpreter(model_path)
    specs = []
    for details in (interpreter.get_input_details()[0], interpreter.get_output_details()[0]):
        shape = details.get("shape_signature", details["shape"])
        scale, zero_point = details["quantization"]
        specs.append(
            TensorSpec(tuple(int(v) for v in shape), np.dtype(details["dtype"]).name, float(scale), int(zero_point))
        )
    return specs[0], specs[1]


def describe(model_path: Path, source: Source, name: str, version: str, created: datetime) -> ModelInfo:
    """The sidecar of a converted file, metrics still empty; checks int8 input against the contract."""
    tensor_in, tensor_out = tensor_specs(model_path)
    if tensor_in.dtype == "int8" and not (
        np.isclose(tensor_in.scale, CONTRACT_INPUT_QUANT[0]) and tensor_in.zero_point == CONTRACT_INPUT_QUANT[1]
    ):
        raise ConvertError(
            f"int8 input quantization came out ({tensor_in.scale}, {tensor_in.zero_point}), not "
            f"{CONTRACT_INPUT_QUANT}: the model must take pixels 0..255 and normalize inside (a Rescaling layer)"
        )
    return ModelInfo(
        labels=source.labels,
        input=tensor_in,
        output=tensor_out,
        preprocessing=source.preprocessing,
        sha256=file_sha256(model_path),
        name=name,
        version=version,
        architecture=source.architecture,
        params=source.params,
        macs=source.macs,
        source_run=" + ".join(str(run) for run in (source.run_dir, *source.ensemble_runs)),
        created=created.isoformat(timespec="seconds"),
    )


def with_flip_averaging(model: Any, source: Source) -> tuple[Any, Source]:
    """Bake horizontal-flip test-time augmentation into the model: the mean of its probabilities
    for the face and for its mirror image. Faces are near-symmetric and so are expressions, so
    this evens out one-sided lighting and pose; it doubles the cost per face (the MACs say so)."""
    keras = _keras()
    inputs = keras.Input(model.inputs[0].shape[1:], name="face")
    mirrored = keras.layers.Lambda(lambda x: keras.ops.flip(x, axis=2), name="mirror")(inputs)
    outputs = keras.layers.Average(name="flip_average")([model(inputs), model(mirrored)])
    averaged = keras.Model(inputs, outputs, name=f"{model.name}_flip_tta")
    return averaged, replace(source, architecture=f"{source.architecture}+flip-tta", macs=2 * source.macs)


def with_centre_cropping(model: Any, source: Source, crop: int) -> tuple[Any, Source]:
    """Bake a centre crop in front of a pooling-head network (see emocam.train.architectures)."""
    from emocam.train.architectures import with_centre_crop

    try:
        cropped = with_centre_crop(model, crop)
    except ValueError as exc:
        raise ConvertError(f"{source.keras_path}: {exc}") from exc
    size = source.preprocessing.size
    return cropped, replace(source, architecture=f"{source.architecture}+centre{crop}",
                            macs=round(source.macs * crop * crop / (size * size)))


def with_ensemble_averaging(members: list[tuple[Any, Source]]) -> tuple[Any, Source]:
    """Bake an ensemble into one model: the mean of the members' probabilities. Members must share
    labels and preprocessing; the first one's run stands for the rest (split, data, calibration).
    The cost per face is the sum of the members' (the MACs say so)."""
    (first_model, first), others = members[0], members[1:]
    for _, other in others:
        if other.labels != first.labels:
            raise ConvertError(
                f"{other.keras_path} predicts {list(other.labels)}, but {first.keras_path} predicts "
                f"{list(first.labels)}; an ensemble averages models trained on the same classes"
            )
        if other.preprocessing != first.preprocessing:
            raise ConvertError(
                f"{other.keras_path} was trained on {other.preprocessing.to_dict()} faces, but {first.keras_path} "
                f"on {first.preprocessing.to_dict()}; an ensemble's members must take the same input"
            )
    keras = _keras()
    inputs = keras.Input(first_model.inputs[0].shape[1:], name="face")
    # Each member is wrapped under its own name: runs of one architecture share layer and model names.
    outputs = [
        keras.Model(model.inputs[0], model.outputs[0], name=f"member_{i}")(inputs)
        for i, (model, _) in enumerate(members)
    ]
    averaged = keras.Model(inputs, keras.layers.Average(name="ensemble_average")(outputs), name="ensemble")
    return averaged, replace(
        first,
        architecture=f"ensemble[{', '.join(source.architecture for _, source in members)}]",
        params=sum(source.params for _, source in members),
        macs=sum(source.macs for _, source in members),
        ensemble_runs=tuple(source.run_dir for _, source in others),
    )


def write_model(path: Path, content: bytes, source: Source, name: str, version: str, created: datetime) -> ModelInfo:
    """Write a .tflite and its sidecar (into the staging folder) and return the sidecar."""
    path.write_bytes(content)
    info = describe(path, source, name, version, created)
    write_model_info(path, info)
    return info


def output_path(out: Path, precision: str) -> Path:
    """``model.tflite`` for int8; ``model-float16.tflite`` and so on for the comparison models."""
    return out if precision == "int8" else out.with_name(f"{out.stem}-{precision}{out.suffix}")


def check_output_path(out: Path) -> None:
    """Refuse, before anything is converted, an --out whose sidecar would be itself or not sit
    beside it as ``<stem>.json``, or whose folder cannot be made (missing folders are made)."""
    if out.suffix != ".tflite":
        raise ConvertError(f"--out {out} must end in .tflite (its sidecar is written beside it as .json)")
    if out.is_dir():
        raise ConvertError(f"--out {out} is a folder; name the .tflite file to write")
    folder = Path(os.path.abspath(out)).parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise ConvertError(f"--out {out}: {folder} is a file, not a folder; choose another --out")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConvertError(f"--out {out}: cannot write into {folder}; choose another --out")


@contextlib.contextmanager
def staging(out: Path) -> Iterator[Path]:
    """A scratch folder beside ``out`` (same file system, so renames are atomic); always removed."""
    check_output_path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f".{out.stem}-staging-", dir=out.parent))
    except OSError as exc:
        raise ConvertError(f"cannot write into {out.parent} ({exc}); choose another --out") from exc
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def publish(folder: Path, models: list[Path], destination: Path) -> list[Path]:
    """Rename staged models and their sidecars into ``destination``; returns the final paths.

    Each rename is atomic, so a reader sees the old file or the new one, never half of one. The
    model goes before its sidecar: in between, the device's sha256 check refuses the pair rather
    than running a model under another model's labels.
    """
    written = []
    for staged in models:
        for path in (staged, sidecar_path(staged)):
            target = destination / path.relative_to(folder)
            os.replace(path, target)
            written.append(target)
    return written
