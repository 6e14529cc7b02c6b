"""Face detectors on a real photo (scikit-image's public-domain astronaut portrait)."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

import emocam.edge.vision.detectors
from emocam.edge.errors import DetectorError
from emocam.edge.vision.detectors import BlazeFaceDetector, HaarFaceDetector, make_detector
from emocam.edge.vision.detectors.blazeface import MODEL_DIR, MODELS, default_model_path, ssd_anchors
from emocam.edge.vision.faces import Face

data = pytest.importorskip("skimage.data", reason="scikit-image (dev extra) ships the astronaut photo")

# Found once with BlazeFace short-range on the 512x512 photo, checked by eye: the face spans
# x 178..272, y 81..175; the eye on the image's left (the subject's right) is at (204, 101).
ASTRONAUT_BOX = (178.0, 81.0, 94.0, 94.0)
ASTRONAUT_EYES = ((204.0, 101.0), (248.0, 108.0))
TOLERANCE_PX = 10.0


def frame_640x480(photo: np.ndarray, offset_x: int) -> np.ndarray:
    """The photo shrunk to 480x480 and placed at ``offset_x`` on a gray 640x480 frame."""
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[:, offset_x : offset_x + 480] = cv2.resize(photo, (480, 480), interpolation=cv2.INTER_AREA)
    return frame


def expected_box(offset_x: int) -> tuple[float, float, float, float]:
    scale = 480 / 512
    x, y, w, h = ASTRONAUT_BOX
    return (x * scale + offset_x, y * scale, w * scale, h * scale)


def assert_near(actual: tuple[float, ...], expected: tuple[float, ...], tolerance: float = TOLERANCE_PX) -> None:
    assert np.allclose(actual, expected, atol=tolerance), f"{actual} is not within {tolerance} px of {expected}"


def assert_eyes_in_box(face: Face) -> None:
    x, y, w, h = face.box
    for ex, ey in face.landmarks[:2]:
        assert x <= ex <= x + w and y <= ey <= y + h, f"eye {(ex, ey)} outside box {face.box}"
    # emocam.edge.vision.faces.Face: the eye on the image's left comes first.
    assert face.landmarks[0][0] < face.landmarks[1][0]


def test_blazeface_finds_the_astronaut(blazeface: BlazeFaceDetector, astronaut: np.ndarray) -> None:
    faces = blazeface.detect(astronaut)
    assert len(faces) == 1
    face = faces[0]
    assert face.score > 0.8
    assert_near(face.box, ASTRONAUT_BOX)
    assert len(face.landmarks) == 6
    assert_near(tuple(np.ravel(face.landmarks[:2])), tuple(np.ravel(ASTRONAUT_EYES)), 5.0)
    assert_eyes_in_box(face)
    nose_x, nose_y = face.landmarks[2]
    mouth_x, mouth_y = face.landmarks[3]
    assert face.landmarks[0][1] < nose_y < mouth_y  # eyes above nose above mouth
    assert face.landmarks[4][0] < nose_x < face.landmarks[5][0]  # ears either side


def test_blazeface_keeps_image_left_eye_first_when_mirrored(
    blazeface: BlazeFaceDetector, astronaut: np.ndarray
) -> None:
    faces = blazeface.detect(np.ascontiguousarray(astronaut[:, ::-1]))
    assert len(faces) == 1
    x, y, w, h = ASTRONAUT_BOX
    assert_near(faces[0].box, (512 - x - w, y, w, h))
    assert_eyes_in_box(faces[0])


@pytest.mark.parametrize("offset_x", [0, 160])
def test_blazeface_maps_a_640x480_frame_back_to_frame_pixels(
    blazeface: BlazeFaceDetector, astronaut: np.ndarray, offset_x: int
) -> None:
    faces = blazeface.detect(frame_640x480(astronaut, offset_x))
    assert len(faces) == 1
    assert_near(faces[0].box, expected_box(offset_x))
    assert_eyes_in_box(faces[0])


def test_blazeface_works_on_gray_frames(blazeface: BlazeFaceDetector, astronaut: np.ndarray) -> None:
    gray = cv2.cvtColor(frame_640x480(astronaut, 80), cv2.COLOR_BGR2GRAY)
    for frame in (cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), gray):
        faces = blazeface.detect(frame)
        assert len(faces) == 1
        assert_near(faces[0].box, expected_box(80), 15.0)  # gray costs some box precision
        assert_eyes_in_box(faces[0])


def test_blazeface_finds_three_faces_side_by_side(blazeface: BlazeFaceDetector, astronaut: np.ndarray) -> None:
    """Three copies of the head 200 px apart: each refinement square also holds a neighbour."""
    head = astronaut[30:220, 130:320]
    frame = np.full((480, 640, 3), 90, np.uint8)
    for i in range(3):
        frame[140:330, 20 + 200 * i : 210 + 200 * i] = head
    faces = sorted(blazeface.detect(frame), key=lambda face: face.box[0])
    assert len(faces) == 3
    (left_x, left_y), (right_x, right_y) = ASTRONAUT_EYES
    for i, face in enumerate(faces):
        dx, dy = 20 + 200 * i - 130, 140 - 30
        expected = (left_x + dx, left_y + dy, right_x + dx, right_y + dy)
        assert_near(tuple(np.ravel(face.landmarks[:2])), expected, 4.0)


def test_blazeface_finds_no_face_in_blank_or_noise(blazeface: BlazeFaceDetector) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    assert blazeface.detect(np.zeros((480, 640, 3), np.uint8)) == []
    assert blazeface.detect(np.full((480, 640, 3), 255, np.uint8)) == []
    assert blazeface.detect(noise) == []


def test_blazeface_clips_the_box_of_a_face_cut_by_the_frame_edge(
    blazeface: BlazeFaceDetector, astronaut: np.ndarray
) -> None:
    # Cut the photo through the face, just left of the eye on the image's left (x 204).
    frame = np.ascontiguousarray(astronaut[:, 200:])
    faces = blazeface.detect(frame)
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    assert x == 0.0 and w > 0 and x + w <= frame.shape[1] and y >= 0 and y + h <= frame.shape[0]


def test_blazeface_rejects_a_bad_frame(blazeface: BlazeFaceDetector) -> None:
    with pytest.raises(ValueError, match="float32"):
        blazeface.detect(np.zeros((480, 640, 3), np.float32))


@pytest.mark.parametrize("refine", [False, True])
def test_blazeface_full_range_finds_the_astronaut(astronaut: np.ndarray, refine: bool) -> None:
    faces = BlazeFaceDetector(model="full", refine_landmarks=refine).detect(frame_640x480(astronaut, 80))
    assert len(faces) == 1
    # Its boxes are drawn larger than the short-range model's; the eyes are the same points.
    scale = 480 / 512
    eyes = tuple(v * scale + (80 if i % 2 == 0 else 0) for i, v in enumerate(np.ravel(ASTRONAUT_EYES)))
    assert_near(tuple(np.ravel(faces[0].landmarks[:2])), eyes, 5.0)
    assert_eyes_in_box(faces[0])


def test_refined_landmarks_are_steadier_than_one_pass(astronaut: np.ndarray) -> None:
    """The astronaut moved by 1..5 px: the refined eye points follow; one pass jitters."""
    spreads = {}
    for refine in (False, True):
        detector = BlazeFaceDetector(refine_landmarks=refine)
        eyes = []
        for shift in range(6):
            moved = cv2.warpAffine(astronaut, np.float32([[1, 0, shift], [0, 1, shift]]), (512, 512))
            (face,) = detector.detect(moved)
            eyes.append(np.array(face.landmarks[:2]) - shift)
        spreads[refine] = float(np.abs(np.array(eyes) - np.mean(eyes, axis=0)).max())
    assert spreads[True] < 1.5 < spreads[False], spreads


def test_ssd_anchors_match_mediapipe_layout() -> None:
    short = ssd_anchors(MODELS["short"])
    assert short.shape == (896, 2)
    # 16x16 cells with 2 anchors each, then 8x8 cells with 6 (three stride-16 layers x 2).
    np.testing.assert_allclose(short[0], short[1])
    np.testing.assert_allclose(short[0], (0.5 / 16, 0.5 / 16))
    np.testing.assert_allclose(short[2], (1.5 / 16, 0.5 / 16))
    np.testing.assert_allclose(short[512:518], np.tile((0.5 / 8, 0.5 / 8), (6, 1)))
    np.testing.assert_allclose(short[-1], (7.5 / 8, 7.5 / 8))
    full = ssd_anchors(MODELS["full"])
    assert full.shape == (2304, 2)
    np.testing.assert_allclose(full[1], (1.5 / 48, 0.5 / 48))


def test_haar_finds_the_astronaut(astronaut: np.ndarray) -> None:
    haar = HaarFaceDetector()
    faces = haar.detect(astronaut)
    assert len(faces) == 1
    assert faces[0].landmarks == ()
    # Haar's box sits higher than BlazeFace's (it takes in the forehead): check that it holds the
    # eyes and overlaps BlazeFace's box rather than matching it.
    x, y, w, h = faces[0].box
    for ex, ey in ASTRONAUT_EYES:
        assert x <= ex <= x + w and y <= ey <= y + h
    bx, by, bw, bh = ASTRONAUT_BOX
    inter = max(0.0, min(x + w, bx + bw) - max(x, bx)) * max(0.0, min(y + h, by + bh) - max(y, by))
    assert inter / (w * h + bw * bh - inter) > 0.6
    assert haar.detect(np.zeros((480, 640, 3), np.uint8)) == []


def test_haar_without_cascade_support_says_how_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(cv2, "CascadeClassifier")  # what OpenCV 5 looks like
    with pytest.raises(DetectorError, match="opencv-python-headless.*<5"):
        HaarFaceDetector()


def test_haar_with_missing_cascade_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.xml"
    with pytest.raises(DetectorError, match="nope.xml"):
        HaarFaceDetector(cascade_path=missing)


def test_make_detector_builds_each_name() -> None:
    assert isinstance(make_detector("blazeface"), BlazeFaceDetector)
    assert isinstance(make_detector("haar"), HaarFaceDetector)
    assert isinstance(make_detector("auto"), BlazeFaceDetector)
    assert make_detector("blazeface", model="full").model == "full"


def test_make_detector_unknown_name_lists_the_choices() -> None:
    with pytest.raises(DetectorError, match=r"'yunet'.*auto, blazeface, haar"):
        make_detector("yunet")


def test_auto_falls_back_to_haar_without_blazeface(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(emocam.edge.vision.detectors, "default_model_path", lambda model="short": None)
    with caplog.at_level(logging.WARNING, logger="emocam.edge.vision.detectors"):
        detector = make_detector("auto")
    assert isinstance(detector, HaarFaceDetector)
    assert "reinstall emocam" in caplog.text and "edge/vision/detectors/models/" in caplog.text


def test_missing_blazeface_model_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match="not found; reinstall emocam") as info:
        BlazeFaceDetector(model_path=tmp_path / "face_detection_short_range.tflite")
    assert str(tmp_path) in str(info.value)


def test_corrupt_blazeface_model_is_a_detector_error(tmp_path: Path) -> None:
    path = tmp_path / "face_detection_short_range.tflite"
    path.write_bytes(b"not a flatbuffer" * 64)
    with pytest.raises(DetectorError, match="not a valid TFLite model.*reinstall emocam"):
        BlazeFaceDetector(model_path=path)


def test_blazeface_refuses_the_wrong_variant() -> None:
    full_path = default_model_path("full")
    with pytest.raises(DetectorError, match="short-range"):
        BlazeFaceDetector(model_path=full_path, model="short")
    with pytest.raises(DetectorError, match=r"'medium'.*full.*short"):
        BlazeFaceDetector(model="medium")
    with pytest.raises(DetectorError, match="min_score"):
        BlazeFaceDetector(min_score=1.5)


def test_bundled_blazeface_models_match_their_provenance() -> None:
    """Each model ships in the package with the size and sha256 its README records, under its licence."""
    readme = (MODEL_DIR / "README.md").read_text()
    assert "Apache License" in (MODEL_DIR / "LICENSE").read_text()
    for name, spec in MODELS.items():
        path = default_model_path(name)
        assert path == MODEL_DIR / spec.file_name
        row = re.search(rf"^\| `{re.escape(spec.file_name)}` \|.*\| (\d+) \| `([0-9a-f]{{64}})` \|$", readme, re.M)
        assert row, f"{spec.file_name} has no row in {MODEL_DIR / 'README.md'}"
        data = path.read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (int(row.group(1)), row.group(2))
