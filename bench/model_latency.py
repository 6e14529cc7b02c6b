"""Per-face latency of emotion models through the device's own classifier, single-threaded.

    python bench/model_latency.py edge/models/emocam-fer6.tflite [other.tflite ...]

Prints, for each model: file size, median and 90th-percentile milliseconds per face (batch of 1),
and per face in a batch of 4 (one call for all faces of a frame, as the daemon does). Each model
runs in the same process, alternating, so the ratios between them hold even on a noisy machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emocam.edge.vision.classifier import EmotionClassifier  # noqa: E402


def time_calls(classifier: EmotionClassifier, faces: np.ndarray, rounds: int) -> list[float]:
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        classifier.probabilities(faces)
        timings.append((time.perf_counter() - started) / len(faces))
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    rng = np.random.default_rng(0)
    one = rng.integers(0, 256, (1, 48, 48), dtype=np.uint8)
    four = rng.integers(0, 256, (4, 48, 48), dtype=np.uint8)
    classifiers = [EmotionClassifier(path, num_threads=1) for path in args.models]
    results: dict[Path, dict[str, list[float]]] = {p: {"1": [], "4": []} for p in args.models}
    for classifier in classifiers:  # warm-up: first calls allocate and pack weights
        time_calls(classifier, one, 20)
        time_calls(classifier, four, 5)
    for _ in range(10):  # interleave so machine noise hits every model alike
        for path, classifier in zip(args.models, classifiers, strict=True):
            results[path]["1"] += time_calls(classifier, one, args.rounds // 10)
            results[path]["4"] += time_calls(classifier, four, args.rounds // 40 + 1)
    print(f"{'model':<40} {'KB':>7} {'ms/face b1 p50':>15} {'p90':>7} {'ms/face b4 p50':>15}")
    for path, classifier in zip(args.models, classifiers, strict=True):
        b1 = np.array(results[path]["1"]) * 1000
        b4 = np.array(results[path]["4"]) * 1000
        print(
            f"{path.name:<40} {path.stat().st_size / 1024:7.0f} {np.median(b1):15.3f} "
            f"{np.percentile(b1, 90):7.3f} {np.median(b4):15.3f}   "
            f"({classifier.info.input.dtype}, {classifier.runtime})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
