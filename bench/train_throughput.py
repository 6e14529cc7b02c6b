"""Training throughput per recipe choice, on this machine: images per second of one SGD step.

    python bench/train_throughput.py [--architecture vgg-m-pool resnet18-n] [--steps 12]

For each architecture it times train steps (batch 128, random pixels, after 3 warm-up steps) with
float32 or mixed_bfloat16, on whole 48x48 faces or 40x40 crops, all in one process so the ratios
compare; it prints the median step time, images/s and the ratio to float32 on whole faces.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def step_seconds(architecture: str, precision: str, size: int, steps: int, batch: int) -> float:
    import keras
    import numpy as np

    from emocam.train.architectures import build

    keras.mixed_precision.set_global_policy(precision)
    net = build(architecture, size, 6)
    keras.mixed_precision.set_global_policy("float32")
    net.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True), loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch, size, size, 1)).astype("float32")
    y = np.eye(6, dtype="float32")[rng.integers(0, 6, batch)]
    times = []
    for i in range(steps + 3):
        started = time.perf_counter()
        net.train_on_batch(x, y)
        if i >= 3:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", nargs="+", default=["vgg-m-pool"])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    for architecture in args.architecture:
        base = None
        for precision in ("float32", "mixed_bfloat16"):
            for size in (48, 40):
                seconds = step_seconds(architecture, precision, size, args.steps, args.batch_size)
                base = base or seconds
                print(f"{architecture:12} {precision:15} {size}x{size}: {seconds * 1000:7.1f} ms/step, "
                      f"{args.batch_size / seconds:6.0f} images/s, x{base / seconds:.2f}", flush=True)


if __name__ == "__main__":
    main()
