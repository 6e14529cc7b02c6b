"""Fine-tuning on a user's own class folder (issue 16): the base model's labels, a validation split
of the user's faces only, replay of another dataset, and one clear line for each bad folder."""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from emocam.train.config import TrainConfig
from emocam.train.data import SIX_CLASSES, DataError, Dataset, load_dataset, split_validation, validation_count
from emocam.train.finetune import FINE_TUNE_DEFAULTS, check_folder, resolve, warn_missing


def write_faces(root: Path, counts: dict[str, int], seed: int = 0) -> Path:
    """FOLDER/<label>/*.png as `emocam collect` writes them: distinct 48x48 grey faces."""
    rng = np.random.default_rng(seed)
    for label, count in counts.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            cv2.imwrite(str(root / label / f"{i:04d}.png"), rng.integers(0, 256, (48, 48), dtype=np.uint8))
    return root


def base_run(folder: Path, labels: tuple[str, ...] = SIX_CLASSES, architecture: str = "tiny",
             classes: str | list[str] = "six", model: bool = False, crop: int = 0) -> Path:
    folder.mkdir(parents=True)
    (folder / "labels.json").write_text(json.dumps(list(labels)))
    config = {"architecture": architecture, "classes": classes, "seed": 1, "crop": crop}
    (folder / "config.json").write_text(json.dumps(config))
    if model:
        from emocam.train.architectures import build

        build(architecture, 48, len(labels)).save(folder / "best.keras")
    else:
        zipfile.ZipFile(folder / "best.keras", "w").close()  # a .keras is a zip; its weights are not read here
    return folder


