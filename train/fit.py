"""``emocam-train fit``: train a Keras CNN on FER-2013 (or your faces) into a run directory.

The run directory holds everything later steps need:
    best.keras      the inference model (no augmentation layers) of the best validation epoch
    last.keras      the whole training model with optimizer state, rewritten every epoch (--resume)
    state.json      last finished epoch and best validation accuracy so far
    config.json     the resolved TrainConfig plus architecture, params, MACs, labels, preprocessing
    labels.json     label names in output order
    history.csv     per-epoch loss/accuracy/learning rate
    metrics.json    validation metrics of best.keras

Runs unchanged on the TensorFlow backend (a workstation CPU) and the JAX backend (GPU machines).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import logging
import math
import sys
import time
import warnings
import zipfile
from dataclasses import fields
from pathlib import Path

import numpy as np

from emocam.edge.errors import EmocamError
from emocam.edge.vision.preprocess import Preprocessing
from emocam.train import bundled, finetune, run
from emocam.train.architectures import ARCHITECTURES, count_macs, describe_choices, has_pooling_head
from emocam.train.augment import augmented_batches
from emocam.train.config import TrainConfig, TrainConfigError, add_arguments, from_arguments, validate
from emocam.train.data import DataError, Dataset, is_class_folder, jpeg_reencoded, training_split

log = logging.getLogger(__name__)


def class_weights(labels: np.ndarray, classes: int, mode: str) -> dict[int, float] | None:
    """Weights that lift rare classes; 'sqrt' is gentler than 'balanced' and usually scores better."""
    if mode == "none":
        return None
    counts = np.bincount(labels, minlength=classes).astype(np.float64)
    counts = np.maximum(counts, 1.0)
    raw = counts.sum() / (classes * counts)
    if mode == "sqrt":
        raw = np.sqrt(raw)
    elif mode != "balanced":
        raise TrainConfigError(f"--class-weighting {mode!r}; expected none, sqrt or balanced")
    raw = raw / np.average(raw, weights=counts)  # keep the mean loss scale unchanged
    return {i: float(w) for i, w in enumerate(raw)}


def augmentation(cfg: TrainConfig):
    import keras
    from keras import layers

    steps: list = []
    if cfg.flip:
        steps.append(layers.RandomFlip("horizontal", seed=cfg.seed))
    if cfg.rotation_deg:
        steps.append(layers.RandomRotation(cfg.rotation_deg / 360.0, fill_mode="nearest", seed=cfg.seed + 1))
    if cfg.shear:
        steps.append(layers.RandomShear(cfg.shear, cfg.shear, fill_mode="nearest", seed=cfg.seed + 2))
    if cfg.zoom:
        steps.append(layers.RandomZoom(cfg.zoom, fill_mode="nearest", seed=cfg.seed + 3))
    if cfg.shift:
        steps.append(layers.RandomTranslation(cfg.shift, cfg.shift, fill_mode="nearest", seed=cfg.seed + 4))
    if cfg.brightness:
        steps.append(layers.RandomBrightness(cfg.brightness, value_range=(0, 255), seed=cfg.seed + 5))
    if cfg.contrast:
        steps.append(layers.RandomContrast(cfg.contrast, value_range=(0, 255), seed=cfg.seed + 6))
    if cfg.erasing:
        steps.append(
            layers.RandomErasing(factor=cfg.erasing, scale=(0.02, 0.2), value_range=(0, 255), seed=cfg.seed + 7)
        )
    if not steps:  # every augmentation turned off: Keras refuses an empty Sequential
        steps.append(layers.Identity())
    return keras.Sequential(steps, name="augmentation")


def _one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    return np.eye(classes, dtype=np.float32)[labels]


def _as_input(images: np.ndarray) -> np.ndarray:
    return images[..., np.newaxis].astype(np.float32)


class TrainingDiverged(DataError):
    """The loss became NaN or infinite: the learning rate is too high for this data."""


def reseed_dropout(model, seed: int, epoch: int) -> None:
    """Set every random layer's generator (dropout) to a state drawn from (seed, epoch, layer).

    Keras does not save these states in a checkpoint, so without this a resumed run would drop
    other units than an uninterrupted one; with it, the two are the same run.
    """
    import keras

    generators = [g for layer in model._flatten_layers() for g in getattr(layer, "_seed_generators", [])]
    for index, generator in enumerate(generators):
        state = np.random.default_rng((seed, epoch, index)).integers(0, 2**31 - 1, generator.state.shape)
        generator.state.assign(keras.ops.cast(state, generator.state.dtype))


def ema_weights(trainer, net) -> list[np.ndarray]:
    """``net``'s weights with each trainable variable replaced by the optimizer's moving average
    of it (when EMA is on); non-trainable ones (batch-norm statistics) as they are."""
    optimizer = trainer.optimizer
    averages = {}
    if getattr(optimizer, "use_ema", False) and getattr(optimizer, "_model_variables_moving_average", None):
        # Keras builds one average (or None) per trainable variable: equal lengths by construction.
        pairs = zip(optimizer._trainable_variables, optimizer._model_variables_moving_average, strict=True)
        averages = {id(var): avg for var, avg in pairs}
    return [np.asarray(averages.get(id(var), var).numpy()) for var in net.weights]


class RunCheckpoint:
    """Keras callback factory: per-epoch validation of the float32 inference model, the best one
    saved, a resumable checkpoint, a NaN guard, progress with ETA and a time limit."""

    @staticmethod
    def make(run_dir: Path, net, inference, validation: tuple[np.ndarray, np.ndarray], total_epochs: int,
             best_so_far: float, seed: int, max_minutes: float = 0.0):
        import keras

        x_val, labels_val = validation

        class _Callback(keras.callbacks.Callback):
            def __init__(self) -> None:
                super().__init__()
                self.best = best_so_far
                self.started = time.monotonic()
                self.first_epoch: int | None = None

            def on_epoch_begin(self, epoch, logs=None):
                if self.first_epoch is None:
                    self.first_epoch = epoch
                reseed_dropout(self.model, seed, epoch)

            def on_train_batch_end(self, batch, logs=None):
                loss = (logs or {}).get("loss")
                if loss is not None and not math.isfinite(float(loss)):
                    self.model.stop_training = True
                    self.diverged = float(loss)

            def on_epoch_end(self, epoch, logs=None):
                if logs is None:
                    logs = {}
                loss = float(logs.get("loss", 0.0))
                if getattr(self, "diverged", None) is not None or not math.isfinite(loss):
                    raise TrainingDiverged(
                        f"training loss became {loss} in epoch {epoch + 1}; the run in {run_dir} keeps its last good "
                        "checkpoint (resume it with a lower --learning-rate, or start again with --overwrite)"
                    )
                # The inference model (float32, full-size input) with the averaged weights is what
                # best.keras holds, so it is also what validation scores.
                inference.set_weights(ema_weights(self.model, net))
                probs = inference.predict(x_val, batch_size=256, verbose=0)
                val_acc = float(np.mean(np.argmax(probs, axis=1) == labels_val))
                val_loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(labels_val)), labels_val], 1e-7, 1.0))))
                logs["val_accuracy"], logs["val_loss"] = val_acc, val_loss  # CSVLogger and EarlyStopping read these
                improved = val_acc > self.best
                if improved:
                    self.best = val_acc
                    _save_atomically(inference, run_dir / run.BEST_MODEL)
                _save_atomically(self.model, run_dir / run.LAST_CHECKPOINT)
                state = {"epoch": epoch + 1, "best_val_accuracy": self.best}
                (run_dir / f"{run.STATE}.tmp").write_text(json.dumps(state) + "\n")
                (run_dir / f"{run.STATE}.tmp").replace(run_dir / run.STATE)
                done = epoch + 1 - (self.first_epoch or 0)
                elapsed = time.monotonic() - self.started
                per_epoch = elapsed / max(done, 1)
                log.info(
                    "epoch %d/%d: loss %.4f, val_accuracy %.4f%s (best %.4f), %.0f s/epoch, ETA %.1f min",
                    epoch + 1, total_epochs, loss, val_acc, " *" if improved else "", self.best,
                    per_epoch, per_epoch * (total_epochs - epoch - 1) / 60,
                )
                # Stop before an epoch that would end past the limit, not after it.
                if max_minutes and elapsed + per_epoch > max_minutes * 60 and epoch + 1 < total_epochs:
                    log.warning("stopping after epoch %d: another would pass the %.0f-minute limit; "
                                "continue with --resume", epoch + 1, max_minutes)
                    self.model.stop_training = True

        return _Callback()


def _save_atomically(model, path: Path) -> None:
    # A run killed mid-save keeps its previous file: write beside it, then rename over it.
    temporary = path.with_name(path.stem + ".tmp.keras")
    model.save(temporary)
    temporary.replace(path)


@functools.cache
def _warm_ema_sgd():
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="emocam")
    class WarmEmaSGD(keras.optimizers.SGD):
        """SGD whose weight average warms up: its momentum at step t is min(ema, (1 + t) / (10 + t)).

        Keras's plain EMA starts from the initial weights with the full momentum, so with 0.999
        the average still holds ~40% of the random initialisation after 1,000 steps, while the
        batch-norm statistics follow the trained weights: validation of the average reads as
        chance for the first ~20 epochs. The warm-up (as in TensorFlow's ExponentialMovingAverage
        with num_updates) makes the average useful from the first epoch.
        """

        def _update_model_variables_moving_average(self, trainable_variables):
            if not self.use_ema:
                return
            step = ops.cast(self.iterations, "float32")
            momentum = ops.minimum(self.ema_momentum, (1.0 + step) / (10.0 + step))
            for var, average in zip(trainable_variables, self._model_variables_moving_average, strict=True):
                if average is not None:
                    rate = ops.cast(momentum, var.dtype)
                    average.assign(ops.add(ops.multiply(rate, average), ops.multiply(ops.subtract(1, rate), var)))

    return WarmEmaSGD


def WarmEmaSGD(*args, **kwargs):  # noqa: N802 (a class, built lazily so this module needs no Keras to import)
    return _warm_ema_sgd()(*args, **kwargs)


def compile_trainer(cfg: TrainConfig, net, size: int, steps_per_epoch: int):
    """The model that is trained (``net`` itself, or augmentation layers in front of it), compiled
    with SGD + Nesterov momentum and the configured schedule."""
    import keras

    if cfg.augment_in == "model":
        trainer = keras.Sequential([keras.Input((size, size, 1)), augmentation(cfg), net], name="trainer")
    elif cfg.augment_in == "data":
        trainer = net
    else:
        raise TrainConfigError(f"--augment-in {cfg.augment_in!r}; expected data or model")
    if cfg.schedule == "cosine":
        warmup = cfg.warmup_epochs * steps_per_epoch
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=cfg.learning_rate / 10,
            warmup_target=cfg.learning_rate,
            warmup_steps=warmup,
            decay_steps=max(1, cfg.epochs * steps_per_epoch - warmup),
            alpha=0.01,
        )
    elif cfg.schedule == "plateau":
        schedule = cfg.learning_rate  # lowered by ReduceLROnPlateau in fit()
    else:
        raise TrainConfigError(f"--schedule {cfg.schedule!r}; expected cosine or plateau")
    optimizer = WarmEmaSGD(
        schedule, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay,
        use_ema=cfg.ema > 0, ema_momentum=cfg.ema or 0.99,
    )
    trainer.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
        metrics=["accuracy"],
    )
    return trainer


def load_initial_weights(net, source: Path) -> None:
    """Warm start: copy weights from a run directory's best.keras (or a .keras file) into ``net``.

    A finished run can then go on with a fresh schedule (a warm restart), which on a CPU is the
    cheapest way to more epochs; the extra-data option uses it to fine-tune on your own faces.
    """
    if bundled.is_bundled(str(source)):
        bundled.load_into(net)
        return
    path = source / run.BEST_MODEL if source.is_dir() else source
    if not path.is_file():
        raise TrainConfigError(
            f"--init-from {source}: no such file; give a run directory holding best.keras, or a .keras file"
        )
    try:
        # Keras warns, rather than fails, when part of a file does not fit ("layers will retain
        # their freshly-initialized weights"): a warm start that silently kept random weights
        # would waste a whole run, so a warning here is a mismatch too.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            net.load_weights(path)
        skipped = [w for w in caught if issubclass(w.category, UserWarning)]
        if skipped:
            raise ValueError(str(skipped[0].message))
    except (OSError, KeyError, zipfile.BadZipFile) as exc:  # not a weights file Keras can read at all
        raise TrainConfigError(
            f"--init-from {path} could not be read as Keras weights ({exc}); give a run directory holding best.keras, "
            "or a .keras file that model.save() wrote"
        ) from exc
    except ValueError as exc:  # Keras raises ValueError on any layer or shape mismatch
        raise TrainConfigError(
            f"--init-from {path}: its weights do not fit --architecture {net.name} with {net.output_shape[-1]} classes "
            f"({exc}); use the architecture and --classes it was trained with"
        ) from exc
    log.info("initial weights from %s", path)


def check_before_training(cfg: TrainConfig, resume: bool = False, overwrite: bool = False) -> TrainConfig:
    """Refuse, before any data is read, any file written or Keras imported, what would fail later:
    the knobs, the architecture, --init-from and the run directory in --out."""
    validate(cfg)
    if cfg.architecture not in ARCHITECTURES:
        raise TrainConfigError(
            f"--architecture {cfg.architecture!r} is unknown; choose one of {', '.join(ARCHITECTURES)}"
        )
    # First: --init-from bundled carries the bundle's crop, so a wrong --architecture would
    # otherwise be reported as a --crop the user never gave.
    if bundled.is_bundled(cfg.init_from):
        bundled.check_fits(cfg.architecture)
    if cfg.crop and not has_pooling_head(cfg.architecture):
        pooled = [name for name in ARCHITECTURES if has_pooling_head(name)]
        raise TrainConfigError(f"--crop {cfg.crop} needs an architecture with a pooling head ({', '.join(pooled)}); "
                               f"{cfg.architecture} takes whole faces only")
    if cfg.init_from and not bundled.is_bundled(cfg.init_from):
        source = Path(cfg.init_from)
        path = source / run.BEST_MODEL if source.is_dir() else source
        if not path.is_file():
            raise TrainConfigError(
                f"--init-from {source}: no such file; give a run directory holding best.keras, or a .keras file"
            )
        if path.suffix == ".keras" and not zipfile.is_zipfile(path):
            raise TrainConfigError(f"--init-from {path} is not a Keras file (a .keras file is the zip archive that "
                                   "model.save() writes); give a run directory holding best.keras, or a .keras file")
    if cfg.replay_from and not Path(cfg.replay_from).exists():
        raise TrainConfigError(f"--replay-from {cfg.replay_from} does not exist; give a FER-2013 folder, .zip or "
                               "fer2013.csv (or any dataset) to draw the replay sample from")
    if is_class_folder(cfg.data):
        finetune.check_folder(cfg)
    run.check_out(Path(cfg.out), resume, overwrite)
    return cfg


def build_networks(cfg: TrainConfig, size: int, classes: int):
    """(net, inference): the network as trained (mixed precision, any input size when training on
    crops) and its float32, full-size twin that validation scores and best.keras holds. The twin
    is what conversion reads, so a bf16 run still converts from float32 weights."""
    import keras

    from emocam.train.architectures import build

    inference = build(cfg.architecture, size, classes)
    keras.mixed_precision.set_global_policy(cfg.precision)
    try:
        net = build(cfg.architecture, None if cfg.crop else size, classes)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return net, inference


def fit(cfg: TrainConfig, resume: bool = False, max_minutes: float = 0.0, verbose: int = 1, overwrite: bool = False,
        stop_at_epoch: int = 0) -> Path:
    """Train according to ``cfg``; returns the run directory."""
    check_before_training(cfg, resume, overwrite)
    finetune.warn_missing(cfg)
    run_dir = Path(cfg.out)
    train, val = training_split(cfg.data, run.ValidationSplit.of_run(cfg.to_dict()), cfg.classes, cfg.extra_data,
                                cfg.cache_dir, cfg.limit_per_class, cfg.replay_from, cfg.replay_per_class)
    import keras  # after the data: a bad dataset is refused without loading TensorFlow

    keras.utils.set_random_seed(cfg.seed)
    labels = train.label_names
    prep = Preprocessing(size=int(train.images.shape[1]))
    y_train = _one_hot(train.labels, len(labels))
    scored_val = jpeg_reencoded(val, cfg.val_jpeg_quality)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    resuming = resume and run.resumable(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if overwrite and not resuming:
        for name in (*run.MARKERS, run.HISTORY, run.METRICS):
            (run_dir / name).unlink(missing_ok=True)

    start_epoch, best = 0, -1.0
    net, inference = build_networks(cfg, prep.size, len(labels))
    if cfg.init_from and not resuming:
        load_initial_weights(net, Path(cfg.init_from))  # before compiling: a warm restart gets a fresh optimizer
    trainer = compile_trainer(cfg, net, prep.size, steps_per_epoch)
    if resuming:
        start_epoch, best = run.read_state(run_dir)
        # Rebuild, then load weights and optimizer state (moving averages and step count, hence
        # the schedule's position): Keras cannot deserialize every augmentation layer's config
        # (RandomShear), so the checkpoint is never load_model()ed.
        trainer.optimizer.build(trainer.trainable_variables)
        trainer.load_weights(run_dir / run.LAST_CHECKPOINT)
        log.info("resuming %s at epoch %d (best val_accuracy %.4f, step %d)", run_dir, start_epoch + 1, best,
                 int(keras.ops.convert_to_numpy(trainer.optimizer.iterations)))
    elif resume:
        log.warning("nothing to resume in %s; starting afresh", run_dir)

    params, macs = int(inference.count_params()), count_macs(inference)
    resolved = {
        **cfg.to_dict(),
        "labels": list(labels),
        "params": params,
        "macs": macs,
        "preprocessing": prep.to_dict(),
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "train_images": len(train),
        "val_images": len(val),
        "train_summary": train.summary(),
    }
    (run_dir / run.CONFIG).write_text(json.dumps(resolved, indent=2) + "\n")
    (run_dir / run.LABELS).write_text(json.dumps(list(labels)) + "\n")
    log.info("%s: %s params, %.1fM MACs, %d train / %d val images (%s), %s, backend %s",
             cfg.architecture, f"{params:,}", macs / 1e6, len(train), len(val), scored_val.source, cfg.precision,
             keras.backend.backend())

    callbacks = [
        RunCheckpoint.make(run_dir, net, inference, (_as_input(scored_val.images), scored_val.labels), cfg.epochs,
                           best, cfg.seed, max_minutes),
        keras.callbacks.CSVLogger(str(run_dir / run.HISTORY), append=start_epoch > 0),
        keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=cfg.patience),
    ]
    if cfg.schedule == "plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_accuracy",
                mode="max",
                factor=0.5,
                patience=max(2, cfg.patience // 3),
                min_lr=cfg.learning_rate / 200,
            )
        )
    weights = class_weights(train.labels, len(labels), cfg.class_weighting)
    if cfg.augment_in == "data":
        if weights is None:
            by_class = np.ones(len(labels), np.float32)
        else:
            by_class = np.array([weights[i] for i in range(len(labels))], np.float32)
        per_image = by_class[train.labels]
        batches = augmented_batches(train.images, y_train, per_image, cfg, cfg.seed)
        batches.epoch = start_epoch
        # The batches shuffle themselves from (seed, epoch); Keras's own shuffle of their order
        # draws from Python's global random state, which a resumed run would not replay.
        inputs: dict = {"x": batches, "shuffle": False}
    else:
        inputs = {"x": _as_input(train.images), "y": y_train, "batch_size": cfg.batch_size, "class_weight": weights}
    # --stop-at-epoch ends Keras's loop there (a run already there trains nothing); the learning
    # rate schedule still spans all of cfg.epochs, so a resumed run continues it exactly.
    last_epoch = min(cfg.epochs, stop_at_epoch) if stop_at_epoch else cfg.epochs
    if start_epoch < last_epoch:
        trainer.fit(**inputs, epochs=last_epoch, initial_epoch=start_epoch, callbacks=callbacks, verbose=verbose)
    if last_epoch < cfg.epochs and run.read_state(run_dir)[0] >= last_epoch:
        log.warning("stopped after epoch %d of %d as asked (--stop-at-epoch); continue with --resume",
                    last_epoch, cfg.epochs)
    write_validation_metrics(run_dir, val, cfg.val_jpeg_quality)
    return run_dir


def write_validation_metrics(run_dir: Path, val: Dataset, jpeg_quality: int = 0) -> dict:
    """Score best.keras on the validation split (never the test split) into metrics.json: as
    stored, and (``jpeg_quality``) re-encoded as the test files are."""
    import keras

    from emocam.train.metrics import classification_report

    net = keras.saving.load_model(run_dir / run.BEST_MODEL)

    def scored(split: Dataset) -> dict:
        probs = net.predict(_as_input(split.images), batch_size=256, verbose=0)
        report = classification_report(split.labels, probs, split.label_names)
        log.info("best model on %s: accuracy %.4f, macro-F1 %.4f (n=%d)", split.source, report.accuracy,
                 report.macro_f1, report.n)
        return {"split": "validation", "source": split.source, **report.to_dict()}

    metrics = scored(val)
    if jpeg_quality:
        metrics["jpeg"] = scored(jpeg_reencoded(val, jpeg_quality))
    (run_dir / run.METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def _list_architectures(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if action.dest == "architecture":
            action.help = f"{action.help}. Choices: {describe_choices()}"


def main(argv: list[str] | None = None) -> int:
    defaults = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in finetune.FINE_TUNE_DEFAULTS.items())
    parser = argparse.ArgumentParser(
        prog="emocam-train fit", description="Train an emotion CNN into a run directory.",
        epilog=f"Fine-tuning (--init-from bundled|RUN --data FOLDER with FOLDER/<label>/*.png): knobs not given "
        f"default to {defaults} and the base run's --architecture and --classes; see docs/fine-tuning.md.",
    )
    add_arguments(parser)
    _list_architectures(parser)
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--max-minutes", type=float, default=0.0, help="stop after this many minutes (0 = no limit)")
    parser.add_argument("--stop-at-epoch", type=int, default=0, metavar="N",
                        help="stop after epoch N of the schedule; --resume continues it exactly (0 = run it all)")
    parser.add_argument("--overwrite", action="store_true", help="replace the run already in --out (it is deleted)")
    parser.add_argument("--quiet", action="store_true", help="no per-step progress bar")
    args = parser.parse_args(argv)
    for name, value in (("--max-minutes", args.max_minutes), ("--stop-at-epoch", args.stop_at_epoch)):
        if not value >= 0:
            parser.error(f"{name} {value} must be >= 0 (0 = no limit)")
    try:
        # A resumed run keeps the knobs it recorded; flags given now override them.
        base = run.read_train_config(Path(args.out or TrainConfig().out)) if args.resume else None
        cfg = from_arguments(args, base)
        if base is None:  # a new run: defaults for a fine-tune on a small folder (resumed runs recorded theirs)
            given = {f.name for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}
            cfg = finetune.resolve(cfg, given)
        if not cfg.data:
            parser.error("--data is required: a FER-2013 folder, .zip or fer2013.csv (or a folder of <class>/ faces)")
        check_before_training(cfg, args.resume, args.overwrite)
        if importlib.util.find_spec("keras") is None:
            print("emocam-train fit: training needs Keras and TensorFlow (no module named 'keras'); install them "
                  "with: pip install 'emocam[train]'", file=sys.stderr)
            return 2
        # One line per epoch where nobody watches a terminal (logs, CI): no carriage-return bars.
        verbose = 0 if args.quiet else (1 if sys.stdout.isatty() else 2)
        fit(cfg, resume=args.resume, max_minutes=args.max_minutes, verbose=verbose, overwrite=args.overwrite,
            stop_at_epoch=args.stop_at_epoch)
    except EmocamError as exc:  # data, knobs, the run directory, divergence: each has its exit code
        print(f"emocam-train fit: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0
