"""The bundled model's float weights, so ``--init-from bundled`` fine-tunes what the Pi runs.

Only the int8 .tflite runs on the device, and int8 cannot be fine-tuned. The float weights ship
here, beside the training code that alone reads them (nothing under edge/ opens this folder):

    bundled/emocam-fer6.json         what they are: architecture, classes, crop and labels, as a
                                     run's config.json records them, and the name, version and
                                     sha256 of the edge/models .tflite they belong to
    bundled/emocam-fer6.weights.npz  Keras get_weights() order. Arrays of FLOAT16_FROM values or
                                     more (the kernels) are float16, which halves the file and
                                     rounds less than one fine-tuning step moves a weight; the
                                     small ones (biases, batch-norm statistics, whose variances
                                     can leave float16's range) stay float32

Whoever replaces the bundled model re-exports them from its run (for an ensemble, its first
member's run; the description then records ``member_of``, the ensemble's architecture):

    python -m emocam.train.bundled export RUN_DIR

and tests/train/test_bundled.py fails until the two belong together.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from emocam.edge.errors import EmocamError
from emocam.edge.vision.model_info import BUNDLED_MODEL, file_sha256, load_model_info
from emocam.train import run

log = logging.getLogger(__name__)

BUNDLED = "bundled"  # the --init-from value
FOLDER = Path(__file__).resolve().parent / "bundled"
DESCRIPTION = FOLDER / f"{BUNDLED_MODEL.stem}.json"
WEIGHTS = FOLDER / f"{BUNDLED_MODEL.stem}.weights.npz"
FLOAT16_FROM = 1024
# What the fine-tune takes from the base, as the keys of a run's config.json.
CARRIED_KEYS = ("architecture", "classes", "crop", "labels")
# The validation split the run held out, kept so a check can score faces the model never trained on.
SPLIT_KEYS = ("val_fraction", "seed", "val_grouping", "val_jpeg_quality")


class BundledError(EmocamError):
    """The bundled float weights are missing or do not fit; the message says what to do."""

    exit_code = 2


def is_bundled(init_from: str) -> bool:
    return init_from == BUNDLED


def describe() -> dict[str, Any]:
    """The bundled weights' description (the config.json of the run they came from, trimmed)."""
    for path in (DESCRIPTION, WEIGHTS):
        if not path.is_file():
            raise BundledError(f"--init-from bundled: {path} is missing from this install; reinstall emocam "
                               "(`pip install --force-reinstall 'emocam[train]'`) or give a run directory")
    data = run.read_json(DESCRIPTION, "bundled weights description")
    if not isinstance(data, dict) or not all(key in data for key in CARRIED_KEYS):
        raise BundledError(f"{DESCRIPTION} must hold {', '.join(CARRIED_KEYS)}; reinstall emocam")
    return data


def check_fits(architecture: str) -> None:
    """Refuse, before any data is read, an --architecture the bundled weights are not for."""
    shipped = describe()["architecture"]
    if architecture != shipped:
        raise BundledError(f"--init-from bundled holds {shipped} weights, not {architecture}; leave --architecture "
                           f"out on a folder of your faces, or give --architecture {shipped}")


def shipped_form(architecture: str) -> tuple[str, int, bool, bool]:
    """(first network, its centre crop or 0, flip TTA, ensemble) of a sidecar's architecture, as
    emocam-convert writes it: 'vgg-s+flip-tta', 'ensemble[vgg-m-pool+centre40, resnet18-n+centre40]'.
    An ensemble ships its first member here: a fine-tune starts from one network."""
    flip = architecture.endswith("+flip-tta")
    body = architecture.removesuffix("+flip-tta")
    ensemble = body.startswith("ensemble[")
    first = body.removeprefix("ensemble[").removesuffix("]").split(", ")[0]
    network, _, crop = first.partition("+centre")
    return network, int(crop or 0), flip, ensemble


def labels() -> tuple[str, ...]:
    return tuple(describe()["labels"])


def load_into(net: Any) -> None:
    """Set ``net``'s weights to the bundled ones (float32 again); BundledError if they do not fit."""
    about = describe()
    with np.load(WEIGHTS) as archive:
        arrays = [archive[f"w{i}"] for i in range(len(archive.files))]
    expected = [tuple(w.shape) for w in net.get_weights()]
    found = [a.shape for a in arrays]
    if found != expected:
        raise BundledError(f"--init-from bundled holds {about['architecture']} weights for {len(about['labels'])} "
                           f"classes, which do not fit --architecture {net.name} with {net.output_shape[-1]}; "
                           "leave --architecture and --classes out to take the bundled model's")
    net.set_weights([a.astype(np.float32) for a in arrays])
    log.info("initial weights from the bundled model (%s %s)", about.get("name"), about.get("version"))


def export(run_dir: Path, model: Path = BUNDLED_MODEL) -> tuple[Path, Path]:
    """Write the shipped pair from ``run_dir``'s best.keras, recording that it belongs to ``model``
    (the bundled .tflite converted from that run)."""
    import keras

    config = run.read_config(run_dir)
    missing = [key for key in CARRIED_KEYS if key not in config]
    if missing:
        raise BundledError(f"{run_dir / run.CONFIG} lacks {', '.join(missing)}; export a run emocam-train fit wrote")
    info = load_model_info(model)
    network, _, _, ensemble = shipped_form(info.architecture)
    if network != config["architecture"]:
        raise BundledError(f"{model} is {info.architecture}, but {run_dir} trained {config['architecture']}; "
                           f"export the run {model.name} was converted from"
                           + (" (its first member)" if ensemble else ""))
    net = keras.saving.load_model(run_dir / run.BEST_MODEL, compile=False)
    arrays = {f"w{i}": w.astype(np.float16 if w.size >= FLOAT16_FROM else np.float32)
              for i, w in enumerate(net.get_weights())}
    FOLDER.mkdir(exist_ok=True)
    np.savez_compressed(WEIGHTS, **arrays)
    description = {key: config[key] for key in (*CARRIED_KEYS, *SPLIT_KEYS) if key in config}
    description.update(name=info.name, version=info.version, model=model.name, sha256=file_sha256(model),
                       source_run=str(run_dir), params=int(net.count_params()))
    if ensemble:
        description["member_of"] = info.architecture
    if "rebuilt_from" in config:
        description["rebuilt_from"] = config["rebuilt_from"]
    DESCRIPTION.write_text(json.dumps(description, indent=2) + "\n")
    return DESCRIPTION, WEIGHTS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emocam.train.bundled",
                                     description="Ship a run's float weights for --init-from bundled.")
    sub = parser.add_subparsers(dest="command", required=True)
    export_parser = sub.add_parser("export", help="write bundled/ from the run the bundled .tflite came from")
    export_parser.add_argument("run", type=Path, help="the run directory (its best.keras and config.json)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        for path in export(args.run):
            log.info("wrote %s (%.1f MB)", path, path.stat().st_size / 1e6)
    except EmocamError as exc:
        log.error("%s", exc)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
