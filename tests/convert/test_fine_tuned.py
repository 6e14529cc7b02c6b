"""emocam-convert on a run fine-tuned on a user's FOLDER/<label>/ faces (issue 16): no test split,
so the run's training split (replay included) calibrates and its validation split verifies."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from emocam.edge.vision.model_info import load_model_info
from emocam.train.data import SIX_CLASSES
from tests.convert.test_convert import band_faces, requires_tf, run_cli, write_split

USER_CLASSES = ("happy", "neutral", "sad")


def user_folder(root: Path) -> Path:
    """FOLDER/<label>/*.png of three of the six classes, 10 faces each, as `emocam collect` writes."""
    images, labels = band_faces(10, seed=5)
    keep = [i for i, label in enumerate(labels) if SIX_CLASSES[label] in USER_CLASSES]
    write_split(root, "mine", images[keep], labels[keep])
    return root / "mine"


@pytest.mark.tensorflow
@requires_tf
def test_a_fine_tuned_run_converts_with_its_own_folder(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from emocam.train.architectures import build
    from emocam.train.fit import main as fit_main

    base = tmp_path / "base"
    base.mkdir()
    build("tiny", 48, len(SIX_CLASSES)).save(base / "best.keras")
    (base / "labels.json").write_text(json.dumps(list(SIX_CLASSES)))
    (base / "config.json").write_text(json.dumps({"architecture": "tiny", "classes": "six", "seed": 0}))
    mine = user_folder(tmp_path)
    write_split(tmp_path / "fer", "train", *band_faces(4, seed=6))
    run = tmp_path / "runs" / "mine"
    assert fit_main(["--data", str(mine), "--init-from", str(base), "--out", str(run), "--epochs", "1", "--quiet",
                     "--replay-from", str(tmp_path / "fer"), "--replay-per-class", "4"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["val_images"] == 6 and config["train_images"] == 24 + 24
    assert caplog.text.count("has no images of angry, fear, surprise") == 1  # warned once

    out = tmp_path / "deploy" / "mine.tflite"
    with caplog.at_level(logging.INFO):
        code, stdout, stderr = run_cli(run, "--data", mine, "--out", out, "--model-version", "2026.12.02-mine",
                                       "--representative-count", 1000, "--max-drop", 100)
    assert code == 0, stderr
    assert "calibrating int8 on 48 training images" in caplog.text  # the folder's training split + replay
    assert "verifying on training images" not in caplog.text
    assert "[val 20%" in stdout
    info = load_model_info(out)  # the sidecar beside it; checks the sha256
    assert info.labels == SIX_CLASSES and info.version == "2026.12.02-mine" and info.source_run == str(run)
    assert info.metrics["split"] == "validation" and info.metrics["n"] == 6 and info.metrics["data"] == str(mine)

    # Verified on FER-2013's test split instead: validation is still the run's own folder's.
    write_split(tmp_path / "fer", "test", *band_faces(2, seed=7))
    code, stdout, stderr = run_cli(run, "--data", tmp_path / "fer", "--out", tmp_path / "fer.tflite",
                                   "--representative-count", 30, "--max-drop", 100)
    assert code == 0, stderr
    info = load_model_info(tmp_path / "fer.tflite")
    assert info.metrics["split"] == "test" and info.metrics["n"] == 12
    assert info.metrics["validation"]["n"] == 6 and str(mine) in info.metrics["validation"]["source"]

    # Another folder of faces (held-out people) is verified on whole.
    others = user_folder(tmp_path / "others")
    code, stdout, stderr = run_cli(run, "--data", others, "--out", tmp_path / "others.tflite",
                                   "--representative-count", 30, "--max-drop", 100)
    assert code == 0, stderr
    info = load_model_info(tmp_path / "others.tflite")
    assert info.metrics["split"] == "test" and info.metrics["n"] == 30 and info.metrics["validation"]["n"] == 6


def test_one_image_of_a_small_validation_split_is_not_an_accuracy_drop() -> None:
    from emocam.convert.verify import AccuracyDropError, Comparison, check_drop

    def lost(images: int, n: int) -> Comparison:
        return Comparison("int8", "validation", n, 23 / n, (23 - images) / n, 0.3, 1 - images / n)

    check_drop(lost(1, 52), 1.0)  # 1.92 points: one face of 52
    with pytest.raises(AccuracyDropError, match=r"--max-drop 1.0 \(one image of 52 is 1.92\)"):
        check_drop(lost(2, 52), 1.0)
    with pytest.raises(AccuracyDropError, match=r"the limit is --max-drop 1.0\. Nothing"):
        check_drop(lost(80, 7000), 1.0)  # a large split: the limit as given
    with pytest.raises(AccuracyDropError):
        check_drop(lost(0, 52), -50)  # a negative limit stays a demand