def test_every_class_of_two_or_more_gets_a_validation_image_and_a_single_one_stays_in_training(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert [validation_count(n, 0.1) for n in (0, 1, 2, 3, 4, 10, 40, 1000)] == [0, 0, 1, 1, 1, 1, 4, 100]
    assert validation_count(5, 0.99) == 4  # never the whole class
    assert [validation_count(n, 0.1, small_classes=False) for n in (2, 4, 40)] == [0, 0, 4]  # FER-2013 as before
    labels = np.array([0] * 1 + [1] * 2 + [2] * 30 + [3] * 0 + [4] * 3 + [5] * 3)
    images = np.random.default_rng(0).integers(0, 256, (len(labels), 48, 48), dtype=np.uint8)
    ds = Dataset(images, labels, SIX_CLASSES, "mine")
    with caplog.at_level(logging.WARNING):
        train, val = split_validation(ds, 0.1, seed=3, grouping="pixels", small_classes=True)
    assert val.class_counts() == {"angry": 0, "fear": 1, "happy": 3, "neutral": 0, "sad": 1, "surprise": 1}
    assert train.class_counts()["angry"] == 1
    assert "angry has a single image" in caplog.text and "kept in training" in caplog.text


def test_fine_tune_defaults_apply_only_to_a_warm_start_on_a_class_folder_and_only_to_flags_not_given(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mine = write_faces(tmp_path / "mine", {"happy": 2, "sad": 2})
    base = base_run(tmp_path / "base", architecture="tiny-pool", classes="merge-disgust", crop=40)
    cfg = resolve(TrainConfig(data=str(mine), init_from=str(base), epochs=3), {"data", "init_from", "epochs"})
    assert cfg.epochs == 3 and cfg.learning_rate == FINE_TUNE_DEFAULTS["learning_rate"]
    assert cfg.warmup_epochs == FINE_TUNE_DEFAULTS["warmup_epochs"] and cfg.architecture == "tiny-pool"
    assert cfg.classes == "merge-disgust" and cfg.crop == 40  # the base's crop training goes on
    given = {"data", "init_from", "crop"}
    assert resolve(TrainConfig(data=str(mine), init_from=str(base), crop=0), given).crop == 0
    assert TrainConfig(data=str(mine)) == resolve(TrainConfig(data=str(mine)), {"data"})  # no --init-from
    fer_like = write_faces(tmp_path / "fer" / "train", {"happy": 2, "sad": 2}).parent
    warm_restart = resolve(TrainConfig(data=str(fer_like), init_from=str(base)), {"data"})
    assert warm_restart.epochs == TrainConfig().epochs  # no small-folder defaults on FER-2013 ...
    assert warm_restart.architecture == "tiny-pool" and warm_restart.crop == 40  # ... but the base's network
    # labels only (a run without a class scheme): the labels themselves, in the model's order
    odd = base_run(tmp_path / "odd", labels=("sad", "happy"), classes=["sad", "happy"])
    assert resolve(TrainConfig(data=str(mine), init_from=str(odd)), {"data"}).classes == ("sad", "happy")


def test_missing_classes_are_a_warning_naming_them(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    mine = write_faces(tmp_path / "mine", {"happy": 3, "sad": 3})
    base = base_run(tmp_path / "base")
    with caplog.at_level(logging.WARNING):
        warn_missing(TrainConfig(data=str(mine), init_from=str(base)))
    assert "no images of angry, fear, neutral, surprise: kept from the base model" in caplog.text
    assert "--replay-from" in caplog.text


def test_a_folder_class_the_model_lacks_is_an_error_naming_it_and_the_labels(tmp_path: Path) -> None:
    mine = write_faces(tmp_path / "mine", {"happy": 3, "disgust": 3})
    base = base_run(tmp_path / "base")
    with pytest.raises(DataError, match=r"disgust: 'disgust' is not one of the model's labels \(angry, fear, happy"):
        check_folder(TrainConfig(data=str(mine), init_from=str(base)))


def test_one_class_without_replay_is_an_error_that_says_how_to_fix_it(tmp_path: Path) -> None:
    mine = write_faces(tmp_path / "mine", {"happy": 5})
    base = base_run(tmp_path / "base")
    with pytest.raises(DataError, match=r"one class only \(happy\): a classifier cannot learn .*--replay-from"):
        check_folder(TrainConfig(data=str(mine), init_from=str(base)))
    check_folder(TrainConfig(data=str(mine), init_from=str(base), replay_from=str(tmp_path)))  # replay: fine


def test_wrong_layouts_say_the_expected_one(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    cv2.imwrite(str(flat / "0001.png"), np.zeros((48, 48), np.uint8))
    with pytest.raises(DataError, match=r"holds 1 images directly .* expected .*flat/<label>/\*\.png"):
        load_dataset(flat)
    deep = write_faces(tmp_path / "deep" / "happy" / "monday", {"x": 0}).parent
    write_faces(deep / "monday", {})
    (deep / "monday" / "a.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"nested too deep; expected .*deep/<label>/\*\.png"):
        load_dataset(tmp_path / "deep")
    write_faces(tmp_path / "typo", {"happy": 1, "hapy": 1})
    with pytest.raises(DataError, match=r"typo: hapy is not a label; rename it to one of angry, disgust"):
        load_dataset(tmp_path / "typo")
    write_faces(tmp_path / "up" / "faces", {"happy": 1})
    with pytest.raises(DataError, match=r"one level down, in .*up/faces; give --data .*up/faces"):
        load_dataset(tmp_path / "up")


def test_unreadable_images_are_counted_named_and_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    mine = write_faces(tmp_path / "mine", {"happy": 3, "sad": 3})
    (mine / "sad" / "broken.png").write_bytes(b"not a png")
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(mine)
    assert len(ds) == 6 and ds.skipped == 1
    assert "1 unreadable or corrupt images skipped" in caplog.text and "broken.png" in caplog.text


# --- the whole fine-tune, through the CLI -------------------------------------------------------


def test_fine_tune_keeps_six_outputs_validates_on_the_folder_and_replays_training_only(tmp_path: Path) -> None:
    keras = pytest.importorskip("keras")
    from emocam.train.fit import main

    base = base_run(tmp_path / "base", model=True)
    mine = write_faces(tmp_path / "mine", {"happy": 10, "sad": 10, "surprise": 1}, seed=1)
    replay = write_faces(tmp_path / "fer" / "train", dict.fromkeys(SIX_CLASSES, 6), seed=2).parent
    out = tmp_path / "mine-run"
    code = main(["--data", str(mine), "--init-from", str(base), "--out", str(out), "--epochs", "1", "--quiet",
                 "--replay-from", str(replay), "--replay-per-class", "4"])
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert config["labels"] == list(SIX_CLASSES) and json.loads((out / "labels.json").read_text()) == list(SIX_CLASSES)
    assert keras.saving.load_model(out / "best.keras").output_shape[-1] == 6
    assert config["learning_rate"] == FINE_TUNE_DEFAULTS["learning_rate"] and config["epochs"] == 1
    assert config["replay_from"] == str(replay) and config["replay_per_class"] == 4
    # 20% of 10 happy and 10 sad in validation; the one surprise face trains; replay trains only
    assert config["val_images"] == 4
    assert config["train_images"] == 16 + 1 + 6 * 4
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 4 and "replay" not in metrics["source"]


def test_fine_tune_errors_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from emocam.train.fit import main

    base = base_run(tmp_path / "base")
    mine = write_faces(tmp_path / "mine", {"happy": 4})
    assert main(["--data", str(mine), "--init-from", str(base), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "one class only" in err
    assert main(["--data", str(mine), "--init-from", str(base), "--out", str(tmp_path / "r"),
                 "--replay-from", str(tmp_path / "nowhere")]) == 2
    assert "--replay-from" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_an_empty_label_folder_is_skipped_as_collect_leaves_one_that_saved_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mine = write_faces(tmp_path / "mine", {"happy": 3, "sad": 3})
    (mine / "fear").mkdir()  # `emocam collect --label fear` made it, then found no face
    with caplog.at_level(logging.WARNING):
        loaded = load_dataset(mine, "train")
    assert loaded.class_counts()["fear"] == 0 and len(loaded) == 6
    assert f"class folder {mine / 'fear'} is empty; skipped" in caplog.text
    check_folder(TrainConfig(data=str(mine), init_from=str(base_run(tmp_path / "base"))))  # no error either
