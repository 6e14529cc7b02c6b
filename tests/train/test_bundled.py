"""--init-from bundled (issue 16): the float weights shipped beside the training code belong to the
bundled int8 model, classify as it does, and fine-tune like any base run."""

from __future__ import annotations

import json
import warnings
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


def test_shipped_form_reads_what_emocam_convert_writes() -> None:
    assert bundled.shipped_form("vgg-s+flip-tta") == ("vgg-s", 0, True, False)
    assert bundled.shipped_form("vgg-m-pool+centre40") == ("vgg-m-pool", 40, False, False)
    assert bundled.shipped_form("ensemble[vgg-m-pool+centre40, resnet18-n+centre40]+flip-tta") == (
        "vgg-m-pool", 40, True, True)
    assert bundled.shipped_form("ensemble[vgg-m-pool, resnet18-n]") == ("vgg-m-pool", 0, False, True)


def first_member_probabilities(model: Path, faces: np.ndarray) -> np.ndarray:
    """The probabilities the first member computes inside an int8 ensemble: its softmax tensors
    (one, or two with flip TTA: the face and its mirror image), dequantized and averaged."""
    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():  # "intended for debugging": it is, here
        warnings.simplefilter("ignore", UserWarning)
        interpreter = Interpreter(str(model), num_threads=1, experimental_preserve_all_tensors=True)
    (face_input,) = interpreter.get_input_details()
    scale, zero = face_input["quantization"]
    out = []
    for start in range(0, len(faces), 50):
        batch = faces[start:start + 50]
        interpreter.resize_tensor_input(face_input["index"], [len(batch), *face_input["shape"][1:]])
        interpreter.allocate_tensors()
        interpreter.set_tensor(face_input["index"],
                               np.round(batch[..., None] / scale + zero).astype(np.int8))
        interpreter.invoke()
        views = [t for t in interpreter.get_tensor_details()
                 if "/member_0" in t["name"] and t["name"].endswith("/Softmax")]
        assert views, f"{model} has no member_0 softmax: not an emocam-convert ensemble"
        probs = [(interpreter.get_tensor(t["index"]).astype(np.float32) - t["quantization"][1])
                 * t["quantization"][0] for t in views]
        out.append(np.mean(probs, axis=0))
    return np.concatenate(out)


@pytest.mark.tensorflow
@pytest.mark.dataset
@pytest.mark.slow
def test_the_bundled_weights_classify_as_the_bundled_int8_model_does(fer2013: Path) -> None:
    """For an ensemble, the weights are its first member's (what a fine-tune starts from), and
    they are compared with that member inside the int8 model."""
    pytest.importorskip("keras")
    from emocam.convert.calibrate import fold_temperature
    from emocam.train.architectures import build, with_centre_crop
    from emocam.train.metrics import top1_agreement
    from emocam.train.predictors import load_predictor

    faces = per_class_limit(load_dataset(fer2013, "test"), 50, seed=3).images
    about = bundled.describe()
    info = load_model_info(BUNDLED_MODEL)
    network, crop, flip, ensemble = bundled.shipped_form(info.architecture)
    assert network == about["architecture"], HOW_TO_FIX
    net = build(about["architecture"], 48, len(about["labels"]))
    bundled.load_into(net)
    # Rebuild the member as emocam-convert baked it: centre crop, fitted temperature, flip TTA.
    if crop:
        net = with_centre_crop(net, crop)
    temperature = info.metrics.get("calibration", {}).get("temperature", 1.0)
    if temperature != 1.0:
        fold_temperature(net, temperature)
    x = faces[..., None].astype(np.float32)
    float_probs = net.predict_on_batch(x)
    if flip:
        float_probs = (float_probs + net.predict_on_batch(x[:, :, ::-1])) / 2
    if ensemble:
        int8_probs = first_member_probabilities(BUNDLED_MODEL, faces)
    else:
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
