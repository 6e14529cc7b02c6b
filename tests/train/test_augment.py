"""Data-side augmentation: what each knob does, and that nothing else happens."""

from __future__ import annotations

import numpy as np

from emocam.train.augment import augment_batch
from emocam.train.config import TrainConfig

OFF = TrainConfig(flip=False, rotation_deg=0, shear=0, zoom=0, shift=0, brightness=0, contrast=0, erasing=0, jpeg=0)


def faces(count: int = 16) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (count, 48, 48), dtype=np.uint8)


def test_everything_off_is_the_identity() -> None:
    images = faces()
    out = augment_batch(images, OFF, np.random.default_rng(0))
    assert out.shape == (16, 48, 48, 1) and out.dtype == np.float32
    np.testing.assert_array_equal(out[..., 0], images)


def test_flip_mirrors_about_half_the_images_exactly() -> None:
    images = faces(64)
    cfg = TrainConfig(**{**OFF.to_dict(), "flip": True, "extra_data": ()})
    out = augment_batch(images, cfg, np.random.default_rng(0))[..., 0]
    flipped = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, images, strict=True)]
    unchanged = [np.array_equal(o, i) for o, i in zip(out, images, strict=True)]
    assert all(f or u for f, u in zip(flipped, unchanged, strict=True))
    assert 16 < sum(flipped) < 48


def test_default_augmentation_changes_images_stays_in_range_and_is_seeded() -> None:
    images = faces()
    first = augment_batch(images, TrainConfig(), np.random.default_rng(7))
    again = augment_batch(images, TrainConfig(), np.random.default_rng(7))
    np.testing.assert_array_equal(first, again)
    assert first.min() >= 0.0 and first.max() <= 255.0
    assert np.abs(first[..., 0] - images).mean() > 5.0
