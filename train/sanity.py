"""The cheap dataset sanity report: is this FER-2013 copy the unaltered one?

Many public copies of FER-2013 circulate blurred, contrast-stretched or histogram-equalized, and
a model trained on them learns the alteration. A few image statistics per split, compared with
those of the unaltered dataset, catch that before training: sharpness (median variance of the
Laplacian), contrast (median per-image pixel std), brightness (median per-image mean), the share
of images whose histogram is flat (what equalization leaves) and the share spanning the full
0..255 range (what per-image stretching leaves), plus the class counts.

``emocam-train check-data DATA [--split train|test|all] [--json]`` prints the report; it exits 0
when nothing looks off, 1 when there are warnings, 2 when DATA cannot be read.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from emocam.train.data import SEVEN_CLASSES, DataError, load_dataset

log = logging.getLogger(__name__)

# An image "looks equalized" when its pixel CDF stays this close (Kolmogorov-Smirnov distance) to
# the uniform CDF. Measured on FER-2013: 0.1% of unaltered images pass, 87-91% after
# cv2.equalizeHist (the rest are images with few distinct grey levels).
FLAT_HISTOGRAM_KS = 0.05
# An image "spans the full range" when its darkest pixel is <= 2 and its brightest >= 253.
FULL_RANGE_LOW, FULL_RANGE_HIGH = 2, 253
# Below this many images a median is too noisy to compare; only class counts are checked.
MIN_IMAGES_FOR_PIXEL_CHECKS = 50
_CHUNK = 4096  # images per vectorized histogram pass; bounds memory on the full train split


@dataclass(frozen=True, slots=True)
class Stats:
    """Image statistics of one split (medians over images, so outliers do not move them)."""

    split: str
    count: int
    class_counts: Mapping[str, int]
    sharpness: float
    contrast: float
    brightness: float
    equalized_share: float
    full_range_share: float

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["class_counts"] = dict(self.class_counts)
        return data


@dataclass(frozen=True, slots=True)
class Reference:
    """The statistics of one split of the real, unaltered FER-2013."""

    name: str
    sharpness: float
    contrast: float
    brightness: float
    equalized_share: float
    full_range_share: float


# Measured once on /work/shared/datasets/fer2013.zip (unaltered; see its README) with this module:
#     python -m emocam.train.sanity ../shared/datasets/fer2013.zip --split all --json
# train/ holds lossless PNGs (the original csv pixels), test/ Kaggle's JPEGs of PublicTest. JPEG
# artefacts add high frequencies, so the test/ JPEGs measure slightly *sharper* than the PNGs;
# both are references and a copy is judged against the span of the two.
REFERENCES = (
    Reference("FER-2013 train/ (lossless PNG)", sharpness=2032.0, contrast=53.62, brightness=129.52,
              equalized_share=0.0007, full_range_share=0.2052),
    Reference("FER-2013 test/ (Kaggle JPEG)", sharpness=2149.9, contrast=53.60, brightness=129.96,
              equalized_share=0.0006, full_range_share=0.2204),
)

# Class counts of FER-2013 (from the dataset README, which matches the original fer2013.csv).
FER_TRAIN_COUNTS: Mapping[str, int] = {
    "angry": 3995, "disgust": 436, "fear": 4097, "happy": 7215, "neutral": 4965, "sad": 4830, "surprise": 3171,
}
# Image counts of the known FER-2013 splits: Training; PublicTest or PrivateTest; both halves (the
# test/ of Kaggle's archive.zip); everything.
FER_SPLIT_SIZES: Mapping[str, tuple[int, ...]] = {
    "train": (28709,), "test": (3589, 7178), "publictest": (3589,), "privatetest": (3589,), "all": (35887,),
}

# Warning thresholds, relative to the span of the references. Measured effects on FER-2013:
# Gaussian blur sigma 0.5 -> sharpness x0.45, a 3x3 blur x0.15, JPEG re-encoding at quality 50 x0.83;
# CLAHE x3.8, equalizeHist x2.2 and contrast (std) 54 -> 74; per-image min-max stretch leaves
# contrast at 60 but full_range_share 0.21 -> 1.0.
SHARPNESS_LOW = 0.6
SHARPNESS_HIGH = 2.0
CONTRAST_LOW = 0.75
CONTRAST_HIGH = 1.2
BRIGHTNESS_SHIFT = 20.0  # grey levels
EQUALIZED_SHARE_MAX = 0.10
FULL_RANGE_SHARE_MAX = 0.45
CLASS_SHARE_RATIO = 1.5  # a class's share of the split vs its FER-2013 share, either way
SPLIT_SIZE_TOLERANCE = 0.01


def _laplacian_variance(images: np.ndarray) -> np.ndarray:
    return np.array([cv2.Laplacian(image, cv2.CV_64F).var() for image in images], dtype=np.float64)


def _flat_histogram_distance(images: np.ndarray) -> np.ndarray:
    """Per image, the largest gap between its pixel CDF and the uniform CDF over 0..255."""
    pixels_per_image = images.shape[1] * images.shape[2]
    uniform = np.arange(1, 257, dtype=np.float64) / 256
    out = np.empty(len(images), dtype=np.float64)
    for start in range(0, len(images), _CHUNK):
        chunk = images[start : start + _CHUNK].reshape(-1, pixels_per_image).astype(np.int64)
        # One bincount for the whole chunk: offset each image's pixels into its own 256 bins.
        offsets = (np.arange(len(chunk), dtype=np.int64) * 256)[:, None]
        hist = np.bincount((chunk + offsets).ravel(), minlength=256 * len(chunk)).reshape(len(chunk), 256)
        cdf = np.cumsum(hist, axis=1) / pixels_per_image
        out[start : start + len(chunk)] = np.abs(cdf - uniform).max(axis=1)
    return out


def dataset_stats(
    images: np.ndarray,
    labels: np.ndarray | None = None,
    label_names: Sequence[str] = (),
    split: str = "",
    extra_counts: Mapping[str, int] | None = None,
) -> Stats:
    """Statistics of (N, H, W) uint8 images; class counts from ``labels`` indexing ``label_names``.

    ``extra_counts`` adds classes the loader counted but did not keep (its ``dropped``).
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"expected (N, H, W) uint8 images, got {images.shape} {images.dtype}")
    counts: dict[str, int] = {}
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (len(images),):
            raise ValueError(f"expected {len(images)} labels, got shape {labels.shape}")
        found = np.bincount(labels.astype(np.int64), minlength=len(label_names))
        counts = {str(name): int(found[i]) for i, name in enumerate(label_names)}
    for name, count in (extra_counts or {}).items():
        counts[name] = counts.get(name, 0) + int(count)
    if len(images) == 0:
        nan = float("nan")
        return Stats(split, 0, counts, nan, nan, nan, nan, nan)
    flat = images.reshape(len(images), -1)
    return Stats(
        split=split,
        count=len(images),
        class_counts=dict(sorted(counts.items())),
        sharpness=float(np.median(_laplacian_variance(images))),
        contrast=float(np.median(flat.std(axis=1))),
        brightness=float(np.median(flat.mean(axis=1))),
        equalized_share=float(np.mean(_flat_histogram_distance(images) < FLAT_HISTOGRAM_KS)),
        full_range_share=float(np.mean((flat.min(axis=1) <= FULL_RANGE_LOW) & (flat.max(axis=1) >= FULL_RANGE_HIGH))),
    )


