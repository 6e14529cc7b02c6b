"""--init-from bundled (issue 16): the float weights shipped beside the training code belong to the
bundled int8 model, classify as it does, and fine-tune like any base run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emocam.edge.vision.model_info import BUNDLED_MODEL, file_sha256, load_model_info
from emocam.train import bundled
from emocam.train.data import SIX_CLASSES, load_dataset, per_class_limit
from tests.train.test_fine_tune import write_faces

HOW_TO_FIX = "the bundled model changed: re-export its run with `python -m emocam.train.bundled export RUN`"
# v1.3.0, the last bundled model without a training run: the int8 model rebuild_float was made for,
# kept here (the same file as in edge/models' history, so it costs the repository nothing).
V130 = Path(__file__).resolve().parent / "data" / "emocam-fer6-v1.3.0.tflite"


def test_the_bundled_weights_belong_to_the_bundled_model() -> None:
    about = bundled.describe()
    info = load_model_info(BUNDLED_MODEL)
    assert about["sha256"] == file_sha256(BUNDLED_MODEL), HOW_TO_FIX
    assert (about["name"], about["version"], tuple(about["labels"])) == (info.name, info.version, info.labels)
    # size-conscious: float16 kernels; a Pi installs this file too, and never opens it
    assert bundled.WEIGHTS.stat().st_size < 2.2 * about["params"]


def test_a_wrong_architecture_is_refused_before_any_data_is_read(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from emocam.train.fit import main

    code = main(["--data", str(tmp_path / "nowhere"), "--init-from", "bundled", "--architecture", "tiny",
                 "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"bundled holds {bundled.describe()['architecture']} weights, not tiny" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.tensorflow
@pytest.mark.dataset
@pytest.mark.slow
def test_the_bundled_weights_classify_as_the_bundled_int8_model_does(fer2013: Path) -> None:
    pytest.importorskip("keras")
    from emocam.train.architectures import build
    from emocam.train.metrics import top1_agreement
    from emocam.train.predictors import load_predictor

    faces = per_class_limit(load_dataset(fer2013, "test"), 50, seed=3).images
    about = bundled.describe()
    net = build(about["architecture"], 48, len(about["labels"]))
    bundled.load_into(net)
    x = faces[..., None].astype(np.float32)
    # the int8 model has flip TTA baked in; the float network is the one inside it
    float_probs = (net.predict_on_batch(x) + net.predict_on_batch(x[:, :, ::-1])) / 2
    int8_probs = load_predictor(BUNDLED_MODEL, num_threads=1).probabilities(faces)
    assert top1_agreement(float_probs, int8_probs) >= 0.96
    assert np.abs(float_probs - int8_probs).mean() < 0.02


@pytest.mark.tensorflow
@pytest.mark.dataset
@pytest.mark.slow
def test_rebuilt_batch_norms_compute_about_the_same_on_a_training_batch(fer2013: Path) -> None:
    """Fine-tuning runs batch norms on batch statistics: the rebuilt ones must not change what the
    layer computes there either, or the first step would start far from the bundled model."""
    pytest.importorskip("keras")
    import keras
    from keras import layers

    from emocam.train.architectures import leaf_layers
    from emocam.train.rebuild_float import RebuildError, rebuild

    train = per_class_limit(load_dataset(fer2013, "train"), 120, seed=0).images  # grouped by class
    train = train[np.random.default_rng(0).permutation(len(train))]
    net = rebuild(V130, "vgg-s", SIX_CLASSES, train[:480])
    norms = [layer for layer in leaf_layers(net) if isinstance(layer, layers.BatchNormalization)]
    inputs = keras.Model(net.inputs, [norm.input for norm in norms]).predict_on_batch(
        train[480:, :, :, None].astype(np.float32))
    for norm, x in zip(norms, inputs, strict=True):
        inference = np.asarray(norm(x, training=False))
        batch = np.asarray(norm(x, training=True))
        # in units of each channel's spread: about 0.01-0.02 for the convolutions and 0.1 for the dense
        # layer on 240 faces (the batch's own noise); an identity batch norm would be 0.6-2
        spread = x.reshape(-1, x.shape[-1]).std(axis=0) + 1e-6
        change = np.abs(batch - inference).reshape(-1, x.shape[-1]).mean(axis=0) / spread
        assert change.mean() < 0.15, norm.name
    with pytest.raises(RebuildError, match="give the --architecture"):
        rebuild(V130, "vgg-m", SIX_CLASSES, train[:8])


@pytest.mark.tensorflow
@pytest.mark.slow
def test_fine_tuning_the_bundled_model_keeps_its_architecture_and_six_outputs(tmp_path: Path) -> None:
    keras = pytest.importorskip("keras")
    from emocam.train.fit import main

    mine = write_faces(tmp_path / "mine", {"happy": 10, "sad": 10}, seed=1)
    out = tmp_path / "mine-run"
    assert main(["--data", str(mine), "--init-from", "bundled", "--out", str(out), "--epochs", "1", "--quiet"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == bundled.describe()["architecture"] and config["init_from"] == "bundled"
    assert config["labels"] == list(SIX_CLASSES)
    assert keras.saving.load_model(out / "best.keras").output_shape[-1] == 6
