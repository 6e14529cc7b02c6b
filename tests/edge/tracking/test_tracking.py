"""FaceTracker: pure logic, time passed in (no sleeping, no camera, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from emocam.edge.mqtt.wire import EmotionEvent
from emocam.edge.tracking.tracker import FaceTracker, TrackerSettings, iou, normalize_box
from emocam.edge.vision.faces import Face

LABELS = ("angry", "fear", "happy", "neutral", "sad", "surprise")
FRAME = (640, 480)


def probs(label: str, p: float = 0.8) -> np.ndarray:
    """A probability row with ``p`` on ``label`` and the rest spread evenly."""
    row = np.full(len(LABELS), (1.0 - p) / (len(LABELS) - 1))
    row[LABELS.index(label)] = p
    return row


def face(x: float, y: float = 100, size: float = 100) -> Face:
    return Face(box=(x, y, size, size), score=0.9)


def step(tracker: FaceTracker, t: float, *seen: tuple[Face, str]) -> list[EmotionEvent]:
    faces = [f for f, _ in seen]
    scores = np.array([probs(label) for _, label in seen]).reshape(len(seen), len(LABELS))
    return tracker.update(t, faces, scores, FRAME, wall_time=1_000_000.0 + t)


def times(start: float, stop: float, fps: float) -> list[float]:
    return [start + i / fps for i in range(int(round((stop - start) * fps)))]


def test_one_frame_false_detection_produces_nothing() -> None:
    tracker = FaceTracker(TrackerSettings(), LABELS)
    events = step(tracker, 0.0, (face(100), "happy"))
    for t in times(0.1, 5.0, 10):
        events += step(tracker, t)
    assert events == []
    assert tracker.tracks == ()


def test_appeared_once_after_hold_with_normalized_box() -> None:
    tracker = FaceTracker(TrackerSettings(hold_seconds=1.0), LABELS)
    log = [(t, e) for t in times(0.0, 3.0, 4) for e in step(tracker, t, (face(64, 48, 64), "happy"))]
    assert [(t, e.type, e.face, e.emotion) for t, e in log] == [(1.0, "appeared", 1, "happy")]
    event = log[0][1]
    assert event.box == pytest.approx((0.1, 0.1, 0.1, 64 / 480))
    assert event.confidence == pytest.approx(0.8)
    assert event.scores_by_label["happy"] == pytest.approx(0.8)
    assert event.ts == 1_000_001.0
    (state,) = tracker.tracks
    assert (state.face, state.emotion) == (1, "happy")


@pytest.mark.parametrize("smoothing", [0.0, 0.5])
def test_alternating_top_class_produces_no_change(smoothing: float) -> None:
    tracker = FaceTracker(TrackerSettings(hold_seconds=1.0, smoothing_seconds=smoothing), LABELS)
    events = [e for t in times(0.0, 1.5, 10) for e in step(tracker, t, (face(100), "neutral"))]
    assert [e.type for e in events] == ["appeared"]
    for i, t in enumerate(times(1.5, 10.0, 10)):
        assert step(tracker, t, (face(100), "sad" if i % 2 else "neutral")) == []
    # With smoothing off the raw top flips every frame: only the hold stops the flicker.


def test_change_reported_exactly_after_hold_without_smoothing() -> None:
    tracker = FaceTracker(TrackerSettings(hold_seconds=1.0, smoothing_seconds=0.0), LABELS)
    events = [(t, e) for t in times(0.0, 2.0, 4) for e in step(tracker, t, (face(100), "neutral"))]
    events += [(t, e) for t in times(2.0, 5.0, 4) for e in step(tracker, t, (face(100), "happy"))]
    assert [(t, e.type, e.emotion, e.previous) for t, e in events] == [
        (1.0, "appeared", "neutral", None),
        (3.0, "changed", "happy", "neutral"),
    ]


def test_change_with_smoothing_waits_for_the_average_and_the_hold() -> None:
    tracker = FaceTracker(TrackerSettings(hold_seconds=1.0, smoothing_seconds=0.5), LABELS)
    for t in times(0.0, 2.0, 10):
        step(tracker, t, (face(100), "neutral"))
    changed = [(t, e) for t in times(2.0, 6.0, 10) for e in step(tracker, t, (face(100), "happy"))]
    assert len(changed) == 1
    t, event = changed[0]
    # Happy overtakes the moving average 0.35 s after the switch (0.5 s * ln 2), then holds 1 s.
    assert 3.0 < t < 3.5
    assert (event.type, event.emotion, event.previous) == ("changed", "happy", "neutral")
    assert event.confidence == event.scores_by_label["happy"] > event.scores_by_label["neutral"]


def test_change_shorter_than_hold_is_not_reported() -> None:
    tracker = FaceTracker(TrackerSettings(hold_seconds=1.0, smoothing_seconds=0.0), LABELS)
    events = [e for t in times(0.0, 2.0, 10) for e in step(tracker, t, (face(100), "neutral"))]
    events += [e for t in times(2.0, 2.9, 10) for e in step(tracker, t, (face(100), "surprise"))]
    events += [e for t in times(2.9, 6.0, 10) for e in step(tracker, t, (face(100), "neutral"))]
    assert [e.type for e in events] == ["appeared"]


def test_weak_emotion_below_min_confidence_is_not_reported() -> None:
    tracker = FaceTracker(TrackerSettings(smoothing_seconds=0.0, min_confidence=0.7), LABELS)
    for t in times(0.0, 2.0, 10):
        step(tracker, t, (face(100), "neutral"))
    weak = np.array([probs("sad", 0.5)])
    assert [e for t in times(2.0, 5.0, 10) for e in tracker.update(t, [face(100)], weak, FRAME)] == []


@pytest.mark.parametrize("fps", [5, 30])
def test_timing_does_not_depend_on_frame_rate(fps: int) -> None:
    tracker = FaceTracker(TrackerSettings(hold_seconds=1.0, smoothing_seconds=0.5), LABELS)
    for t in times(0.0, 2.0, fps):
        step(tracker, t, (face(100), "neutral"))
    changed = [t for t in times(2.0, 6.0, fps) for e in step(tracker, t, (face(100), "angry"))]
    # Crossing of the moving average (~0.35 s at any rate) plus the 1 s hold, within a frame.
    assert len(changed) == 1
    assert changed[0] == pytest.approx(2.0 + 0.35 + 1.0, abs=1.0 / fps + 0.05)


def test_ids_are_stable_for_a_moving_face() -> None:
    tracker = FaceTracker(TrackerSettings(), LABELS)
    events = []
    for i, t in enumerate(times(0.0, 5.0, 10)):
        events += step(tracker, t, (face(50 + 8 * i), "happy"))  # 8 px per frame, 400 px in all
    assert [(e.type, e.face) for e in events] == [("appeared", 1)]
    assert [s.face for s in tracker.tracks] == [1]
    assert tracker.tracks[0].box[0] == pytest.approx((50 + 8 * 49) / 640)


def test_two_faces_keep_ids_whatever_the_detection_order() -> None:
    tracker = FaceTracker(TrackerSettings(smoothing_seconds=0.0), LABELS)
    events = []
    for i, t in enumerate(times(0.0, 2.0, 10)):
        left, right = (face(50 + 2 * i), "happy"), (face(400 - 2 * i), "sad")
        events += step(tracker, t, *((left, right) if i % 2 else (right, left)))
    appeared = {e.face: e.emotion for e in events if e.type == "appeared"}
    assert appeared == {1: "sad", 2: "happy"}  # the right face came first in frame 0
    assert len(events) == 2
    assert sorted((s.face, s.emotion) for s in tracker.tracks) == [(1, "sad"), (2, "happy")]


def test_left_after_timeout_and_ids_never_reused() -> None:
    tracker = FaceTracker(TrackerSettings(lost_after_seconds=1.5), LABELS)
    for t in times(0.0, 2.0, 10):
        step(tracker, t, (face(100), "happy"))
    last_seen = 1.9
    assert [e for t in times(2.0, 3.4, 10) for e in step(tracker, t)] == []
    left = step(tracker, last_seen + 1.5)
    assert [(e.type, e.face, e.emotion) for e in left] == [("left", 1, "happy")]
    assert tracker.tracks == ()
    again = [e for t in times(4.0, 6.0, 10) for e in step(tracker, t, (face(100), "happy"))]
    assert [(e.type, e.face) for e in again] == [("appeared", 2)]


def test_flush_ends_every_face_that_appeared() -> None:
    tracker = FaceTracker(TrackerSettings(), LABELS)
    for t in times(0.0, 2.0, 10):
        step(tracker, t, (face(100), "surprise"))
    step(tracker, 2.0, (face(100), "surprise"), (face(400), "angry"))  # new, not yet confirmed
    events = tracker.flush(2.1, wall_time=5.0)
    assert [(e.type, e.face, e.emotion, e.ts) for e in events] == [("left", 1, "surprise", 5.0)]
    assert tracker.tracks == ()
    assert tracker.flush(2.2) == []


def test_scores_must_match_faces_and_labels() -> None:
    tracker = FaceTracker(TrackerSettings(), LABELS)
    with pytest.raises(ValueError, match=r"scores has shape \(1, 5\), expected \(1, 6\)"):
        tracker.update(0.0, [face(100)], np.ones((1, 5)) / 5, FRAME)
    with pytest.raises(ValueError, match="frame_size"):
        tracker.update(0.0, [face(100)], np.array([probs("sad")]), (0, 480))
    assert tracker.update(0.0, [], np.zeros((0, len(LABELS))), FRAME) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [("hold_seconds", -1.0), ("smoothing_seconds", float("nan")), ("lost_after_seconds", 0.0),
     ("min_iou", 0.0), ("min_iou", 1.5), ("min_confidence", -0.1), ("hold_seconds", True)],
)
def test_settings_reject_bad_values_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        TrackerSettings(**{field: value})


def test_box_helpers() -> None:
    assert normalize_box((-10, 460, 100, 40), FRAME) == pytest.approx((0.0, 460 / 480, 90 / 640, 20 / 480))
    assert iou((0, 0, 1, 1), (0, 0, 1, 1)) == 1.0
    assert iou((0, 0, 1, 1), (0.5, 0, 1, 1)) == pytest.approx(1 / 3)
    assert iou((0, 0, 1, 1), (2, 2, 1, 1)) == 0.0
