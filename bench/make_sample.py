"""Regenerate edge/samples/astronaut.avi, the clip `emocam run` plays when no camera is found.

Source photo: scikit-image's ``skimage.data.astronaut()``: Eileen Collins, NASA portrait
(https://www.nasa.gov/), "No known copyright restrictions, released into the public domain"
(skimage/data/README.txt). It installs offline with scikit-image, so the clip can be rebuilt
anywhere: ``python bench/make_sample.py`` (needs the ``dev`` extra for scikit-image).

The clip is 640x480 MJPG: an empty backdrop for a moment, then the head and shoulders drifting
slowly, like someone sitting in front of a camera. MJPG decodes with OpenCV's own decoder on every
platform; the frame rate is low to keep the file a few hundred KB.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT = 640, 480
FPS = 5.0
EMPTY_FRAMES = 2  # backdrop only: the face "arrives" after the clip starts
FACE_FRAMES = 16
BACKDROP_BGR = (110, 100, 90)
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "edge" / "samples" / "astronaut.avi"


def astronaut_bgr() -> np.ndarray:
    from skimage import data  # dev extra only; the device never imports this

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)  # type: ignore[no-untyped-call]


def compose(head: np.ndarray, scale: float, x: int) -> np.ndarray:
    """Paste the scaled head-and-shoulders crop on the backdrop, bottom-aligned at column x."""
    canvas = np.full((HEIGHT, WIDTH, 3), BACKDROP_BGR, np.uint8)
    scaled = cv2.resize(head, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    rows = min(scaled.shape[0], HEIGHT)
    cols = min(scaled.shape[1], WIDTH - x)
    canvas[HEIGHT - rows :, x : x + cols] = scaled[scaled.shape[0] - rows :, :cols]
    return canvas


def frames() -> list[np.ndarray]:
    head = astronaut_bgr()[0:300, 80:380]  # head and shoulders of the 512x512 portrait
    out = [compose(head, 1.0, WIDTH) for _ in range(EMPTY_FRAMES)]  # x=WIDTH: nothing pasted
    for i in range(FACE_FRAMES):
        out.append(compose(head, 1.15 + 0.005 * i, 150 + 4 * i))
    return out


def write_clip(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), FPS, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise SystemExit(f"OpenCV cannot write MJPG to {path}")
    try:
        for frame in frames():
            writer.write(frame)
    finally:
        writer.release()
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the clip")
    args = parser.parse_args()
    size = write_clip(args.out)
    count = EMPTY_FRAMES + FACE_FRAMES
    print(f"wrote {args.out}: {count} frames, {WIDTH}x{HEIGHT} @ {FPS:g} fps, {size // 1024} KiB")


if __name__ == "__main__":
    main()
