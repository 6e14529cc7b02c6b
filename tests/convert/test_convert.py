"""emocam-convert on a tiny Keras model trained on synthetic faces whose class is their brightness.

The model, its run directory and one conversion are built once per module: TensorFlow and the
converter are the slow part. Tests that only check inputs run without TensorFlow.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from emocam.convert import cli, quantize
from emocam.convert.quantize import pin_input_range, representative_indices
from emocam.edge.vision.classifier import EmotionClassifier
from emocam.edge.vision.model_info import file_sha256, load_model_info, sidecar_path
from emocam.edge.vision.preprocess import Preprocessing
from emocam.train.data import SIX_CLASSES
from emocam.train.run import ValidationSplit

requires_tf = pytest.mark.skipif(
    importlib.util.find_spec("tensorflow") is None, reason="needs TensorFlow: pip install 'emocam[train]'"
)
LABELS = SIX_CLASSES
# Brightness bands 43 grey levels apart with +-12 of pixel noise: separable by the mean, and no
# pixel reaches 0 or 255, so the input quantization (1.0, -128) must come from the converter's pin.
CENTERS = 20 + 43 * np.arange(len(LABELS))
TRAIN_PER_CLASS, TEST_PER_CLASS = 30, 20


def band_faces(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(LABELS)), per_class)
    noise = rng.integers(-12, 13, (len(labels), 48, 48))
    return (CENTERS[labels][:, None, None] + noise).astype(np.uint8), labels


def write_split(root: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Kaggle layout: root/<split>/<class>/<i>.png."""
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / split / LABELS[label]
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i}.png"), image)


def tiny_model(input_size: int = 48, classes: int = len(LABELS)):
    import keras

    inputs = keras.Input((input_size, input_size, 1))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, strides=3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(16, activation="relu")(x)
    outputs = keras.layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="band-net")


def write_run(run: Path, model, data: Path, labels: tuple[str, ...] = LABELS) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    model.save(run / "best.keras")
    (run / "labels.json").write_text(json.dumps(list(labels)))
    config = {
        "architecture": "band-net", "params": int(model.count_params()), "macs": 12345, "classes": "six",
        "seed": 0, "preprocessing": Preprocessing().to_dict(), "data": str(data), "cache_dir": "",
    }
    (run / "config.json").write_text(json.dumps(config))
    (run / "metrics.json").write_text(json.dumps({"split": "validation", "accuracy": 0.99, "n": 18, "per_class": {}}))
    return run


