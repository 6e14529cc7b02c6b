"""What fine-tuning on "your own faces" gains on faces it has not seen, and what it costs on FER-2013.

    python bench/fine_tune_gain.py bundled DATA.zip [--work /tmp/fine-tune-gain]
    python bench/fine_tune_gain.py BASE_RUN DATA.zip [--work /tmp/fine-tune-gain]

No identity-labelled faces install offline, so this is the issue's synthetic case: one "camera"
(a fixed, dim, soft, noisy, low-resolution JPEG look, applied to every face) and two disjoint
sets of faces seen through it, both drawn from the base's own validation split (never trained
on; a face with a pixel-identical twin in its training split is left out):

- ``user/``: the folder a user would collect, ``--user-per-class`` faces a class;
- ``heldout/``: other faces through the same camera, ``--heldout-per-class`` a class, scored only.

The replay sample (``--replay-from``) is written from the base's *training* split, so no held-out
face reaches training. It prints, from the real CLIs: the base and the fine-tuned model on the
held-out faces and on FER-2013's test split (PublicTest), and how long the fine-tune took.

With ``bundled`` the base is the model emocam ships, and both sides are what a Pi runs: the
bundled int8 .tflite against the fine-tune converted to int8 by emocam-convert with the same flip
TTA, from the user folder alone. With a run directory both sides are float Keras models.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emocam.edge.vision.model_info import BUNDLED_MODEL  # noqa: E402
from emocam.train import bundled  # noqa: E402
from emocam.train.commands import EMOCAM_CONVERT, EMOCAM_TRAIN  # noqa: E402
from emocam.train.data import duplicate_groups, training_split  # noqa: E402
from emocam.train.run import ValidationSplit, read_config  # noqa: E402


def camera(face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One kitchen camera's look: dim (gamma 1.6), soft (a 32 px sensor crop, blurred), noisy, JPEG q70."""
    dim = (255.0 * (face / 255.0) ** 1.6).astype(np.float32)
    small = cv2.resize(dim, (32, 32), interpolation=cv2.INTER_AREA)
    soft = cv2.GaussianBlur(cv2.resize(small, (48, 48), interpolation=cv2.INTER_LINEAR), (0, 0), 0.6)
    noisy = np.clip(soft + rng.normal(0.0, 5.0, soft.shape), 0, 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, 70])
    assert ok
    return cv2.imdecode(jpeg, cv2.IMREAD_GRAYSCALE)


def write(folder: Path, images: np.ndarray, labels: np.ndarray, names: tuple[str, ...]) -> None:
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        target = folder / names[label]
        target.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target / f"{index:05d}.png"), image)


def per_class(labels: np.ndarray, counts: list[int], rng: np.random.Generator) -> list[np.ndarray]:
    """Disjoint index sets, ``counts[k]`` images a class for set k, drawn at random per class."""
    chosen: list[list[int]] = [[] for _ in counts]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        start = 0
        for k, count in enumerate(counts):
            chosen[k] += members[start:start + count].tolist()
            start += count
    return [np.array(sorted(c)) for c in chosen]


def evaluate(model: str, data: str, *extra: str) -> dict:
    result = subprocess.run([*EMOCAM_TRAIN, "evaluate", model, data, "--json", *extra], capture_output=True,
                            text=True, cwd=REPO)
    if result.returncode:
        sys.exit(f"evaluate {model} {data}: {result.stderr.strip().splitlines()[-1]}")
    return json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base")
    parser.add_argument("data")
    parser.add_argument("--work", type=Path, default=Path("/tmp/fine-tune-gain"))
    parser.add_argument("--user-per-class", type=int, default=50)
    parser.add_argument("--heldout-per-class", type=int, default=80)
    parser.add_argument("--replay-per-class", type=int, default=100)
    args = parser.parse_args()
    if args.work.exists() and any(args.work.iterdir()):
        sys.exit(f"{args.work} is not empty; give another --work")

    from_bundled = bundled.is_bundled(args.base)
    config = bundled.describe() if from_bundled else read_config(Path(args.base))
    train, val = training_split(args.data, ValidationSplit.of_run(config), config.get("classes", "six"))
    # A split by file (v1.x's) leaves twins of some validation faces in training: not unseen faces.
    groups = duplicate_groups(np.concatenate([train.images, val.images]))
    unseen = ~np.isin(groups[len(train):], groups[:len(train)])
    rng = np.random.default_rng(2026)
    user, heldout = (np.flatnonzero(unseen)[chosen]
                     for chosen in per_class(val.labels[unseen], [args.user_per_class, args.heldout_per_class], rng))
    (replay,) = per_class(train.labels, [args.replay_per_class], rng)
    seen = lambda images: np.stack([camera(face, rng) for face in images])  # noqa: E731
    names = val.label_names
    write(args.work / "user", seen(val.images[user]), val.labels[user], names)
    write(args.work / "heldout", seen(val.images[heldout]), val.labels[heldout], names)
    write(args.work / "replay", train.images[replay], train.labels[replay], names)
    print(f"user {len(user)}, held-out {len(heldout)} faces through one camera; replay {len(replay)}", flush=True)

    mine = str(args.work / "runs" / "mine")
    start = time.monotonic()
    subprocess.run([*EMOCAM_TRAIN, "fit", "--data", str(args.work / "user"), "--init-from", args.base,
                    "--replay-from", str(args.work / "replay"), "--replay-per-class", str(args.replay_per_class),
                    "--out", mine, "--quiet"], check=True, cwd=REPO)
    minutes = (time.monotonic() - start) / 60
    base, tuned = args.base, mine
    if from_bundled:
        base, tuned = str(BUNDLED_MODEL), str(args.work / "mine.tflite")
        start = time.monotonic()
        subprocess.run([*EMOCAM_CONVERT, mine, "--data", str(args.work / "user"), "--out", tuned, "--flip-tta"],
                       check=True, cwd=REPO)
        print(f"convert: {(time.monotonic() - start) / 60:.1f} min", flush=True)
    rows = []
    for name, model in (("base", base), ("fine-tuned", tuned)):
        held = evaluate(model, str(args.work / "heldout"))
        test = evaluate(model, args.data, "--split", "test")
        rows.append((f"{name} ({Path(model).name})", held["accuracy"], held["n"], test["accuracy"], test["n"]))
    print(f"fine-tune: {minutes:.1f} min")
    print("| model | held-out faces, same camera | FER-2013 test (PublicTest) |")
    print("|---|---|---|")
    for name, held, n_held, test, n_test in rows:
        print(f"| {name} | {held:.2%} (n={n_held}) | {test:.2%} (n={n_test}) |")


if __name__ == "__main__":
    main()
