"""Float Keras weights rebuilt from an int8 TFLite model, for a model whose training run is gone.

v1.3.0, the bundled model before v2.0.0 (kept as tests/train/data/emocam-fer6-v1.3.0.tflite), was
converted from a run directory that no longer exists, so its float weights exist only inside the
int8 model. This reads them back:

    python -m emocam.train.rebuild_float tests/train/data/emocam-fer6-v1.3.0.tflite --architecture vgg-s \\
        --data ../shared/datasets/fer2013.zip --out runs/v1.3.0-float
    python -m emocam.train.bundled export runs/v1.3.0-float   # while v1.3.0 was the bundled model

The first writes a run directory (best.keras, config.json, labels.json) that the rest of the
tooling reads like any other: ``emocam-train evaluate`` scores it, ``--init-from`` starts from it;
the second ships it for ``--init-from bundled``.

How: the converter folds each batch norm into the convolution or dense layer before it (and the
first layer's 1/255 rescaling into its kernel), so every CONV_2D and FULLY_CONNECTED holds an
int8 kernel with per-channel scales and an int32 bias. Dequantized, they are the folded float
weights, off by at most half a quantization step. Keras's network still has its batch norms, and
fine-tuning runs them in training mode on batch statistics, so an identity batch norm would not
do: each one is given the per-channel mean and variance of its input measured on ``--data``'s
training faces, with gamma and beta that undo them. It then computes the folded layer exactly at
inference and about the same on a training batch, and fine-tuning starts where the int8 model is.
Only sequential VGG networks (conv or dense, batch norm, ReLU) are handled: what v1.x shipped.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from emocam.edge.errors import EmocamError
from emocam.train import run
from emocam.train.config import TrainConfig, validate
from emocam.train.data import VAL_GROUPINGS, load_dataset, per_class_limit

log = logging.getLogger(__name__)

WEIGHTED_OPS = ("CONV_2D", "FULLY_CONNECTED")
STATISTICS_FACES = 4096  # enough for per-channel means and variances to 3 digits; about a minute here
BATCH_EPSILON = 1e-3  # Keras's BatchNormalization default, which the architectures use


class RebuildError(EmocamError):
    """The TFLite model does not fit the architecture, or is not a model this can read back."""

    exit_code = 2


def _dequantized(interpreter: Any, detail: dict[str, Any]) -> np.ndarray:
    values = interpreter.get_tensor(detail["index"]).astype(np.float64)
    quant = detail["quantization_parameters"]
    scales, zero_points = np.asarray(quant["scales"]), np.asarray(quant["zero_points"])
    if scales.size == 0:  # a float tensor: nothing to undo
        return values.astype(np.float32)
    shape = [1] * values.ndim
    if scales.size > 1:  # per-channel, along the tensor's quantized dimension (output channels)
        shape[quant["quantized_dimension"]] = scales.size
    return ((values - zero_points.reshape(shape)) * scales.reshape(shape)).astype(np.float32)


def folded_layers(tflite_path: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(op name, float kernel in TFLite layout, float bias) of every CONV_2D and FULLY_CONNECTED
    in graph order, each set of weights once: a flip-TTA model runs the same kernels twice (its
    two biases differ only in their int32 rounding, so the first is as good as the other)."""
    from emocam.edge.vision.tflite_runtime import interpreter_class

    cls, _ = interpreter_class()
    try:
        # Without XNNPACK: the delegate repacks constant tensors, and the originals are wanted.
        from ai_edge_litert.interpreter import OpResolverType

        interpreter = cls(model_path=str(tflite_path),
                                        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise RebuildError(f"{tflite_path} is not a TFLite model this can read ({exc})") from exc
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    seen: set[int] = set()
    layers = []
    # _get_ops_details is the interpreter's only view of the graph (TensorFlow's own tools use it).
    for op in interpreter._get_ops_details():
        if op["op_name"] not in WEIGHTED_OPS:
            continue
        kernel, bias = int(op["inputs"][1]), int(op["inputs"][2])
        if kernel in seen:
            continue
        seen.add(kernel)
        if bias < 0:
            raise RebuildError(f"{tflite_path}: a {op['op_name']} without a bias; not a model emocam-convert wrote")
        layers.append((op["op_name"], _dequantized(interpreter, details[kernel]),
                       _dequantized(interpreter, details[bias])))
    return layers


def _keras_kernel(op_name: str, kernel: np.ndarray) -> np.ndarray:
    # TFLite keeps output channels first: conv (out, h, w, in), dense (out, in); Keras puts them last.
    return np.transpose(kernel, (1, 2, 3, 0)) if op_name == "CONV_2D" else kernel.T


def rebuild(tflite_path: Path, architecture: str, labels: tuple[str, ...], faces: np.ndarray):
    """The float Keras network of ``architecture`` computing what the int8 model at ``tflite_path``
    computes (without its flip TTA, which evaluate and convert add back); ``faces`` (N, S, S) uint8
    training faces measure the batch-norm statistics."""
    import keras
    from keras import layers as kl

    from emocam.train.architectures import build, leaf_layers

    size = int(faces.shape[1])
    net = build(architecture, size, len(labels))
    leaves = list(leaf_layers(net))
    weighted = [i for i, layer in enumerate(leaves) if isinstance(layer, kl.Conv2D | kl.Dense)]
    folded = folded_layers(tflite_path)
    if len(folded) != len(weighted):
        raise RebuildError(f"{tflite_path} has {len(folded)} convolution and dense layers, {architecture} has "
                           f"{len(weighted)}; give the --architecture the model was trained with")
    normed = []  # (batch norm layer, the layer feeding it, folded bias)
    for number, (index, (op_name, kernel, bias)) in enumerate(zip(weighted, folded, strict=True)):
        layer = leaves[index]
        kernel = _keras_kernel(op_name, kernel)
        if number == 0:
            kernel = kernel * 255.0  # the converter folded the network's 1/255 input rescaling into it
        if tuple(layer.kernel.shape) != kernel.shape:
            raise RebuildError(f"{tflite_path}: layer {number + 1} has a {kernel.shape} kernel, {architecture}'s "
                               f"{layer.name} takes {tuple(layer.kernel.shape)}; give the --architecture it was "
                               "trained with")
        if layer.use_bias:
            layer.set_weights([kernel, bias])
            continue
        following = leaves[index + 1] if index + 1 < len(leaves) else None
        if not isinstance(following, kl.BatchNormalization) or following.epsilon != BATCH_EPSILON:
            raise RebuildError(f"{architecture}'s {layer.name} is not followed by a batch norm; only VGG networks "
                               "(conv or dense, batch norm, ReLU) can be rebuilt")
        layer.set_weights([kernel])
        # Identity plus the folded bias, exactly: (z - 0) / sqrt((1 - eps) + eps) * 1 + bias.
        ones = np.ones_like(bias)
        following.set_weights([ones, bias, np.zeros_like(bias), ones - BATCH_EPSILON])
        normed.append((following, layer, bias))

    # Every batch norm now computes its layer's folded form exactly at inference, so one pass
    # measures what each sees, layer by layer, as the int8 model's float twin does.
    probe = keras.Model(net.inputs, [layer.output for _, layer, _ in normed])
    sums = [np.zeros(b.shape, np.float64) for *_, b in normed]
    squares = [np.zeros(b.shape, np.float64) for *_, b in normed]
    counts = [0] * len(normed)  # values per channel: faces times positions of a convolution's map
    for start in range(0, len(faces), 256):
        batch = faces[start : start + 256, :, :, None].astype(np.float32)
        for k, out in enumerate(probe.predict_on_batch(batch)):
            values = np.asarray(out, np.float64).reshape(-1, out.shape[-1])
            sums[k] += values.sum(axis=0)
            squares[k] += (values**2).sum(axis=0)
            counts[k] += len(values)
    for k, (norm, _, bias) in enumerate(normed):
        mean = sums[k] / counts[k]
        variance = np.maximum(squares[k] / counts[k] - mean**2, 0.0)
        # gamma * (z - mean) / sqrt(variance + eps) + beta = z + bias, for any z.
        gamma = np.sqrt(variance + BATCH_EPSILON)
        norm.set_weights([gamma.astype(np.float32), (mean + bias).astype(np.float32),
                          mean.astype(np.float32), variance.astype(np.float32)])
    return net


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emocam.train.rebuild_float", description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path, help="the int8 .tflite, with its .json sidecar beside it")
    parser.add_argument("--architecture", required=True, help="the architecture it was trained with (vgg-s for v1.x)")
    parser.add_argument("--data", required=True, help="FER-2013 (folder, .zip or .csv): its training faces measure "
                        "the batch-norm statistics")
    # Recorded in config.json, so `evaluate --split validation` and bench/fine_tune_gain.py pick the
    # faces the model never trained on. The defaults are v1.x's: 10% by file, seed 1337, as stored.
    parser.add_argument("--val-fraction", type=float, default=0.1, help="its run's --val-fraction (default 0.1)")
    parser.add_argument("--seed", type=int, default=1337, help="its run's --seed (default 1337)")
    parser.add_argument("--val-grouping", choices=VAL_GROUPINGS, default="none",
                        help="its run's --val-grouping (default none: v1.x split by file)")
    parser.add_argument("--val-jpeg-quality", type=int, default=0, help="its run's --val-jpeg-quality (default 0)")
    parser.add_argument("--out", type=Path, required=True, help="the run directory to write")
    parser.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run(args)
    except EmocamError as exc:
        log.error("%s", exc)
        return exc.exit_code


def _run(args: argparse.Namespace) -> int:
    from emocam.edge.vision.model_info import load_model_info
    from emocam.train.architectures import ARCHITECTURES

    if args.architecture not in ARCHITECTURES:
        raise RebuildError(f"--architecture {args.architecture!r} is unknown; choose one of {', '.join(ARCHITECTURES)}")
    info = load_model_info(args.model)
    run.check_out(args.out, resume=False, overwrite=args.overwrite)
    cfg = replace(TrainConfig(), data=str(args.data), out=str(args.out), architecture=args.architecture,
                  classes=tuple(info.labels), val_fraction=args.val_fraction, seed=args.seed,
                  val_grouping=args.val_grouping, val_jpeg_quality=args.val_jpeg_quality)
    validate(cfg)
    train = load_dataset(args.data, "train", cfg.classes)
    faces = per_class_limit(train, STATISTICS_FACES // len(info.labels), seed=0).images
    log.info("rebuilding %s (%s %s) as %s; batch-norm statistics from %d faces of %s", args.model, info.name,
             info.version, args.architecture, len(faces), train.source)
    net = rebuild(args.model, args.architecture, tuple(info.labels), faces)
    args.out.mkdir(parents=True, exist_ok=True)
    net.save(args.out / run.BEST_MODEL)
    recorded = {**cfg.to_dict(), "labels": list(info.labels), "params": int(net.count_params()),
                "rebuilt_from": {"model": str(args.model), "name": info.name, "version": info.version,
                                 "sha256": info.sha256}}
    (args.out / run.CONFIG).write_text(json.dumps(recorded, indent=2) + "\n")
    (args.out / run.LABELS).write_text(json.dumps(list(info.labels)) + "\n")
    log.info("wrote %s: evaluate it with `emocam-train evaluate %s DATA --flip-tta`", args.out, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
