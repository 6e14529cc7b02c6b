"""How much taking the classifier's grey from luma (a camera's Y plane) changes what it sees.

    python bench/luma_grey.py [CLIP.avi]

Each frame of an MJPEG clip (default: the bundled sample) is decoded twice by libjpeg-turbo:
as colour, then BGR -> grey on the CPU (the file path), and straight to its Y plane (what
picamera2's YUV420 stream hands over). BlazeFace runs on the colour frame either way; the aligned
crops and the int8 classifier's probabilities of the two greys are compared. Prints medians and
maxima.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emocam.edge.capture.factory import SAMPLE_CLIP  # noqa: E402
from emocam.edge.service.config import parse_config  # noqa: E402
from emocam.edge.service.daemon import build_pipeline  # noqa: E402
from emocam.edge.vision.align import align_face  # noqa: E402


def jpeg_frames(clip: Path) -> list[bytes]:
    data, frames, start = clip.read_bytes(), [], 0
    while (start := data.find(b"\xff\xd8\xff", start)) >= 0:
        end = data.index(b"\xff\xd9", start) + 2
        frames.append(data[start:end])
        start = end
    return frames


def main() -> None:
    clip = Path(sys.argv[1]) if len(sys.argv) > 1 else SAMPLE_CLIP
    pipeline = build_pipeline(parse_config({}, hostname="bench"))
    prep = pipeline.classifier.info.preprocessing
    pixel, prob, flips, faces, frame_diff = [], [], 0, 0, 0
    for jpeg in jpeg_frames(clip):
        buffer = np.frombuffer(jpeg, np.uint8)
        colour = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
        luma = cv2.imdecode(buffer, cv2.IMREAD_GRAYSCALE)  # libjpeg's Y plane, no colour conversion
        frame_diff = max(frame_diff, int(np.abs(cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY).astype(int) - luma).max()))
        for face in pipeline.detector.detect(colour):
            from_bgr, from_luma = align_face(colour, face, prep), align_face(luma, face, prep)
            p_bgr, p_luma = pipeline.classifier.probabilities([from_bgr, from_luma])
            pixel.append(int(np.abs(from_bgr.astype(int) - from_luma).max()))
            prob.append(float(np.abs(p_bgr - p_luma).max()))
            flips += int(p_bgr.argmax() != p_luma.argmax())
            faces += 1
    print(f"{clip.name}: {faces} faces; frame grey vs luma max |diff| {frame_diff} levels")
    print(f"aligned crop max |diff|: median {np.median(pixel):.0f}, max {max(pixel)} levels")
    # The int8 output's step is 1/256 = 0.0039: a difference of one step is the smallest there is.
    print(f"probabilities max |diff|: median {np.median(prob):.4f}, max {max(prob):.4f}; top class flips {flips}")


if __name__ == "__main__":
    main()
