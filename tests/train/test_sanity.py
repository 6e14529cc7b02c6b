"""emocam.train.sanity: statistics on synthetic images, warnings on hand-made stats, and real FER-2013
with synthetic alterations (blur, equalization, stretching) that the report must flag."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from emocam.train.sanity import FER_TRAIN_COUNTS, REFERENCES, Stats, check_against_reference, dataset_stats, main
from tests.conftest import fer2013_path

needs_fer = pytest.mark.skipif(
    not fer2013_path().is_file(),
    reason=f"FER-2013 not found at {fer2013_path()}; set EMOCAM_FER2013 to fer2013.zip to run these",
)


def fer_like(split: str = "train", scale: float = 1.0) -> Stats:
    """Stats as the unaltered FER-2013 train split would give them."""
    ref = REFERENCES[0]
    counts = {name: int(round(count * scale)) for name, count in FER_TRAIN_COUNTS.items()}
    return Stats(split, sum(counts.values()), counts, ref.sharpness, ref.contrast, ref.brightness,
                 ref.equalized_share, ref.full_range_share)


def test_stats_of_constant_images() -> None:
    images = np.full((4, 48, 48), 77, dtype=np.uint8)
    stats = dataset_stats(images, np.array([0, 0, 1, 1]), ("angry", "happy"), "train", {"disgust": 3})
    assert (stats.count, stats.sharpness, stats.contrast, stats.brightness) == (4, 0.0, 0.0, 77.0)
    assert stats.class_counts == {"angry": 2, "disgust": 3, "happy": 2}
    assert stats.equalized_share == 0.0 and stats.full_range_share == 0.0


def test_a_ramp_over_all_grey_levels_has_a_flat_histogram() -> None:
    ramp = np.tile(np.linspace(0, 255, 48 * 48).round().astype(np.uint8).reshape(48, 48), (3, 1, 1))
    blocks = np.zeros((3, 48, 48), dtype=np.uint8)
    blocks[:, :, 24:] = 255  # two grey levels only: full range, but far from flat
    stats = dataset_stats(np.concatenate([ramp, blocks]))
    assert stats.equalized_share == pytest.approx(0.5)
    assert stats.full_range_share == 1.0


def test_stats_reject_non_image_arrays() -> None:
    with pytest.raises(ValueError, match="uint8"):
        dataset_stats(np.zeros((2, 48, 48), dtype=np.float32))
    with pytest.raises(ValueError, match="labels"):
        dataset_stats(np.zeros((2, 48, 48), dtype=np.uint8), np.array([0]), ("angry",))


def test_reference_values_pass_their_own_check() -> None:
    assert check_against_reference(fer_like()) == []
    assert check_against_reference(fer_like("test", scale=3589 / 28709)) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"sharpness": 300.0}, "blurred"),
        ({"sharpness": 8000.0}, "sharpened"),
        ({"contrast": 74.0}, "contrast-stretched or equalized"),
        ({"contrast": 30.0}, "washed out"),
        ({"brightness": 170.0}, "brightened or darkened"),
        ({"equalized_share": 0.9, "full_range_share": 1.0}, "histogram-equalized"),
        ({"full_range_share": 1.0}, "contrast-stretched per image"),
    ],
)
def test_altered_pixels_are_flagged(change: dict[str, float], expected: str) -> None:
    warnings = check_against_reference(replace(fer_like(), **change))
    assert len(warnings) == 1 and expected in warnings[0]


def test_class_counts_are_checked() -> None:
    counts = dict(FER_TRAIN_COUNTS, disgust=0, happy=20000)
    stats = replace(fer_like(), class_counts=counts, count=sum(counts.values()))
    warnings = "\n".join(check_against_reference(stats))
    assert "'disgust' has no images" in warnings
    assert "'happy' is" in warnings
    assert "28,709" in warnings  # the total no longer matches FER-2013's train split


def test_too_few_images_skip_the_pixel_checks() -> None:
    stats = replace(fer_like(scale=0.001), sharpness=1.0)
    warnings = check_against_reference(stats)
    assert any("too few" in warning for warning in warnings)
    assert not any("blurred" in warning for warning in warnings)


def test_check_data_on_a_tiny_folder_warns_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    for name in ("angry", "happy"):
        (tmp_path / "train" / name).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(tmp_path / "train" / name / f"{i}.png"), rng.integers(0, 256, (48, 48), dtype=np.uint8))
    assert main([str(tmp_path), "--split", "train", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    (split,) = report["splits"]
    assert report["ok"] is False
    assert split["count"] == 6 and split["class_counts"]["happy"] == 3
    assert any("'fear' has no images" in warning for warning in split["warnings"])


def test_check_data_missing_path_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nope.zip")]) == 2
    assert "nope.zip" in capsys.readouterr().err


@pytest.fixture(scope="module")
def fer_test_images() -> np.ndarray:
    from emocam.train.data import load_dataset

    return load_dataset(fer2013_path(), split="test", classes="seven").images


@pytest.mark.dataset
@needs_fer
def test_unaltered_fer2013_is_not_flagged(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(fer2013_path()), "--split", "test"]) == 0
    assert "ok: looks like unaltered FER-2013" in capsys.readouterr().out


@pytest.mark.dataset
@needs_fer
@pytest.mark.parametrize(
    ("alteration", "expected"),
    [
        (lambda image: cv2.GaussianBlur(image, (0, 0), 1.0), "blurred"),
        (lambda image: cv2.GaussianBlur(image, (0, 0), 0.5), "blurred"),
        (cv2.equalizeHist, "histogram-equalized"),
        (lambda image: cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX), "contrast-stretched per image"),
    ],
    ids=["blur-sigma-1", "blur-sigma-0.5", "equalize-hist", "min-max-stretch"],
)
def test_altered_fer2013_is_flagged(
    fer_test_images: np.ndarray, alteration: Callable[[np.ndarray], np.ndarray], expected: str
) -> None:
    # The same images unaltered pass: test_unaltered_fer2013_is_not_flagged.
    altered = dataset_stats(np.stack([alteration(image) for image in fer_test_images]), split="test")
    assert any(expected in warning for warning in check_against_reference(altered))