def _span(attribute: str) -> tuple[float, float]:
    values = [getattr(reference, attribute) for reference in REFERENCES]
    return min(values), max(values)


def _pixel_warnings(stats: Stats) -> list[str]:
    where = f"{stats.split or 'data'}:"
    warnings = []
    low, high = _span("sharpness")
    if stats.sharpness < SHARPNESS_LOW * low:
        warnings.append(
            f"{where} sharpness {stats.sharpness:.0f} is far below FER-2013's {low:.0f}-{high:.0f}: "
            "this copy looks blurred; download the unaltered dataset"
        )
    elif stats.sharpness > SHARPNESS_HIGH * high:
        warnings.append(
            f"{where} sharpness {stats.sharpness:.0f} is far above FER-2013's {low:.0f}-{high:.0f}: "
            "this copy looks sharpened, noisy or locally equalized (CLAHE)"
        )
    low, high = _span("contrast")
    if stats.contrast < CONTRAST_LOW * low:
        warnings.append(
            f"{where} contrast (median pixel std) {stats.contrast:.1f} is far below FER-2013's "
            f"{low:.1f}-{high:.1f}: this copy looks washed out or contrast-reduced"
        )
    elif stats.contrast > CONTRAST_HIGH * high:
        warnings.append(
            f"{where} contrast (median pixel std) {stats.contrast:.1f} is far above FER-2013's "
            f"{low:.1f}-{high:.1f}: this copy looks contrast-stretched or equalized"
        )
    low, high = _span("brightness")
    if not low - BRIGHTNESS_SHIFT <= stats.brightness <= high + BRIGHTNESS_SHIFT:
        warnings.append(
            f"{where} brightness (median pixel mean) {stats.brightness:.1f} is far from FER-2013's "
            f"{low:.1f}-{high:.1f}: this copy looks brightened or darkened"
        )
    equalized = stats.equalized_share > EQUALIZED_SHARE_MAX
    if equalized:
        warnings.append(
            f"{where} {stats.equalized_share:.0%} of the images have a flat histogram (FER-2013: "
            f"{_span('equalized_share')[1]:.1%}): this copy looks histogram-equalized"
        )
    # Equalized images span the full range too; one warning says it.
    if not equalized and stats.full_range_share > FULL_RANGE_SHARE_MAX:
        low, high = _span("full_range_share")
        warnings.append(
            f"{where} {stats.full_range_share:.0%} of the images span the full 0..255 range "
            f"(FER-2013: {low:.0%}-{high:.0%}): this copy looks contrast-stretched per image"
        )
    return warnings


