"""Smoke run of the workstation path: FER-2013 subset -> emocam-train fit -> emocam-convert -> device.

Tens of images per class and two epochs: it proves the stages hand over files correctly, not that
the model is any good.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.tensorflow, pytest.mark.dataset, pytest.mark.slow]
pytest.importorskip("tensorflow", reason="needs the train extra: pip install -e '.[train]'")


@pytest.fixture(scope="module")
def smoke_run(fer2013: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from emocam.train.fit import main as fit_main

    run = tmp_path_factory.mktemp("run")
    cache = tmp_path_factory.mktemp("cache")
    rc = fit_main([
        "--data", str(fer2013), "--out", str(run), "--architecture", "tiny", "--epochs", "2",
        "--limit-per-class", "40", "--batch-size", "32", "--cache-dir", str(cache), "--quiet",
    ])
    assert rc == 0
    return run


def test_run_directory_holds_what_later_steps_need(smoke_run: Path) -> None:
    for name in ("best.keras", "last.keras", "config.json", "labels.json", "history.csv", "metrics.json", "state.json"):
        assert (smoke_run / name).is_file(), name
    config = json.loads((smoke_run / "config.json").read_text())
    assert config["labels"] == ["angry", "fear", "happy", "neutral", "sad", "surprise"]
    assert config["params"] > 0 and config["macs"] > 0
    assert config["preprocessing"]["size"] == 48
    assert json.loads((smoke_run / "state.json").read_text())["epoch"] == 2
    assert len((smoke_run / "history.csv").read_text().strip().splitlines()) == 3


def test_resume_continues_from_the_checkpoint(smoke_run: Path) -> None:
    from emocam.train.fit import main as fit_main

    assert fit_main(["--out", str(smoke_run), "--resume", "--epochs", "3", "--quiet"]) == 0
    assert json.loads((smoke_run / "state.json").read_text())["epoch"] == 3
    assert len((smoke_run / "history.csv").read_text().strip().splitlines()) == 4


def test_convert_to_int8_and_run_on_the_device_code(smoke_run: Path, fer2013: Path, tmp_path: Path) -> None:
    from emocam.convert.cli import main as convert_main
    from emocam.edge.vision.classifier import EmotionClassifier
    from emocam.train.data import load_dataset

    out = tmp_path / "smoke.tflite"
    rc = convert_main([
        str(smoke_run), "--data", str(fer2013), "--out", str(out), "--representative-count", "60",
        "--verify-limit", "300", "--force",
    ])
    assert rc == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["labels"] == ["angry", "fear", "happy", "neutral", "sad", "surprise"]
    assert sidecar["input"]["dtype"] == "int8" and sidecar["output"]["dtype"] == "int8"
    assert (sidecar["input"]["scale"], sidecar["input"]["zero_point"]) == (1.0, -128)
    assert sidecar["metrics"]["agreement"] >= 0.9  # int8 follows the float model it came from
    classifier = EmotionClassifier(out)
    faces = load_dataset(fer2013, "test").images[:8]
    probs = classifier.probabilities(faces)
    assert probs.shape == (8, 6)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=0.05)


@pytest.fixture(scope="module")
def recipe_members(fer2013: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Issue 11's two kinds of member in miniature, trained as train/recipe_members.sh trains them:
    40 px crops, bf16, EMA; a VGG, and a ResNet with its residual adds."""
    from emocam.train.fit import main as fit_main

    root = tmp_path_factory.mktemp("members")
    runs = {}
    for architecture in ("tiny-pool", "tiny-res"):
        runs[architecture] = root / architecture
        assert fit_main([
            "--data", str(fer2013), "--out", str(runs[architecture]), "--architecture", architecture,
            "--crop", "40", "--precision", "mixed_bfloat16", "--ema", "0.9", "--epochs", "1",
            "--limit-per-class", "30", "--batch-size", "32", "--cache-dir", str(root / "cache"), "--quiet",
        ]) == 0
    return runs


def test_the_recipes_two_kinds_of_member_convert_into_one_int8_ensemble(
    recipe_members: dict[str, Path], fer2013: Path, tmp_path: Path
) -> None:
    """emocam-convert bakes both, with flip TTA, into one int8 model the device runs."""
    from emocam.convert.cli import main as convert_main
    from emocam.edge.vision.classifier import EmotionClassifier
    from emocam.train.data import load_dataset

    out = tmp_path / "ensemble.tflite"
    assert convert_main([
        str(recipe_members["tiny-pool"]), "--ensemble-with", str(recipe_members["tiny-res"]), "--flip-tta",
        "--data", str(fer2013), "--out", str(out), "--representative-count", "60", "--verify-limit", "300",
        "--force",
    ]) == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert "tiny-pool" in sidecar["architecture"] and "tiny-res" in sidecar["architecture"], sidecar["architecture"]
    assert sidecar["metrics"]["agreement"] >= 0.9
    probs = EmotionClassifier(out).probabilities(load_dataset(fer2013, "test").images[:8])
    assert probs.shape == (8, 6)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=0.05)


def test_finish_recipe_chooses_on_validation_converts_and_reports(
    recipe_members: dict[str, Path], fer2013: Path, tmp_path: Path
) -> None:
    """train/finish_recipe.py end to end on member 1 alone (its interim release; four candidates):
    every CLI it calls takes the flags it passes, and choice.json holds the numbers the model card
    quotes."""
    out = tmp_path / "ship"
    result = subprocess.run(
        [sys.executable, "train/finish_recipe.py", str(fer2013), "--m1", str(recipe_members["tiny-pool"]),
         "--m2", "", "--out", str(out), "--model-version", "0.0.1-smoke"],
        capture_output=True, text=True, cwd=REPO, timeout=1800,
        env={**os.environ, "PATH": os.defpath},  # as CI runs it: the venv's scripts are not on PATH
    )
    assert result.returncode == 0, result.stdout + result.stderr
    choice = json.loads((out / "choice.json").read_text())
    assert len(choice["candidates"]) == 4  # whole face or centre 40, with or without flip TTA
    assert choice["chosen"] in choice["candidates"]
    for key in ("int8_test_accuracy", "float_test_accuracy", "int8_validation_jpeg_accuracy",
                "float_validation_jpeg_accuracy"):
        assert 0.0 < choice[key] < 1.0, key
    assert not choice["latency_bench"].startswith("failed"), choice["latency_bench"]
    sidecar = json.loads((out / "emocam-fer6.json").read_text())
    assert sidecar["version"] == "0.0.1-smoke"
    assert f"python -m emocam.train.bundled export {recipe_members['tiny-pool']}" in result.stdout
