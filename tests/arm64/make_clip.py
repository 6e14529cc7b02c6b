"""Write the 72-frame MPEG-4 clip that docs/raspberry-pi.md's arm64 measurements used.

    .venv/bin/python tests/arm64/make_clip.py /tmp/astronaut-mp4v.mp4
    sudo bash tests/arm64/run.sh /tmp/astronaut-mp4v.mp4

The bundled sample (MJPG, 18 frames) played forwards, backwards, forwards, backwards, re-encoded
by OpenCV's VideoWriter as MPEG-4 part 2 ("mp4v", YUV 4:2:0), which FFmpeg decodes on both sides.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[2]


def main(out: str) -> int:
    sample = next((REPO / "edge").rglob("astronaut.avi"))
    capture = cv2.VideoCapture(str(sample))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (width, height))
    for frame in (frames + frames[::-1]) * 2:
        writer.write(frame)
    writer.release()
    print(f"{out}: {4 * len(frames)} frames, {width}x{height}, mp4v, from {sample.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_clip.py OUT.mp4")
    sys.exit(main(sys.argv[1]))
