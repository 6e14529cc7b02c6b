"""emocam.train.metrics: hand-checked numbers, the JSON and text forms, and the confusion-matrix PNG."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from emocam.train.metrics import (
    Report,
    classification_report,
    confusion_matrix,
    format_report,
    render_confusion,
    top1_agreement,
    write_confusion_png,
)

LABELS = ("angry", "happy", "surprise")


def one_hot(indices: list[int], classes: int = 3) -> np.ndarray:
    return np.eye(classes, dtype=np.float32)[indices]


@pytest.fixture
def report() -> Report:
    # true:  0 0 0 1 1 2 ; predicted: 0 0 1 1 1 0
    return classification_report([0, 0, 0, 1, 1, 2], one_hot([0, 0, 1, 1, 1, 0]), LABELS)


def test_confusion_matrix_rows_are_true_columns_predicted() -> None:
    matrix = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_confusion_matrix_rejects_out_of_range_and_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="outside 0..2"):
        confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="entries"):
        confusion_matrix([0, 1], [0], 3)


def test_report_numbers_match_a_hand_computation(report: Report) -> None:
    assert report.n == 6
    assert report.accuracy == pytest.approx(4 / 6)
    angry, happy, surprise = (report.per_class[label] for label in LABELS)
    # angry: 2 hits, 3 predicted, 3 true
    assert (angry.precision, angry.recall, angry.support) == (pytest.approx(2 / 3), pytest.approx(2 / 3), 3)
    # happy: 2 hits, 3 predicted, 2 true -> F1 = 2 * (2/3 * 1) / (2/3 + 1) = 0.8
    assert happy.f1 == pytest.approx(0.8)
    # surprise is never predicted: precision 0 rather than NaN
    assert (surprise.precision, surprise.recall, surprise.f1, surprise.support) == (0.0, 0.0, 0.0, 1)
    assert report.macro_f1 == pytest.approx((2 / 3 + 0.8 + 0.0) / 3)
    assert report.confusion_matrix == ((2, 1, 0), (0, 2, 0), (1, 0, 0))


def test_macro_f1_ignores_a_class_absent_from_truth_and_predictions() -> None:
    report = classification_report([0, 1], one_hot([0, 1]), LABELS)
    assert report.macro_f1 == pytest.approx(1.0)
    assert report.per_class["surprise"].support == 0


def test_report_rejects_probabilities_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        classification_report([0, 1], np.zeros((2, 4)), LABELS)
    with pytest.raises(ValueError, match="rows"):
        classification_report([0, 1, 2], one_hot([0, 1]), LABELS)


def test_to_dict_is_plain_json(report: Report) -> None:
    data = json.loads(json.dumps(report.to_dict()))
    assert data["confusion_matrix"] == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert data["per_class"]["happy"]["support"] == 2
    assert data["labels"] == list(LABELS)
    assert {"accuracy", "macro_f1", "n"} <= set(data)


def test_format_report_is_an_aligned_table(report: Report) -> None:
    text = format_report(report)
    assert "accuracy 0.6667" in text
    lines = text.splitlines()
    table = [line for line in lines if line[:1].isalpha() and line.split()[0] in (*LABELS, "class")]
    # A header and three class rows, then the matrix's three rows: the rows of each table line up.
    assert len(table) == 7
    assert len({len(line) for line in table[:4]}) == 1
    matrix_header = lines[lines.index(table[4]) - 1]
    assert matrix_header.split() == list(LABELS)
    assert len({len(line) for line in [matrix_header, *table[4:]]}) == 1
    assert [line.split()[1:] for line in table[4:]] == [["2", "1", "0"], ["0", "2", "0"], ["1", "0", "0"]]


def test_top1_agreement() -> None:
    a = one_hot([0, 1, 2, 2])
    b = one_hot([0, 1, 1, 2]) * 0.9
    assert top1_agreement(a, b) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="same shape"):
        top1_agreement(a, b[:3])


def test_confusion_png_shades_cells_by_row_share(report: Report, tmp_path: Path) -> None:
    path = write_confusion_png(report, tmp_path / "cm.png")
    image = cv2.imread(str(path))
    assert image is not None and image.shape == render_confusion(report).shape
    # Row "happy" is 100% predicted happy: that cell is dark, its neighbour (0%) is white.
    from emocam.train.metrics import _CELL, _LEFT, _TOP  # layout constants: where the cells are

    def corner(i: int, j: int) -> np.ndarray:
        return image[_TOP + i * _CELL + 4, _LEFT + j * _CELL + 4]

    assert corner(1, 1).max() < 160
    assert corner(1, 0).min() == 255


def test_confusion_png_bad_paths_are_clear_errors(report: Report, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must end in .png"):
        write_confusion_png(report, tmp_path / "cm.jpg")
    with pytest.raises(OSError, match="does not exist"):
        write_confusion_png(report, tmp_path / "missing" / "cm.png")
