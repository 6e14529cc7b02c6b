"""emocam.edge.vision.align: FER-2013 framing, eye levelling and exact pixels, on synthetic eyes and a real photo."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest

from emocam.edge.vision import align
from emocam.edge.vision.align import align_face, crop_geometry
from emocam.edge.vision.detectors.blazeface import BlazeFaceDetector
from emocam.edge.vision.faces import Face
from emocam.edge.vision.preprocess import Preprocessing, prepare_face

data = pytest.importorskip("skimage.data", reason="scikit-image (dev extra) ships the astronaut photo")

# BlazeFace short-range on the 512x512 astronaut, rounded: fixed here so the exact-pixel tests do
# not depend on the detector's floating point.
ASTRONAUT_BOX = (178.0, 81.0, 94.0, 94.0)
ASTRONAUT_EYES = ((203.87, 100.81), (247.97, 108.43))
FACE_CENTRE = (225.0, 128.0)


def rotate(image: np.ndarray, degrees: float, centre: tuple[float, float] = FACE_CENTRE) -> np.ndarray:
    """The image turned counter-clockwise by ``degrees`` about ``centre`` (OpenCV's convention)."""
    matrix = cv2.getRotationMatrix2D(centre, degrees, 1.0)
    return cv2.warpAffine(image, matrix, image.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)


def eye_roll(detector: BlazeFaceDetector, crop: np.ndarray) -> float:
    """Roll (degrees) of the eye line BlazeFace finds in a 48x48 crop, upscaled and given room."""
    big = cv2.resize(crop, (192, 192), interpolation=cv2.INTER_LINEAR_EXACT)
    frame = cv2.cvtColor(cv2.copyMakeBorder(big, 48, 48, 48, 48, cv2.BORDER_REPLICATE), cv2.COLOR_GRAY2BGR)
    faces = detector.detect(frame)
    assert len(faces) == 1, "BlazeFace should find the face again in the aligned crop"
    (x1, y1), (x2, y2) = faces[0].landmarks[:2]
    return float(np.degrees(np.arctan2(y2 - y1, x2 - x1)))


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_bilinear_sampler_is_exact_on_pixels_and_rounds_between_them() -> None:
    gray = np.array([[0, 255, 10], [100, 50, 30]], np.uint8)
    xs = np.array([[0.0, 1.0, 0.5, 1.5, -3.0, 9.0]])
    ys = np.array([[0.0, 1.0, 0.0, 0.5, 0.0, 1.0]])
    # On pixels: the pixel; halfway: the mean rounded half up; outside: the nearest edge pixel.
    np.testing.assert_array_equal(align._bilinear(gray, xs, ys), [[0, 50, 128, 86, 0, 30]])


@pytest.mark.parametrize("degrees", [0.0, 20.0, -35.0, 180.0])
def test_synthetic_eyes_land_level_where_the_framing_constants_put_them(degrees: float) -> None:
    # Two dots on a gray card: the first eye black, the second dark gray, 60 px apart, the eye
    # line turned by ``degrees`` (180: an upside-down face, first eye on the image's right).
    image = np.full((400, 400, 3), 160, np.uint8)
    angle = np.radians(degrees)
    half = 30.0 * np.array([np.cos(angle), np.sin(angle)])
    first, second = np.array([200.0, 190.0]) - half, np.array([200.0, 190.0]) + half
    cv2.circle(image, (round(first[0]), round(first[1])), 5, (0, 0, 0), -1)
    cv2.circle(image, (round(second[0]), round(second[1])), 5, (70, 70, 70), -1)
    face = Face(box=(140.0, 130.0, 120.0, 120.0), score=1.0, landmarks=(tuple(first), tuple(second)))

    size = 96
    crop = align_face(image, face, Preprocessing(size=size))
    blobs = []
    for level in (35, 115):  # black dot, then the black and gray dots together
        count, labels, stats, centres = cv2.connectedComponentsWithStats((crop < level).astype(np.uint8))
        blobs.append(centres[1:][stats[1:, cv2.CC_STAT_AREA] > 3])
    (black,), both = blobs
    assert len(both) == 2, f"expected two dark dots in the crop, found {len(both)}"
    gray_dot = both[np.argmax(np.linalg.norm(both - black, axis=1))]
    # Pixel centres sit at i + 0.5 in the framing's coordinates.
    expected_y = align.EYE_LINE_Y * size - 0.5
    expected_x = (align.EYE_LINE_X - align.EYE_DISTANCE / 2) * size - 0.5
    assert abs(black[1] - gray_dot[1]) < 0.5, f"eyes not level: {black} vs {gray_dot}"
    assert black[0] < gray_dot[0], "the first eye must end up on the crop's left"
    np.testing.assert_allclose(black, (expected_x, expected_y), atol=1.0)
    np.testing.assert_allclose(gray_dot[0] - black[0], align.EYE_DISTANCE * size, atol=1.0)


def test_aligned_astronaut_is_48x48_uint8_and_deterministic(
    blazeface: BlazeFaceDetector, astronaut: np.ndarray
) -> None:
    face = blazeface.detect(astronaut)[0]
    crop = align_face(astronaut, face)
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    np.testing.assert_array_equal(crop, align_face(astronaut.copy(), face))
    assert align_face(astronaut, face, Preprocessing(size=64)).shape == (64, 64)
    # A real face, not a flat patch: eyes and mouth give contrast.
    assert crop.std() > 20


def test_aligned_pixels_are_pinned(astronaut: np.ndarray) -> None:
    # The contract promises the same pixels on x86 and Arm. Fixed landmarks take the detector out;
    # what is left is integer arithmetic and INTER_AREA, so this digest must hold on both. If
    # the framing constants or the sampler change on purpose, print the new digest and pin it.
    face = Face(box=ASTRONAUT_BOX, score=1.0, landmarks=ASTRONAUT_EYES)
    digests = {
        "eyes": hashlib.sha256(align_face(astronaut, face).tobytes()).hexdigest()[:16],
        "box": hashlib.sha256(align_face(astronaut, Face(ASTRONAUT_BOX, 1.0)).tobytes()).hexdigest()[:16],
    }
    assert digests == PINNED_DIGESTS


PINNED_DIGESTS = {"eyes": "34aa77e4430790d5", "box": "3aac03f245fc514e"}


def levelled(face: Face) -> Face:
    """The same face with its eyes moved onto a horizontal line: same midpoint, same distance."""
    (x1, y1), (x2, y2) = face.landmarks[:2]
    half = float(np.hypot(x2 - x1, y2 - y1)) / 2
    mid_x, mid_y = (x1 + x2) / 2, (y1 + y2) / 2
    return Face(face.box, face.score, ((mid_x - half, mid_y), (mid_x + half, mid_y)))


@pytest.mark.parametrize("degrees", [-15.0, 15.0])
def test_rotated_astronaut_aligns_like_the_upright_one(
    blazeface: BlazeFaceDetector, astronaut: np.ndarray, degrees: float
) -> None:
    # A webcam-like close-up (the face fills about 40% of the frame), where the short-range
    # model's eye points are good to about 1.5 degrees; on the whole 512 px photo they wander by
    # several degrees as the face turns (see bench/crop_framing.py and the full-range model).
    close_up = np.ascontiguousarray(astronaut[0:256, 97:353])
    centre = (FACE_CENTRE[0] - 97, FACE_CENTRE[1])
    upright = align_face(close_up, blazeface.detect(close_up)[0])
    turned_image = rotate(close_up, degrees, centre)
    (turned_face,) = blazeface.detect(turned_image)
    turned = align_face(turned_image, turned_face)
    # The gap to beat: the same crop with the rotation left out.
    unturned = align_face(turned_image, levelled(turned_face))
    aligned_gap, unaligned_gap = mean_abs_diff(turned, upright), mean_abs_diff(unturned, upright)
    assert aligned_gap < 15.0 and aligned_gap < unaligned_gap / 2, (aligned_gap, unaligned_gap)
    # Levelled: BlazeFace, run again on the crops, reads the same roll in both.
    upright_roll = eye_roll(blazeface, upright)
    assert abs(eye_roll(blazeface, turned) - upright_roll) < 3.0
    assert abs(eye_roll(blazeface, unturned) - upright_roll) > 10.0


def test_box_only_face_is_the_plain_square_crop(astronaut: np.ndarray) -> None:
    # A Haar-style face: no landmarks, square box. With a crop side of 51 px starting on a pixel
    # edge, alignment must be exactly the plain crop through the contract's resize.
    width = 50.0
    face = Face(box=(100.5, 80.5, width, width), score=1.0)
    (cx, cy), side, rotation = crop_geometry(face)
    assert rotation == (1.0, 0.0) and side == pytest.approx(align.BOX_TO_CROP * width)
    left, top, whole = round(cx - side / 2), round(cy - side / 2), round(side)
    assert (left, top, whole) == (100, 80, 51)
    expected = prepare_face(astronaut[top : top + whole, left : left + whole])
    np.testing.assert_array_equal(align_face(astronaut, face), expected)


@pytest.mark.parametrize("landmarks", [ASTRONAUT_EYES, ()], ids=["eyes", "box"])
def test_a_face_cut_by_the_frame_edge_repeats_the_edge_pixels(
    astronaut: np.ndarray, landmarks: tuple[tuple[float, float], ...]
) -> None:
    # Cut the frame through the face; the part of the square outside it must be exactly what
    # replicating the frame's edge pixels gives.
    cut = 200
    frame = np.ascontiguousarray(astronaut[:, cut:])
    x, y, w, h = ASTRONAUT_BOX
    face = Face((x - cut, y, w, h), 1.0, tuple((px - cut, py) for px, py in landmarks))
    padded = cv2.copyMakeBorder(frame, 0, 0, cut, 0, cv2.BORDER_REPLICATE)
    moved = Face(ASTRONAUT_BOX, 1.0, landmarks)
    crop = align_face(frame, face)
    np.testing.assert_array_equal(crop, align_face(padded, moved))
    assert crop[:, :10].mean() > 40, "the missing side should repeat the photo's edge, not go black"


def test_a_large_face_frames_like_the_same_face_small(astronaut: np.ndarray) -> None:
    # 4x bigger: exercises the integer INTER_AREA pre-shrink; the crop must barely change.
    big = cv2.resize(astronaut, None, fx=4, fy=4, interpolation=cv2.INTER_LINEAR_EXACT)
    small_face = Face(ASTRONAUT_BOX, 1.0, ASTRONAUT_EYES)
    big_face = Face(tuple(4 * v for v in ASTRONAUT_BOX), 1.0, tuple((4 * x, 4 * y) for x, y in ASTRONAUT_EYES))
    assert mean_abs_diff(align_face(big, big_face), align_face(astronaut, small_face)) < 3.0


def test_gray_frames_align_like_bgr(astronaut: np.ndarray) -> None:
    face = Face(ASTRONAUT_BOX, 1.0, ASTRONAUT_EYES)
    gray = cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)
    np.testing.assert_array_equal(align_face(gray, face), align_face(astronaut, face))


def test_degenerate_inputs_are_clear_errors(astronaut: np.ndarray) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        align_face(np.zeros((0, 0, 3), np.uint8), Face(ASTRONAUT_BOX, 1.0))
    with pytest.raises(ValueError, match="degenerate"):
        align_face(astronaut, Face((10.0, 10.0, 0.0, 0.0), 1.0))
    with pytest.raises(ValueError, match="over 4x"):
        align_face(astronaut, Face(ASTRONAUT_BOX, 1.0, ((0.0, 0.0), (9000.0, 0.0))))
    # Both eyes on one point carry no direction: fall back to the box, which is fine.
    same_point = Face(ASTRONAUT_BOX, 1.0, ((200.0, 100.0), (200.0, 100.0)))
    box_only = Face(ASTRONAUT_BOX, 1.0)
    np.testing.assert_array_equal(align_face(astronaut, same_point), align_face(astronaut, box_only))
