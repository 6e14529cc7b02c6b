"""Dataset loaders: every layout users have, and every way they get it wrong."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from emocam.train.data import (
    SEVEN_CLASSES,
    SIX_CLASSES,
    DataError,
    concat,
    load_dataset,
    per_class_limit,
    split_validation,
)


def face(value: int, size: int = 48) -> np.ndarray:
    """A gradient image whose mean encodes ``value``, so tests can tell images apart."""
    ramp = np.tile(np.arange(size, dtype=np.int32), (size, 1))
    return np.clip(ramp + value, 0, 255).astype(np.uint8)


def write_class_tree(root: Path, per_class: int = 3, classes=SEVEN_CLASSES, suffix: str = ".png") -> None:
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            cv2.imwrite(str(root / name / f"img_{i}{suffix}"), face(10 * k + i))


def test_kaggle_folder_drops_disgust_by_default(tmp_path: Path) -> None:
    write_class_tree(tmp_path / "train")
    ds = load_dataset(tmp_path, "train")
    assert ds.label_names == SIX_CLASSES
    assert ds.images.shape == (18, 48, 48) and ds.images.dtype == np.uint8
    assert ds.dropped == {"disgust": 3}
    assert ds.class_counts() == {name: 3 for name in SIX_CLASSES}


def test_seven_and_merge_disgust(tmp_path: Path) -> None:
    write_class_tree(tmp_path / "train")
    assert load_dataset(tmp_path, "train", "seven").label_names == SEVEN_CLASSES
    merged = load_dataset(tmp_path, "train", "merge-disgust")
    assert merged.class_counts()["angry"] == 6 and not merged.dropped


def test_zip_read_in_place_with_nested_prefix_and_jpeg(tmp_path: Path) -> None:
    write_class_tree(tmp_path / "tree" / "test", suffix=".jpg")
    archive = tmp_path / "archive.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted((tmp_path / "tree").rglob("*.jpg")):
            zf.write(path, "archive/" + str(path.relative_to(tmp_path / "tree")))
    ds = load_dataset(archive, "test", "seven")
    assert len(ds) == 21
    with pytest.raises(DataError, match="no 'train/' folder inside the zip"):
        load_dataset(archive, "train")


def test_csv_usage_and_emotion_ids(tmp_path: Path) -> None:
    rows = ["emotion,pixels,Usage"]
    for emotion in range(7):  # angry, disgust, fear, happy, sad, surprise, neutral
        pixels = " ".join(str(v) for v in face(emotion).ravel())
        rows.append(f"{emotion},{pixels},Training")
        rows.append(f"{emotion},{pixels},PublicTest")
    rows.append("3,1 2 3,Training")  # not a square image: skipped and counted, not a crash
    csv_path = tmp_path / "fer2013.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    train = load_dataset(csv_path, "train", "seven")
    assert len(train) == 7 and train.skipped == 1
    # fer2013.csv numbers neutral 6 and sad 4; our label order is alphabetical.
    sad = train.images[train.labels == SEVEN_CLASSES.index("sad")]
    np.testing.assert_array_equal(sad[0], face(4))
    assert len(load_dataset(csv_path, "publictest", "seven")) == 7
    with pytest.raises(DataError, match="split='valid'"):
        load_dataset(csv_path, "valid")


def test_user_folder_any_size_and_colour(tmp_path: Path) -> None:
    (tmp_path / "happy").mkdir()
    (tmp_path / "sad").mkdir()
    cv2.imwrite(str(tmp_path / "happy" / "a.jpg"), np.full((120, 100, 3), 200, np.uint8))
    cv2.imwrite(str(tmp_path / "sad" / "b.png"), np.full((30, 30), 40, np.uint8))
    ds = load_dataset(tmp_path, "train")
    assert ds.images.shape == (2, 48, 48)
    assert ds.class_counts()["happy"] == 1 and ds.class_counts()["fear"] == 0


def test_corrupt_images_are_skipped_and_counted(tmp_path: Path) -> None:
    write_class_tree(tmp_path / "train", classes=("happy", "sad"))
    (tmp_path / "train" / "happy" / "broken.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "train" / "sad" / "empty.jpg").write_bytes(b"")
    ds = load_dataset(tmp_path, "train")
    assert len(ds) == 6 and ds.skipped == 2
    assert "2 unreadable images skipped" in ds.summary()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda root: (root / "train" / "happy").mkdir(parents=True), "is empty"),
        (lambda root: (root / "train" / "joy").mkdir(parents=True), "unknown class folder"),
        (lambda root: (root / "pictures").mkdir(parents=True), "not a folder of class folders"),
    ],
)
def test_wrong_layouts_name_the_path_and_the_expected_layout(tmp_path: Path, make, message: str) -> None:
    make(tmp_path)
    with pytest.raises(DataError, match=message) as info:
        load_dataset(tmp_path, "train")
    assert str(tmp_path) in str(info.value) and ("expected" in str(info.value) or "empty" in message)


def test_missing_path_and_not_a_zip(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(tmp_path / "nope.zip")
    fake = tmp_path / "fake.zip"
    fake.write_text("hello")
    with pytest.raises(DataError, match="not a readable zip"):
        load_dataset(fake)


def test_cache_round_trip(tmp_path: Path) -> None:
    write_class_tree(tmp_path / "tree" / "train", per_class=2)
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted((tmp_path / "tree").rglob("*.png")):
            zf.write(path, str(path.relative_to(tmp_path / "tree")))
    cache = tmp_path / "cache"
    first = load_dataset(archive, "train", cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 1
    second = load_dataset(archive, "train", cache_dir=cache)
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.labels, second.labels)


def test_split_is_stratified_and_reproducible(tmp_path: Path) -> None:
    write_class_tree(tmp_path / "train", per_class=20)
    ds = load_dataset(tmp_path, "train")
    train_a, val_a = split_validation(ds, 0.25, seed=3)
    train_b, val_b = split_validation(ds, 0.25, seed=3)
    np.testing.assert_array_equal(val_a.images, val_b.images)
    assert val_a.class_counts() == {name: 5 for name in SIX_CLASSES}
    assert len(train_a) + len(val_a) == len(ds)
    _, val_c = split_validation(ds, 0.25, seed=4)
    assert not np.array_equal(val_a.images, val_c.images)
    assert len(per_class_limit(ds, 2)) == 12
    assert len(concat([train_a, val_a])) == len(ds)


@pytest.mark.dataset
def test_real_fer2013_counts(fer2013: Path, tmp_path: Path) -> None:
    train = load_dataset(fer2013, "train", cache_dir=tmp_path)
    assert len(train) == 28273 and train.dropped == {"disgust": 436} and train.skipped == 0
    test = load_dataset(fer2013, "test", "seven", cache_dir=tmp_path)
    assert len(test) == 3589


def test_unreadable_images_are_named_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "mine"
    (folder / "happy").mkdir(parents=True)
    (folder / "sad").mkdir()
    for name in ("happy", "sad"):
        cv2.imwrite(str(folder / name / "good.png"), np.full((48, 48), 100, np.uint8))
    for i in range(4):
        (folder / "sad" / f"broken{i}.png").write_bytes(b"not a png")
    with caplog.at_level(logging.WARNING, logger="emocam.train.data"):
        ds = load_dataset(folder, "train", ("happy", "sad"))
    assert len(ds) == 2 and ds.skipped == 4
    message = " ".join(record.getMessage() for record in caplog.records)
    assert "4 unreadable or corrupt images skipped" in message
    assert str(folder / "sad" / "broken0.png") in message and "and 1 more" in message
