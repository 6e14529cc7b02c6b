"""Issue 11's recipe: honest validation, JPEG and crop augmentation, calibration, exact resume."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from emocam.train.augment import augment_batch
from emocam.train.calibration import (
    expected_calibration_error,
    fit_temperature,
    reliability,
    tempered,
    write_reliability_png,
)
from emocam.train.config import TrainConfig, TrainConfigError, problems, validate
from emocam.train.data import Dataset, duplicate_groups, jpeg_reencoded, split_validation

OFF = dict(flip=False, rotation_deg=0, shear=0, zoom=0, shift=0, brightness=0, contrast=0, erasing=0, jpeg=0)


def faces(count: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 48, 48), dtype=np.uint8)


def dataset_with_twins() -> Dataset:
    """60 faces in 3 classes, 20 of them copied (some twice, one under another label)."""
    images = faces(60)
    labels = np.repeat(np.arange(3), 20)
    twins = np.concatenate([images[:20], images[:5]])
    twin_labels = np.concatenate([labels[:20], np.full(5, 1)])  # FER-2013 has such label conflicts
    return Dataset(np.concatenate([images, twins]), np.concatenate([labels, twin_labels]), ("a", "b", "c"), "toy")


def test_duplicate_groups_join_pixel_identical_images_only() -> None:
    images = faces(4)
    stack = np.stack([images[0], images[1], images[0], images[2], images[3], images[0]])
    stack[4, 0, 0] ^= 1  # one pixel apart: not a twin
    groups = duplicate_groups(stack)
    assert groups[0] == groups[2] == groups[5]
    assert len({groups[0], groups[1], groups[3], groups[4]}) == 4


def test_grouped_split_leaves_no_twin_of_a_validation_image_in_training() -> None:
    ds = dataset_with_twins()
    train, val = split_validation(ds, 0.3, seed=2, grouping="pixels")
    assert len(train) + len(val) == len(ds)
    train_keys = {image.tobytes() for image in train.images}
    assert not any(image.tobytes() in train_keys for image in val.images)
    # The per-file split of the same data does leak twins; the grouped one exists to stop that.
    train_f, val_f = split_validation(ds, 0.3, seed=2, grouping="none")
    assert any(image.tobytes() in {t.tobytes() for t in train_f.images} for image in val_f.images)
    # Stratified over groups: each class keeps roughly its share of groups in validation.
    assert set(np.unique(val.labels)) == {0, 1, 2}
    again = split_validation(ds, 0.3, seed=2, grouping="pixels")[1]
    np.testing.assert_array_equal(again.images, val.images)


def test_jpeg_reencoding_changes_pixels_a_little_and_names_itself() -> None:
    ds = Dataset(faces(4), np.zeros(4, np.int64), ("a", "b"), "toy")
    smooth = np.stack([cv2.GaussianBlur(image, (7, 7), 2) for image in ds.images])
    ds = Dataset(smooth, ds.labels, ds.label_names, "toy")
    out = jpeg_reencoded(ds, 95)
    assert out.source == "toy[JPEG q95]" and out.images.shape == ds.images.shape and out.images.dtype == np.uint8
    difference = np.abs(out.images.astype(int) - ds.images.astype(int))
    assert 0 < difference.mean() < 3
    assert jpeg_reencoded(ds, 0) is ds


def test_random_jpeg_and_crop_augmentation() -> None:
    images = np.stack([cv2.GaussianBlur(face, (5, 5), 1.5) for face in faces(32)])
    cfg = TrainConfig(**{**OFF, "crop": 40})
    out = augment_batch(images, cfg, np.random.default_rng(0))[..., 0]
    assert out.shape == (32, 40, 40)
    # Every crop is a 40x40 window of its own face, at some offset within 0..8.
    offsets = [(top, left) for top in range(9) for left in range(9)]
    for crop, face in zip(out, images, strict=True):
        assert any(np.array_equal(crop, face[top : top + 40, left : left + 40]) for top, left in offsets)
    jpeg = augment_batch(images, TrainConfig(**{**OFF, "jpeg": 1.0, "jpeg_quality_min": 30}), np.random.default_rng(0))
    assert not np.array_equal(jpeg[..., 0], images) and np.abs(jpeg[..., 0] - images).mean() < 12


@pytest.mark.parametrize(
    ("change", "flag"),
    [
        ({"epochs": 0}, "--epochs 0"),
        ({"batch_size": -1}, "--batch-size -1"),
        ({"learning_rate": -1.0}, "--learning-rate -1.0"),
        ({"label_smoothing": 2.0}, "--label-smoothing 2.0"),
        ({"limit_per_class": -5}, "--limit-per-class -5"),
        ({"class_weighting": "sqrtt"}, "--class-weighting 'sqrtt' is not one of: none, sqrt, balanced"),
        ({"precision": "bf16"}, "--precision 'bf16' is not one of"),
        ({"val_grouping": "hash"}, "--val-grouping 'hash'"),
        ({"ema": 0.3}, "--ema 0.3"),
        ({"crop": 4}, "--crop 4"),
        ({"learning_rate": float("nan")}, "--learning-rate nan"),
    ],
)
def test_bad_knobs_are_named_before_anything_runs(change: dict, flag: str) -> None:
    cfg = TrainConfig(**change)
    assert any(flag in line for line in problems(cfg)), problems(cfg)
    with pytest.raises(TrainConfigError, match=flag.split()[0]):
        validate(cfg)


def test_default_config_is_valid() -> None:
    assert problems(TrainConfig()) == []


def test_ece_of_a_calibrated_and_an_overconfident_model() -> None:
    rng = np.random.default_rng(0)
    n = 20000
    confidence = rng.uniform(0.4, 1.0, n)
    y = np.zeros(n, np.int64)
    correct = rng.random(n) < confidence  # right exactly as often as it claims: calibrated
    probs = np.stack([confidence, 1 - confidence], axis=1)
    y[~correct] = 1
    assert expected_calibration_error(y, probs) < 0.02
    sharpened = np.stack([np.minimum(confidence * 1.2, 1.0), 1 - np.minimum(confidence * 1.2, 1.0)], axis=1)
    assert expected_calibration_error(y, sharpened) > 0.08
    curve = reliability(y, probs)
    assert sum(curve.counts) == n and len(curve.edges) == len(curve.counts) + 1


def test_fitted_temperature_undoes_a_known_sharpening() -> None:
    rng = np.random.default_rng(1)
    n, classes = 6000, 4
    logits = rng.normal(size=(n, classes)) * 1.5
    truth = np.array([rng.choice(classes, p=p) for p in tempered([logits], 1.0)])
    sharpened = [logits * 2.5]  # the same model, overconfident by T = 2.5
    temperature = fit_temperature(truth, sharpened)
    assert temperature == pytest.approx(2.5, rel=0.1)
    before = expected_calibration_error(truth, tempered(sharpened, 1.0))
    after = expected_calibration_error(truth, tempered(sharpened, temperature))
    assert after < before / 3
    # Temperature never changes which class wins.
    np.testing.assert_array_equal(tempered(sharpened, temperature).argmax(1), logits.argmax(1))


def test_reliability_png_is_written(tmp_path: Path) -> None:
    y = np.array([0, 1, 1, 0])
    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.55, 0.45]])
    path = write_reliability_png(reliability(y, probs), tmp_path / "r.png", "toy")
    assert cv2.imread(str(path)).shape[:2] == (600, 600)


keras = pytest.importorskip("keras")


@pytest.mark.tensorflow
@pytest.mark.dataset
@pytest.mark.slow
def test_a_resumed_run_is_the_uninterrupted_run(fer2013: Path, tmp_path: Path) -> None:
    """bf16, EMA, crops, dropout and augmentation on: stop after each epoch and resume, and every
    weight and optimizer variable of the checkpoint equals the one of a run never stopped."""
    import zipfile

    import h5py

    from emocam.train.fit import fit

    base = dict(data=str(fer2013), architecture="tiny-pool", crop=40, precision="mixed_bfloat16", ema=0.9,
                epochs=3, limit_per_class=30, batch_size=32, warmup_epochs=1, cache_dir=str(tmp_path / "cache"))
    fit(TrainConfig(out=str(tmp_path / "straight"), **base), verbose=0)
    resumed_run = TrainConfig(out=str(tmp_path / "resumed"), **base)
    fit(resumed_run, verbose=0, stop_at_epoch=1)
    fit(resumed_run, verbose=0, resume=True, stop_at_epoch=1)  # already at epoch 1: trains nothing
    assert json.loads((tmp_path / "resumed" / "state.json").read_text())["epoch"] == 1
    for stop in (2, 0):
        fit(resumed_run, verbose=0, resume=True, stop_at_epoch=stop)

    def variables(run: str) -> dict[str, np.ndarray]:
        with zipfile.ZipFile(tmp_path / run / "last.keras") as archive:
            archive.extract("model.weights.h5", tmp_path / run)
        found: dict[str, np.ndarray] = {}
        with h5py.File(tmp_path / run / "model.weights.h5") as h5:
            h5.visititems(lambda name, obj: found.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        return found

    straight, resumed = variables("straight"), variables("resumed")
    assert sorted(straight) == sorted(resumed) and any(name.startswith("optimizer") for name in straight)
    for name in straight:
        np.testing.assert_array_equal(straight[name], resumed[name], err_msg=name)
    assert (tmp_path / "straight" / "history.csv").read_text() == (tmp_path / "resumed" / "history.csv").read_text()
    state = json.loads((tmp_path / "resumed" / "state.json").read_text())
    assert state["epoch"] == 3
    # best.keras is the float32 inference model at full size, whatever the training precision.
    best = keras.saving.load_model(tmp_path / "resumed" / "best.keras")
    assert best.input_shape == (None, 48, 48, 1) and all(w.dtype == "float32" for w in best.weights)
    assert best.dtype_policy.name == "float32"


@pytest.mark.tensorflow
@pytest.mark.dataset
def test_fit_refuses_to_overwrite_a_run_and_keeps_it(fer2013: Path, tmp_path: Path) -> None:
    from emocam.train.fit import main

    run = tmp_path / "run"
    run.mkdir()
    for name in ("state.json", "best.keras", "config.json"):
        (run / name).write_text("precious")
    code = main(["--data", str(fer2013), "--out", str(run), "--architecture", "tiny", "--epochs", "1", "--quiet"])
    assert code == 2
    assert all((run / name).read_text() == "precious" for name in ("state.json", "best.keras", "config.json"))


@pytest.mark.tensorflow
def test_fit_names_bad_flags_before_reading_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from emocam.train.fit import main

    missing = tmp_path / "no-such-data.zip"  # never opened: the flags are refused first
    for args, message in (
        (["--architecture", "nope"], "--architecture 'nope' is unknown; choose one of vgg-s"),
        (["--batch-size", "0"], "--batch-size 0 is out of range"),
        (["--crop", "40", "--architecture", "vgg-s"], "--crop 40 needs an architecture with a pooling head"),
    ):
        code = main(["--data", str(missing), "--out", str(tmp_path / "run"), *args])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.tensorflow
def test_centre_crop_scores_the_centre_of_a_pooling_net_and_refuses_a_flatten_net() -> None:
    from emocam.train.architectures import build, with_centre_crop

    net = build("tiny-pool", 48, 6)
    cropped = with_centre_crop(net, 40)
    faces = np.random.default_rng(3).uniform(0, 255, (3, 48, 48, 1)).astype("float32")
    any_size = build("tiny-pool", None, 6)
    any_size.set_weights(net.get_weights())
    np.testing.assert_allclose(cropped.predict(faces, verbose=0), any_size.predict(faces[:, 4:44, 4:44], verbose=0),
                               atol=1e-6)
    outside = faces.copy()
    outside[:, :4] = 0  # pixels outside the centre do not matter
    np.testing.assert_allclose(cropped.predict(outside, verbose=0), cropped.predict(faces, verbose=0), atol=1e-6)
    with pytest.raises(ValueError, match="cannot score a 40x40 centre crop"):
        with_centre_crop(build("tiny", 48, 6), 40)


@pytest.mark.tensorflow
def test_a_diverged_epoch_stops_training_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    from emocam.train.architectures import build
    from emocam.train.fit import RunCheckpoint, TrainingDiverged

    net, inference = build("tiny", 48, 6), build("tiny", 48, 6)
    net.compile(optimizer=keras.optimizers.SGD(0.01), loss="categorical_crossentropy")
    x_val = np.zeros((4, 48, 48, 1), np.float32)
    callback = RunCheckpoint.make(tmp_path, net, inference, (x_val, np.zeros(4, np.int64)), 5, -1.0, seed=1)
    callback.set_model(net)
    callback.on_epoch_begin(0)
    callback.on_epoch_end(0, {"loss": 1.7})
    good = (tmp_path / "last.keras").read_bytes()
    callback.on_epoch_begin(1)
    callback.on_train_batch_end(3, {"loss": float("nan")})
    assert net.stop_training
    with pytest.raises(TrainingDiverged, match="training loss became nan in epoch 2.*keeps its last good checkpoint"):
        callback.on_epoch_end(1, {"loss": float("nan")})
    assert (tmp_path / "last.keras").read_bytes() == good
    assert json.loads((tmp_path / "state.json").read_text())["epoch"] == 1


def test_fit_without_the_train_extra_says_what_to_install() -> None:
    import subprocess
    import sys

    # keras=None in sys.modules makes `import keras` raise ImportError, as in a device-only install.
    code = ("import sys; sys.modules['keras'] = None; from emocam.train.fit import main; "
            "sys.exit(main(['--data', 'x.zip', '--out', '/nonexistent/run']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "pip install 'emocam[train]'" in result.stderr and "Traceback" not in result.stderr