def _count_warnings(stats: Stats) -> list[str]:
    where = f"{stats.split or 'data'}:"
    warnings = []
    sizes = FER_SPLIT_SIZES.get(stats.split.lower(), ())
    if sizes and not any(abs(stats.count - size) <= SPLIT_SIZE_TOLERANCE * size for size in sizes):
        known = " or ".join(f"{size:,}" for size in sizes)
        warnings.append(
            f"{where} {stats.count:,} images, but FER-2013's {stats.split} split has {known}: "
            "a partial copy, or not FER-2013"
        )
    total_reference = sum(FER_TRAIN_COUNTS.values())
    counted = sum(stats.class_counts.values())
    for name in sorted(set(stats.class_counts) - set(FER_TRAIN_COUNTS)):
        warnings.append(f"{where} class {name!r} is not a FER-2013 class ({', '.join(FER_TRAIN_COUNTS)})")
    if not stats.class_counts:
        return warnings
    for name, reference in FER_TRAIN_COUNTS.items():
        count = stats.class_counts.get(name, 0)
        expected_share = reference / total_reference
        if count == 0:
            warnings.append(f"{where} class {name!r} has no images (FER-2013: {expected_share:.1%} of each split)")
            continue
        share = count / counted
        expected = expected_share * counted
        # Ratio test for large splits; the sqrt term keeps sampling noise of small ones quiet.
        far = not 1 / CLASS_SHARE_RATIO <= share / expected_share <= CLASS_SHARE_RATIO
        if far and abs(count - expected) > 3 * math.sqrt(expected):
            warnings.append(
                f"{where} class {name!r} is {share:.1%} of the images ({count:,}); "
                f"in FER-2013 it is {expected_share:.1%}"
            )
    return warnings


def check_against_reference(stats: Stats) -> list[str]:
    """Warnings where ``stats`` differ clearly from the unaltered FER-2013; empty when all is well."""
    if stats.count == 0:
        return [f"{stats.split or 'data'}: no images"]
    warnings = _count_warnings(stats)
    if stats.count < MIN_IMAGES_FOR_PIXEL_CHECKS:
        warnings.append(
            f"{stats.split or 'data'}: only {stats.count} images; too few to compare sharpness and contrast"
        )
        return warnings
    return warnings + _pixel_warnings(stats)


def format_stats(stats: Stats, warnings: Sequence[str]) -> str:
    """The human-readable report of one split."""
    lines = [
        f"{stats.split or 'data'}: {stats.count:,} images",
        "  classes:    " + ", ".join(f"{name} {count:,}" for name, count in stats.class_counts.items()),
        f"  sharpness:  {stats.sharpness:8.1f}   (median variance of the Laplacian; FER-2013 "
        f"{_span('sharpness')[0]:.0f}-{_span('sharpness')[1]:.0f})",
        f"  contrast:   {stats.contrast:8.2f}   (median pixel std; FER-2013 "
        f"{_span('contrast')[0]:.1f}-{_span('contrast')[1]:.1f})",
        f"  brightness: {stats.brightness:8.2f}   (median pixel mean; FER-2013 "
        f"{_span('brightness')[0]:.1f}-{_span('brightness')[1]:.1f})",
        f"  flat histogram: {stats.equalized_share:6.1%}   full range: {stats.full_range_share:6.1%}",
    ]
    lines += [f"  WARNING {warning}" for warning in warnings] or ["  ok: looks like unaltered FER-2013"]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emocam-train check-data",
        description="Class counts and image statistics of a FER-2013 copy, compared with the unaltered "
        "dataset, to catch blurred, contrast-stretched or equalized downloads before training. "
        "Exit status: 0 all well, 1 warnings, 2 unreadable data.",
    )
    parser.add_argument("data", type=Path, help="Kaggle-layout folder or .zip, fer2013.csv, or <class>/ folder")
    parser.add_argument("--split", choices=("train", "test", "all"), default="all", help="which split (default: all)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed usage to stderr; hand back its status
        return int(exc.code or 0)
    splits = ("train", "test") if args.split == "all" else (args.split,)
    results: list[tuple[Stats, list[str]]] = []
    for split in splits:
        log.info("measuring %s split of %s", split, args.data)
        try:
            # Seven classes, so a copy that lacks or adds one is counted, not silently dropped.
            dataset = load_dataset(args.data, split=split, classes=SEVEN_CLASSES)
        except DataError as exc:
            print(f"emocam-train check-data: {exc}", file=sys.stderr)
            return 2
        stats = dataset_stats(dataset.images, dataset.labels, dataset.label_names, split, dataset.dropped)
        results.append((stats, check_against_reference(stats)))
        if dataset.skipped:
            results[-1][1].append(f"{split}: {dataset.skipped} unreadable images were skipped")
    warned = any(warnings for _, warnings in results)
    if args.json:
        report = {
            "data": str(args.data),
            "ok": not warned,
            "splits": [{**stats.to_dict(), "warnings": warnings} for stats, warnings in results],
        }
        print(json.dumps(report, indent=2))
    else:
        print("\n\n".join(format_stats(stats, warnings) for stats, warnings in results))
    return 1 if warned else 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    sys.exit(main())
