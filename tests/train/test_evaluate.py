"""emocam.train.predictors and emocam.train.evaluate: fakes for the logic, the bundled int8 model and a tiny
Keras model for the real paths, and the CLI's JSON and error contract."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from emocam.edge.vision.model_info import BUNDLED_MODEL
from emocam.train.data import Dataset, load_dataset, split_validation
from emocam.train.evaluate import evaluate, main
from emocam.train.predictors import EvaluationError, TflitePredictor, ensemble, load_predictor, with_flip_tta
from tests.conftest import fer2013_path

REPO = Path(__file__).resolve().parents[2]
LABELS = ("angry", "happy", "surprise")
# FER-2013 PublicTest counts (the dataset README), to know what a model's labels keep of test/.
FER_TEST_COUNTS = {"angry": 467, "disgust": 56, "fear": 496, "happy": 895, "neutral": 607, "sad": 653, "surprise": 415}


class BrightnessPredictor:
    """Class = mean pixel // 50: a fake whose right answers the test controls."""

    labels = LABELS

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        index = np.clip(np.asarray(images).reshape(len(images), -1).mean(axis=1) // 50, 0, 2).astype(int)
        return np.eye(3, dtype=np.float32)[index]


class LeftRightPredictor:
    """[1, 0] when the left half is brighter, else [0, 1]: a mirror image swaps the answer."""

    labels = ("angry", "happy")

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        batch = np.asarray(images, dtype=np.float32).reshape(len(images), 48, 48)
        left_brighter = batch[:, :, :24].mean(axis=(1, 2)) > batch[:, :, 24:].mean(axis=(1, 2))
        return np.stack([left_brighter, ~left_brighter], axis=1).astype(np.float32)


def faces(*values: int) -> np.ndarray:
    return np.stack([np.full((48, 48), value, dtype=np.uint8) for value in values])


def test_evaluate_scores_against_the_models_labels() -> None:
    dataset = Dataset(faces(25, 75, 125, 125), np.array([0, 1, 2, 0]), LABELS, "fake")
    report = evaluate(BrightnessPredictor(), dataset)
    assert report.n == 4 and report.accuracy == pytest.approx(0.75)
    assert report.confusion_matrix[0] == (1, 0, 1)


def test_evaluate_matches_labels_by_name_not_position() -> None:
    # The data's label order differs from the model's; indices must be remapped, not trusted.
    dataset = Dataset(faces(125, 25), np.array([0, 1]), ("surprise", "angry"), "fake")
    assert evaluate(BrightnessPredictor(), dataset).accuracy == 1.0


def test_evaluate_refuses_data_classes_the_model_lacks() -> None:
    dataset = Dataset(faces(25), np.array([0]), ("disgust",), "fake")
    with pytest.raises(EvaluationError, match="disgust"):
        evaluate(BrightnessPredictor(), dataset)


def test_flip_tta_averages_the_image_and_its_mirror() -> None:
    image = np.zeros((1, 48, 48), dtype=np.uint8)
    image[:, :, :24] = 200
    assert LeftRightPredictor().probabilities(image).tolist() == [[1.0, 0.0]]
    tta = with_flip_tta(LeftRightPredictor())
    assert tta.labels == ("angry", "happy")
    assert tta.probabilities(image).tolist() == [[0.5, 0.5]]


class ConstantPredictor:
    def __init__(self, probabilities: list[float], labels: tuple[str, ...] = ("angry", "happy")) -> None:
        self.labels, self._row = labels, np.array(probabilities, dtype=np.float32)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return np.tile(self._row, (len(images), 1))


def test_ensemble_averages_its_members_probabilities() -> None:
    averaged = ensemble([ConstantPredictor([1.0, 0.0]), ConstantPredictor([0.2, 0.8]), LeftRightPredictor()])
    image = np.zeros((2, 48, 48), dtype=np.uint8)
    image[:, :, :24] = 200  # LeftRightPredictor says [1, 0]
    assert averaged.labels == ("angry", "happy")
    assert averaged.probabilities(image) == pytest.approx(np.array([[2.2 / 3, 0.8 / 3]] * 2))
    single = ConstantPredictor([0.5, 0.5])
    assert ensemble([single]) is single


def test_ensemble_refuses_members_with_other_labels() -> None:
    with pytest.raises(EvaluationError, match="same classes"):
        ensemble([ConstantPredictor([1.0, 0.0]), ConstantPredictor([1.0, 0.0], labels=("happy", "angry"))])


def test_cli_ensemble_of_a_model_with_itself_scores_as_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_kaggle_folder(tmp_path / "data", {"angry": 3, "happy": 3, "sad": 3})
    assert main([str(BUNDLED_MODEL), str(data), "--json", "--threads", "1"]) == 0
    single = json.loads(capsys.readouterr().out)
    assert main([str(BUNDLED_MODEL), str(data), "--json", "--threads", "1", "--ensemble-with", str(BUNDLED_MODEL)]) == 0
    captured = capsys.readouterr()
    doubled = json.loads(captured.out)
    assert doubled["ensemble_with"] == [str(BUNDLED_MODEL)] and single["ensemble_with"] == []
    assert doubled["confusion_matrix"] == single["confusion_matrix"]
    assert f"{BUNDLED_MODEL} + {BUNDLED_MODEL}" in captured.err


@pytest.mark.parametrize(
    ("name", "message"),
    [("missing.tflite", "does not exist"), ("model.onnx", "unknown suffix"), ("run", "without best.keras")],
)
def test_load_predictor_bad_paths_are_clear_errors(tmp_path: Path, name: str, message: str) -> None:
    (tmp_path / "model.onnx").write_bytes(b"x")
    (tmp_path / "run").mkdir()
    with pytest.raises(EvaluationError, match=message) as caught:
        load_predictor(tmp_path / name)
    assert str(tmp_path / name) in str(caught.value)


def test_a_tflite_without_sidecar_is_a_clear_error(tmp_path: Path) -> None:
    model = tmp_path / "model.tflite"
    model.write_bytes(BUNDLED_MODEL.read_bytes())
    with pytest.raises(EvaluationError, match="sidecar"):
        load_predictor(model)


def test_a_keras_file_that_is_not_a_zip_is_a_clear_error(tmp_path: Path) -> None:
    model = tmp_path / "best.keras"
    model.write_text("not a model")
    with pytest.raises(EvaluationError, match="not a Keras .keras file"):
        load_predictor(model)


class RecordingClassifier:
    """Wraps the real classifier and records the batch sizes it is called with."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.sizes = inner, []
        self.labels = inner.labels

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        self.sizes.append(len(batch))
        return self.inner.probabilities(batch)


def test_tflite_predictor_runs_the_device_classifier_in_chunks() -> None:
    predictor = load_predictor(BUNDLED_MODEL, num_threads=1, batch_size=3)
    assert isinstance(predictor, TflitePredictor)
    recorder = RecordingClassifier(predictor._classifier)
    predictor._classifier = recorder
    images = np.random.default_rng(0).integers(0, 256, (7, 48, 48), dtype=np.uint8)
    probs = predictor.probabilities(images)
    assert recorder.sizes == [3, 3, 1]
    assert probs.shape == (7, len(predictor.labels)) and probs.dtype == np.float32
    np.testing.assert_array_equal(probs, recorder.inner.probabilities(images))


def write_kaggle_folder(root: Path, counts: dict[str, int], split: str = "test") -> Path:
    rng = np.random.default_rng(1)
    for name, count in counts.items():
        folder = root / split / name
        folder.mkdir(parents=True)
        for i in range(count):
            cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 256, (48, 48), dtype=np.uint8))
    return root


def test_cli_json_is_one_object_and_skips_classes_the_model_lacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_kaggle_folder(tmp_path / "data", {"angry": 2, "disgust": 1, "happy": 3})
    png = tmp_path / "cm.png"
    assert "disgust" not in load_predictor(BUNDLED_MODEL).labels  # the six-class bundled model
    code = main([str(BUNDLED_MODEL), str(data), "--json", "--flip-tta", "--confusion-png", str(png), "--threads", "1"])
    captured = capsys.readouterr()
    assert code == 0
    result = json.loads(captured.out)  # fails on anything but exactly one JSON document
    assert {"accuracy", "macro_f1", "n", "per_class", "confusion_matrix", "labels", "model", "data"} <= set(result)
    assert result["n"] == 5 and result["skipped"] == {"disgust": 1} and result["flip_tta"] is True
    assert result["per_class"]["happy"]["support"] == 3
    assert "skipped 1 'disgust'" in captured.err and "accuracy" in captured.err
    assert cv2.imread(str(png)) is not None


def test_cli_validation_split_is_the_one_fit_held_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_kaggle_folder(tmp_path / "data", {"angry": 8, "happy": 12, "sad": 10}, split="train")
    labels = load_predictor(BUNDLED_MODEL).labels
    expected = split_validation(load_dataset(data, "train", labels, cache_dir=tmp_path), 0.2, 5, "pixels")[1]
    code = main([str(BUNDLED_MODEL), str(data), "--split", "validation", "--val-fraction", "0.2", "--seed", "5",
                 "--json", "--threads", "1"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["n"] == len(expected) == 6
    assert {c: result["per_class"][c]["support"] for c in ("angry", "happy", "sad")} == {
        c: int((expected.labels == labels.index(c)).sum()) for c in ("angry", "happy", "sad")}
    assert result["data"].endswith("[val 20% by duplicate group]")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tmp}/missing.tflite", "{data}"], "missing.tflite does not exist"),
        (["{model}", "{tmp}/nope"], "nope does not exist"),
        (["{model}", "{data}", "--confusion-png", "{tmp}/cm.jpg"], "must end in .png"),
        (["{model}", "{data}", "--confusion-png", "{tmp}/no/cm.png"], "does not exist"),
        (["{model}", "{data}", "--batch-size", "0"], "batch size"),
    ],
)
def test_cli_bad_input_exits_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    data = write_kaggle_folder(tmp_path / "data", {"angry": 1, "happy": 1})
    values = {"tmp": tmp_path, "data": data, "model": BUNDLED_MODEL}
    assert main([arg.format(**values) for arg in args]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""
    assert "Traceback" not in captured.err


def test_tflite_evaluation_does_not_import_tensorflow(tmp_path: Path) -> None:
    data = write_kaggle_folder(tmp_path / "data", {"angry": 1, "happy": 1})
    code = (
        "import sys; from emocam.train.evaluate import main; "
        f"assert main([{str(BUNDLED_MODEL)!r}, {str(data)!r}, '--json', '--threads', '1']) == 0; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TensorFlow was imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


# --- a real Keras model -------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    keras = pytest.importorskip("keras", reason="Keras/TensorFlow not installed (pip install -e .[train])")
    run = tmp_path_factory.mktemp("run")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, strides=4, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(len(LABELS), activation="softmax")(x)
    keras.Model(inputs, outputs).save(run / "best.keras")
    (run / "labels.json").write_text(json.dumps(list(LABELS)))
    yield run


@pytest.mark.tensorflow
def test_keras_run_directory_predicts_like_the_model(keras_run: Path) -> None:
    import keras

    predictor = load_predictor(keras_run, batch_size=2)
    assert predictor.labels == LABELS
    images = np.random.default_rng(2).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    probs = predictor.probabilities(images)
    model = keras.saving.load_model(keras_run / "best.keras")
    expected = model.predict(images[..., None].astype(np.float32), verbose=0)
    assert probs.shape == (5, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.tensorflow
def test_keras_labels_come_from_config_json_when_labels_json_is_absent(keras_run: Path, tmp_path: Path) -> None:
    (tmp_path / "best.keras").write_bytes((keras_run / "best.keras").read_bytes())
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "x", "labels": ["fear", "happy", "sad"]}))
    assert load_predictor(tmp_path / "best.keras").labels == ("fear", "happy", "sad")


@pytest.mark.tensorflow
def test_keras_labels_in_config_json_that_are_no_list_of_names_are_a_clear_error(keras_run: Path,
                                                                                   tmp_path: Path) -> None:
    (tmp_path / "best.keras").write_bytes((keras_run / "best.keras").read_bytes())
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "x", "labels": "fear,happy"}))
    with pytest.raises(EvaluationError, match="config.json must hold a list of 2 or more label names"):
        load_predictor(tmp_path / "best.keras")


@pytest.mark.tensorflow
@pytest.mark.parametrize(
    ("labels", "message"),
    [(None, "no labels for"), (["angry", "happy"], "output"), ("oops", "not readable JSON")],
)
def test_keras_label_problems_are_clear_errors(keras_run: Path, tmp_path: Path, labels: Any, message: str) -> None:
    (tmp_path / "best.keras").write_bytes((keras_run / "best.keras").read_bytes())
    if labels == "oops":
        (tmp_path / "labels.json").write_text("[oops")
    elif labels is not None:
        (tmp_path / "labels.json").write_text(json.dumps(labels))
    with pytest.raises(EvaluationError, match=message):
        load_predictor(tmp_path)


@pytest.mark.tensorflow
def test_a_keras_model_with_the_wrong_input_is_a_clear_error(keras_run: Path, tmp_path: Path) -> None:
    import keras

    inputs = keras.Input((64, 64, 1))
    outputs = keras.layers.Dense(len(LABELS), activation="softmax")(keras.layers.Flatten()(inputs))
    keras.Model(inputs, outputs).save(tmp_path / "best.keras")
    (tmp_path / "labels.json").write_text(json.dumps(list(LABELS)))
    with pytest.raises(EvaluationError, match=r"takes input \(64, 64, 1\)"):
        load_predictor(tmp_path)


@pytest.mark.tensorflow
def test_a_zip_that_is_not_a_keras_model_is_a_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("keras", reason="Keras/TensorFlow not installed (pip install -e .[train])")
    with zipfile.ZipFile(tmp_path / "best.keras", "w") as archive:
        archive.writestr("notes.txt", "hello")
    (tmp_path / "labels.json").write_text(json.dumps(list(LABELS)))
    with pytest.raises(EvaluationError, match="not a loadable Keras model"):
        load_predictor(tmp_path / "best.keras")


@pytest.mark.tensorflow
def test_cli_evaluates_a_keras_run(keras_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_kaggle_folder(tmp_path / "data", {"angry": 2, "happy": 2, "surprise": 2, "sad": 1})
    assert main([str(keras_run), str(data), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 6 and result["skipped"] == {"sad": 1} and result["labels"] == list(LABELS)


# --- FER-2013 -----------------------------------------------------------------------------


@pytest.mark.dataset
@pytest.mark.skipif(
    not fer2013_path().is_file(),
    reason=f"FER-2013 not found at {fer2013_path()}; set EMOCAM_FER2013 to fer2013.zip to run this",
)
def test_bundled_model_on_fer2013_test(capsys: pytest.CaptureFixture[str]) -> None:
    labels = load_predictor(BUNDLED_MODEL).labels
    assert main([str(BUNDLED_MODEL), str(fer2013_path()), "--split", "test", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == sum(FER_TEST_COUNTS[label] for label in labels)
    assert result["skipped"] == {name: n for name, n in FER_TEST_COUNTS.items() if name not in labels}
    assert sum(map(sum, result["confusion_matrix"])) == result["n"]