def run_cli(*argv: str | Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@dataclass(frozen=True)
class Converted:
    run: Path
    data: Path
    out: Path
    code: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(run directory, Kaggle-layout data folder) of a model that learned the brightness bands."""
    import keras

    root = tmp_path_factory.mktemp("convert")
    data = root / "data"
    train_x, train_y = band_faces(TRAIN_PER_CLASS, seed=1)
    write_split(data, "train", train_x, train_y)
    write_split(data, "test", *band_faces(TEST_PER_CLASS, seed=2))
    keras.utils.set_random_seed(0)
    model = tiny_model()
    model.compile(keras.optimizers.Adam(0.03), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(train_x[..., None].astype(np.float32), train_y, epochs=25, batch_size=32, verbose=0)
    return write_run(root / "run", model, data), data


@pytest.fixture(scope="module")
def converted(trained: tuple[Path, Path]) -> Converted:
    run, data = trained
    out = run.parent / "models" / "emo.tflite"
    code, stdout, stderr = run_cli(
        run, "--data", data, "--out", out, "--representative-count", 60, "--verify-limit", 90,
        "--also", "float16", "--model-version", "1.2.3",
    )
    return Converted(run, data, out, code, stdout, stderr)


# --- the conversion -----------------------------------------------------------------------------


@pytest.mark.tensorflow
@requires_tf
def test_writes_int8_model_with_complete_sidecar(converted: Converted) -> None:
    assert converted.code == 0, converted.stderr
    info = load_model_info(converted.out)  # checks the sha256 too
    assert info.sha256 == file_sha256(converted.out)
    assert info.labels == LABELS
    assert (info.input.shape, info.input.dtype) == ((-1, 48, 48, 1), "int8")
    assert (info.input.scale, info.input.zero_point) == (1.0, -128)
    assert (info.output.shape, info.output.dtype) == ((-1, len(LABELS)), "int8")
    assert info.output.scale > 0
    assert info.preprocessing == Preprocessing()
    assert (info.name, info.version) == ("emo", "1.2.3")
    assert (info.architecture, info.macs) == ("band-net", 12345)
    assert info.params == json.loads((converted.run / "config.json").read_text())["params"] > 0
    assert info.source_run == str(converted.run)
    assert info.created.startswith("20")
    metrics = info.metrics
    assert (metrics["split"], metrics["n"], metrics["data"]) == ("test", 90, str(converted.data))
    # The converted int8 model itself, on the split the run held out (10% of 180 training faces).
    validation = metrics["validation"]
    assert (validation["split"], validation["n"]) == ("validation", 18)
    assert validation["source"].endswith("[val 10%]") and validation["accuracy"] >= 0.9
    assert "validation accuracy" in converted.stdout
    assert metrics["float_accuracy"] >= 0.95
    assert metrics["int8_accuracy"] >= 0.95
    assert metrics["agreement"] >= 0.95
    assert 0.9 <= metrics["macro_f1"] <= 1.0


@pytest.mark.tensorflow
@requires_tf
def test_flip_tta_is_baked_in_mirror_invariant_and_costed(trained: tuple[Path, Path], converted: Converted) -> None:
    run, data = trained
    out = run.parent / "flip" / "emo.tflite"
    code, stdout, stderr = run_cli(run, "--data", data, "--out", out, "--representative-count", 60,
                                   "--verify-limit", 90, "--flip-tta")
    assert code == 0, stderr
    info = load_model_info(out)
    assert (info.architecture, info.macs) == ("band-net+flip-tta", 2 * 12345)
    assert info.metrics["int8_accuracy"] >= 0.95
    rng = np.random.default_rng(4)
    faces = np.clip(band_faces(4, seed=5)[0].astype(int) + rng.integers(-40, 40, (24, 48, 48)), 0, 255).astype(np.uint8)
    faces[:, :, :24] //= 2  # one-sided light: the plain model sees a face and its mirror differently
    baked, plain = EmotionClassifier(out), EmotionClassifier(converted.out)
    mirrored = np.ascontiguousarray(faces[:, :, ::-1])
    # Not exact: each branch's activations get their own int8 ranges from the calibration set.
    baked_gap = np.abs(baked.probabilities(faces) - baked.probabilities(mirrored)).mean()
    plain_gap = np.abs(plain.probabilities(faces) - plain.probabilities(mirrored)).mean()
    print(f"mean change of a probability when the face is mirrored: plain {plain_gap:.4f}, baked {baked_gap:.4f}")
    assert baked_gap < 0.01 and plain_gap > 2 * baked_gap


@pytest.mark.tensorflow
@requires_tf
def test_ensemble_is_baked_in_as_the_mean_of_its_members(trained: tuple[Path, Path]) -> None:
    import keras

    run, data = trained
    # A member that answers every band one class up (the first model with its output units
    # rotated): averaged with the first, each face's probability splits between its class and the
    # next, which neither member gives alone.
    first = keras.saving.load_model(run / "best.keras")
    shifted = tiny_model()
    weights = first.get_weights()
    weights[-2], weights[-1] = np.roll(weights[-2], 1, axis=1), np.roll(weights[-1], 1)
    shifted.set_weights(weights)
    other = write_run(run.parent / "shifted-run", shifted, data)
    out = run.parent / "ensemble" / "emo.tflite"
    code, stdout, stderr = run_cli(run, "--ensemble-with", other, "--data", data, "--out", out,
                                   "--representative-count", 60, "--verify-limit", 90, "--max-drop", "100")
    assert code == 0, stderr
    info = load_model_info(out)
    assert (info.architecture, info.macs) == ("ensemble[band-net, band-net]", 2 * 12345)
    assert info.params == 2 * shifted.count_params()
    assert info.source_run == f"{run} + {other}"
    faces, labels = band_faces(4, seed=6)
    pixels = faces[..., None].astype(np.float32)
    expected = (first.predict(pixels, verbose=0) + shifted.predict(pixels, verbose=0)) / 2
    probs = EmotionClassifier(out).probabilities(faces)
    rows = np.arange(len(labels))
    assert np.abs(probs - expected).max() < 0.05
    assert probs[rows, labels].min() > 0.3 and probs[rows, (labels + 1) % len(LABELS)].min() > 0.3


@pytest.mark.tensorflow
@requires_tf
def test_ensemble_members_with_other_labels_are_refused(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run, data = trained
    other = tmp_path / "reordered"
    shutil.copytree(run, other)
    (other / "labels.json").write_text(json.dumps(list(reversed(LABELS))))
    code, _, stderr = run_cli(run, "--ensemble-with", other, "--data", data, "--out", tmp_path / "m.tflite")
    assert code == 2
    assert f"{other / 'best.keras'}" in stderr and "same classes" in stderr
    assert not (tmp_path / "m.tflite").exists()


@pytest.mark.tensorflow
@requires_tf
def test_device_classifier_runs_the_int8_model(converted: Converted) -> None:
    classifier = EmotionClassifier(converted.out)
    assert classifier.dynamic_batch
    faces, labels = band_faces(5, seed=3)
    probs = classifier.probabilities(faces)
    assert probs.shape == (len(faces), len(LABELS))
    assert np.mean(probs.argmax(axis=1) == labels) >= 0.9


@pytest.mark.tensorflow
@requires_tf
def test_reports_accuracies_and_agreement_on_stdout(converted: Converted) -> None:
    assert "int8: accuracy" in converted.stdout and "float16: accuracy" in converted.stdout
    assert "top-1 agreement" in converted.stdout
    assert f"wrote {converted.out}" in converted.stdout
    assert "Saved artifact" not in converted.stdout  # the converter's chatter stays off stdout


@pytest.mark.tensorflow
@requires_tf
def test_float16_comparison_model_has_its_own_sidecar(converted: Converted) -> None:
    path = converted.out.with_name("emo-float16.tflite")
    info = load_model_info(path)
    assert (info.input.dtype, info.name) == ("float32", "emo-float16")
    assert info.metrics["float16_accuracy"] >= 0.95
    assert EmotionClassifier(path).probabilities(band_faces(1, seed=4)[0]).shape == (len(LABELS), len(LABELS))
    leftovers = [p.name for p in converted.out.parent.iterdir()]
    assert sorted(leftovers) == ["emo-float16.json", "emo-float16.tflite", "emo.json", "emo.tflite"]


@pytest.mark.tensorflow
@requires_tf
def test_accuracy_drop_over_the_limit_keeps_the_old_model_and_force_overrides(
    converted: Converted, tmp_path: Path
) -> None:
    out = tmp_path / "model.tflite"
    shutil.copy(converted.out, out)
    shutil.copy(sidecar_path(converted.out), sidecar_path(out))
    before = (out.read_bytes(), sidecar_path(out).read_bytes())

    # A negative limit demands that int8 beat float by 50 points: it must fail.
    code, stdout, stderr = run_cli(
        converted.run, "--data", converted.data, "--out", out, "--representative-count", 30,
        "--verify-limit", 60, "--max-drop", "-50", "--model-version", "forced",
    )
    assert code == 8  # AccuracyDropError: the README's exit-code table
    assert "--max-drop -50" in stderr and "Nothing was written" in stderr
    assert "int8: accuracy" in stdout
    assert (out.read_bytes(), sidecar_path(out).read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.tflite"]  # no staging left

    # --force keeps it; without --data the run's own config.json names the dataset.
    code, _, stderr = run_cli(
        converted.run, "--out", out, "--representative-count", 30, "--verify-limit", 60,
        "--max-drop", "-50", "--model-version", "forced", "--force",
    )
    assert code == 0, stderr
    assert load_model_info(out).version == "forced"


@pytest.mark.tensorflow
@requires_tf
def test_a_failure_after_int8_was_staged_leaves_the_previous_files(
    converted: Converted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "model.tflite"
    out.write_bytes(b"previous model")
    sidecar_path(out).write_text("{}")
    real_convert = quantize.convert_keras

    def float16_fails(model, precision: str, calibration=None) -> bytes:
        if precision == "float16":
            raise quantize.ConvertError("the TFLite converter failed on float16: simulated")
        return real_convert(model, precision, calibration)

    monkeypatch.setattr(cli, "convert_keras", float16_fails)
    code, _, stderr = run_cli(
        converted.run, "--data", converted.data, "--out", out, "--representative-count", 30,
        "--verify-limit", 30, "--also", "float16",
    )
    assert code == 2 and "simulated" in stderr
    assert out.read_bytes() == b"previous model" and sidecar_path(out).read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.tflite"]


# --- bad sources --------------------------------------------------------------------------------


@pytest.mark.tensorflow
@requires_tf
def test_model_input_that_does_not_fit_the_preprocessing_is_refused(trained: tuple[Path, Path], tmp_path: Path) -> None:
    _, data = trained
    run = write_run(tmp_path / "run", tiny_model(input_size=32), data)
    code, _, stderr = run_cli(run, "--data", data, "--out", tmp_path / "m.tflite")
    assert code == 2
    assert "(32, 32, 1)" in stderr and "(48, 48, 1)" in stderr and "best.keras" in stderr
    assert not (tmp_path / "m.tflite").exists()


@pytest.mark.tensorflow
@requires_tf
def test_output_size_that_differs_from_the_labels_is_refused(trained: tuple[Path, Path], tmp_path: Path) -> None:
    _, data = trained
    run = write_run(tmp_path / "run", tiny_model(classes=5), data)
    code, _, stderr = run_cli(run, "--data", data, "--out", tmp_path / "m.tflite")
    assert code == 2
    assert "labels.json" in stderr and "6 labels" in stderr


def test_text_file_named_keras_is_not_a_model(tmp_path: Path) -> None:
    source = tmp_path / "best.keras"
    source.write_text("not a model")
    (tmp_path / "labels.json").write_text(json.dumps(list(LABELS)))
    code, _, stderr = run_cli(source, "--data", tmp_path, "--out", tmp_path / "m.tflite")
    assert code == 2
    assert f"{source} is not a Keras model" in stderr and "Traceback" not in stderr


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"seed": 7, "val_fraction": 0.2, "extra_data": ["mine"]}, (ValidationSplit(0.2, 7, "none", 0), ("mine",))),
        ({"seed": 7}, (ValidationSplit(0.1, 7, "none", 0), ())),  # fit's default fraction, a v1 run's split
        ({}, (None, ())),  # no recorded split: the sidecar gets no validation metrics
    ],
)
def test_the_runs_validation_split_is_read_from_its_config(tmp_path: Path, config: dict, expected: tuple) -> None:
    (tmp_path / "best.keras").write_bytes(b"")
    (tmp_path / "labels.json").write_text(json.dumps(list(LABELS)))
    (tmp_path / "config.json").write_text(json.dumps(config))
    source = quantize.read_source(tmp_path)
    assert (source.split, source.extra_data) == expected


def test_bad_split_in_the_run_config_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "best.keras").write_bytes(b"")
    (tmp_path / "labels.json").write_text(json.dumps(list(LABELS)))
    (tmp_path / "config.json").write_text(json.dumps({"seed": "x"}))
    with pytest.raises(quantize.ConvertError, match="config.json.*seed"):
        quantize.read_source(tmp_path)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("missing.keras", "does not exist"),
        ("", "has no best.keras"),  # a folder that is not a run
        ("notes.txt", "neither a run directory nor a .keras"),
    ],
)
def test_bad_source_paths_name_the_path(tmp_path: Path, name: str, expected: str) -> None:
    (tmp_path / "notes.txt").write_text("x")
    source = tmp_path / name
    code, _, stderr = run_cli(source, "--data", tmp_path, "--out", tmp_path / "m.tflite")
    assert code == 2
    assert expected in stderr and str(source) in stderr


def test_missing_labels_beside_a_keras_file(tmp_path: Path) -> None:
    source = tmp_path / "model.keras"
    source.write_bytes(b"PK")
    code, _, stderr = run_cli(source, "--data", tmp_path, "--out", tmp_path / "m.tflite")
    assert code == 2
    assert str(tmp_path / "labels.json") in stderr


def test_output_must_be_a_tflite_path(tmp_path: Path) -> None:
    code, _, stderr = run_cli(tmp_path, "--out", tmp_path / "model.json")
    assert code == 2 and "must end in .tflite" in stderr


def test_unknown_comparison_precision_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc, contextlib.redirect_stderr(io.StringIO()):
        cli.main([str(tmp_path), "--also", "float16,int4"])
    assert exc.value.code == 2


# --- calibration sample -------------------------------------------------------------------------


def test_representative_sample_is_stratified_and_seeded() -> None:
    labels = np.array([0] * 100 + [1] * 100 + [2] * 7)
    chosen = representative_indices(labels, 60, 3, seed=0)
    assert np.bincount(labels[chosen], minlength=3).tolist() == [27, 26, 7]  # the short class's share moves on
    assert len(set(chosen.tolist())) == 60
    assert np.array_equal(chosen, representative_indices(labels, 60, 3, seed=0))
    assert not np.array_equal(chosen, representative_indices(labels, 60, 3, seed=1))
    assert len(representative_indices(labels, 500, 3)) == len(labels)


def test_pinned_calibration_spans_the_contract_range_and_leaves_input_alone() -> None:
    images = np.full((3, 48, 48), 100, dtype=np.uint8)
    pinned = pin_input_range(images, Preprocessing())
    assert (pinned.min(), pinned.max()) == (0, 255)
    assert np.count_nonzero(pinned != images) == 2
    assert (images == 100).all()


# --- temperature calibration --------------------------------------------------------------------


@pytest.mark.tensorflow
@requires_tf
def test_temperature_is_fitted_on_jpeg_validation_and_folded_into_the_model(
    trained: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A run recording a JPEG-scored, grouped split gets a fitted temperature: the float32 model
    then outputs exactly softmax(log p / T) of the trained one, and the sidecar records the
    calibration error before and after."""
    import keras

    run, data = trained
    original = keras.saving.load_model(run / "best.keras")
    named = tiny_model()
    # The architectures' last layer is called "probabilities": that is where T is folded in.
    inputs = keras.Input((48, 48, 1))
    x = inputs
    for layer in named.layers[1:-1]:
        x = layer(x)
    named = keras.Model(inputs, keras.layers.Dense(len(LABELS), activation="softmax", name="probabilities")(x))
    named.set_weights(original.get_weights())
    tempered_run = write_run(tmp_path / "run", named, data)
    config = json.loads((tempered_run / "config.json").read_text())
    config.update(val_fraction=0.3, val_grouping="pixels", val_jpeg_quality=95)
    (tempered_run / "config.json").write_text(json.dumps(config))

    out = tmp_path / "models" / "cal.tflite"
    code, stdout, stderr = run_cli(tempered_run, "--data", data, "--out", out, "--representative-count", 60,
                                   "--verify-limit", 60, "--also", "float32")
    assert code == 0, stderr
    metrics = load_model_info(out).metrics
    calibration = metrics["calibration"]
    assert 0.25 <= calibration["temperature"] <= 4.0 and calibration["temperature"] != 1.0
    assert calibration["split"].endswith("[JPEG q95]") and calibration["n"] == metrics["validation_jpeg"]["n"] > 0
    assert calibration["ece_after"] <= calibration["ece_before"] + 1e-9
    assert f"{calibration['n']} validation faces are too few to measure calibration" in caplog.text  # tiny split
    assert {"accuracy", "ece", "n"} <= set(metrics["validation_jpeg"]) and "ece" in metrics["validation"]

    faces, _ = band_faces(4, seed=5)
    float_model = EmotionClassifier(out.with_name("cal-float32.tflite"))
    trained_probs = named.predict(faces[..., None].astype(np.float32), verbose=0).astype(np.float64)
    logits = np.log(np.clip(trained_probs, 1e-30, 1)) / calibration["temperature"]
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(float_model.probabilities(faces), expected, atol=2e-3)


@pytest.mark.parametrize("value", ["hot", "0", "-1", "nan", "100"])
def test_temperature_flag_refuses_nonsense(value: str) -> None:
    err = io.StringIO()
    with pytest.raises(SystemExit) as exc, contextlib.redirect_stderr(err):
        cli.main(["run", "--temperature", value])
    assert exc.value.code == 2
    assert f"--temperature: {value!r} is neither 'auto' nor a temperature" in err.getvalue()


@pytest.mark.tensorflow
@requires_tf
def test_centre_crop_is_baked_in_and_costed(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run, data = trained
    out = tmp_path / "crop.tflite"
    code, _, stderr = run_cli(run, "--data", data, "--out", out, "--representative-count", 60, "--verify-limit", 60,
                              "--centre-crop", 40)
    assert code == 0, stderr
    info = load_model_info(out)
    assert info.architecture == "band-net+centre40" and info.macs == round(12345 * 40 * 40 / (48 * 48))
    assert info.input.shape == (-1, 48, 48, 1)  # the device still hands it whole faces
    faces, labels = band_faces(5, seed=4)
    blanked = faces.copy()
    blanked[:, :4] = blanked[:, -4:] = 128  # outside the centre: ignored
    classifier = EmotionClassifier(out)
    np.testing.assert_array_equal(classifier.probabilities(faces), classifier.probabilities(blanked))
    assert np.mean(classifier.probabilities(faces).argmax(1) == labels) >= 0.9


@pytest.mark.tensorflow
@requires_tf
def test_the_converter_prints_nothing_raw(capfd: pytest.CaptureFixture[str]) -> None:
    """TensorFlow's quantizer writes a raw 'fully_quantize: ...' line to file descriptor 2; it goes
    to the debug log, not the user's terminal."""
    images, _ = band_faces(2, seed=9)
    content = quantize.convert_keras(tiny_model(), "int8", images)
    assert content[4:8] == b"TFL3"
    captured = capfd.readouterr()
    assert "fully_quantize" not in captured.err and "inference_type" not in captured.err
    assert captured.out == ""


def test_the_old_model_version_flag_is_refused_not_ignored(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["runs/x", "--version", "1.2.3"]) == 2
    assert "--model-version 1.2.3" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("emocam-convert ")


@pytest.mark.tensorflow
@requires_tf
def test_a_converted_model_the_device_cannot_load_is_exit_3(
    converted: Converted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from emocam.edge.errors import ModelError

    def refuses(path: Path, threads: int = 1) -> None:
        raise ModelError(f"{path}: failed to create XNNPACK runtime (simulated)")

    monkeypatch.setattr(cli, "EmotionClassifier", refuses)
    out = tmp_path / "model.tflite"
    code, _, stderr = run_cli(converted.run, "--data", converted.data, "--out", out, "--representative-count", 30,
                              "--verify-limit", 30)
    assert code == 3 and "the converted model does not work on the device" in stderr and "simulated" in stderr
    assert not out.exists()
