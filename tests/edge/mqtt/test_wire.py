"""Event and state payloads against the documented schema (docs/mqtt.md)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from emocam.edge.mqtt.wire import (
    EmotionEvent,
    FaceInView,
    event_payload,
    iso_utc,
    state_payload,
)
from emocam.edge.payloads import parse_state, parse_stats
from emocam.edge.tracking.tracker import FaceTracker, TrackerSettings
from emocam.edge.vision.faces import Face
from tests.edge.conftest import assert_exact_event

LABELS = ("angry", "fear", "happy", "neutral", "sad", "surprise")
SCORES = (0.01, 0.02, 0.81234, 0.1, 0.03, 0.02766)
TS = datetime(2026, 11, 5, 12, 0, 0, 123000, tzinfo=UTC).timestamp()


def make_event(kind: str = "changed", previous: str | None = "neutral") -> EmotionEvent:
    return EmotionEvent(
        type=kind,  # type: ignore[arg-type]
        face=7,
        emotion="happy",
        confidence=SCORES[2],
        labels=LABELS,
        scores=SCORES,
        box=(0.1, 0.2, 0.25, 1 / 3),
        ts=TS,
        previous=previous,
    )


def test_event_payload_has_the_documented_shape() -> None:
    payload = event_payload(make_event(), device="kitchen", model_version="1.2")
    assert payload == {
        "schema": 1,
        "type": "changed",
        "ts": "2026-11-05T12:00:00.123Z",
        "device": "kitchen",
        "face": 7,
        "emotion": "happy",
        "confidence": 0.8123,
        "scores": {"angry": 0.01, "fear": 0.02, "happy": 0.8123, "neutral": 0.1, "sad": 0.03, "surprise": 0.0277},
        "box": {"x": 0.1, "y": 0.2, "w": 0.25, "h": 0.3333},
        "model": "1.2",
        "previous": "neutral",
    }
    assert list(payload["scores"]) == list(LABELS)  # label order is the model's output order
    json.dumps(payload, allow_nan=False)  # plain JSON, no numpy types
    assert_exact_event(payload, LABELS)


def test_appeared_and_left_carry_no_previous() -> None:
    for kind in ("appeared", "left"):
        payload = event_payload(make_event(kind, previous=None), "kitchen", "1.2")
        assert "previous" not in payload
        assert_exact_event(payload, LABELS)


def test_seq_numbers_events_when_given() -> None:
    payload = event_payload(make_event(), "kitchen", "1.2", seq=41)
    assert payload["seq"] == 41 and list(payload)[-1] == "seq"
    assert assert_exact_event(payload, LABELS).seq == 41
    assert "seq" not in event_payload(make_event(), "kitchen", "1.2")
    for bad in (0, -1, True, 2.0):
        with pytest.raises(ValueError, match="seq="):
            event_payload(make_event(), "kitchen", "1.2", seq=bad)  # type: ignore[arg-type]


def test_media_s_places_an_event_from_a_file() -> None:
    payload = event_payload(make_event(), "kitchen", "1.2", seq=3, media_s=754.12349)
    assert payload["media_s"] == 754.123 and list(payload)[-2:] == ["seq", "media_s"]  # milliseconds, like ts
    assert assert_exact_event(payload, LABELS).media_s == 754.123
    assert event_payload(make_event(), "kitchen", "1.2", media_s=0)["media_s"] == 0.0  # the first frame
    assert "media_s" not in event_payload(make_event(), "kitchen", "1.2")  # a camera: no position
    for bad in (-0.5, float("nan"), float("inf"), True, "12.5"):
        with pytest.raises(ValueError, match="media_s="):
            event_payload(make_event(), "kitchen", "1.2", media_s=bad)  # type: ignore[arg-type]


def test_an_event_stays_within_its_400_byte_budget() -> None:
    """docs/mqtt.md: at most 400 bytes with the six-class model, a 64-character device id, an
    8-character model version and face ids and seq below a million; about 310 bytes typically.
    An event from a file carries media_s too: at most 20 bytes more, for a file under a day."""
    scores = (0.1111, 0.1113, 0.1114, 0.1115, 0.1116, 0.4431)
    worst = EmotionEvent("changed", 999_999, "surprise", 0.4431, LABELS, scores, (0.1234, 0.2345, 0.3456, 0.4567),
                         TS, previous="neutral")
    wire = json.dumps(event_payload(worst, "d" * 64, "12.34.56", seq=999_999), separators=(",", ":"))
    assert len(wire.encode()) <= 400, len(wire)
    from_file = event_payload(worst, "d" * 64, "12.34.56", seq=999_999, media_s=86_399.9994)
    assert len(json.dumps(from_file, separators=(",", ":")).encode()) <= 420
    typical = EmotionEvent("appeared", 3, "neutral", 0.7112, LABELS, (0.0312, 0.0401, 0.1206, 0.7112, 0.0755, 0.0214),
                           (0.4125, 0.2208, 0.1797, 0.2396), TS)
    size = len(json.dumps(event_payload(typical, "kitchen", "1.3.0", seq=120), separators=(",", ":")))
    assert 280 <= size <= 330, size
    size = len(json.dumps(event_payload(typical, "kitchen", "1.3.0", seq=120, media_s=95.4), separators=(",", ":")))
    assert size <= 350, size


def test_event_value_checks() -> None:
    with pytest.raises(ValueError, match="previous"):
        make_event("appeared", previous="neutral")
    with pytest.raises(ValueError, match="previous"):
        make_event("changed", previous=None)
    with pytest.raises(ValueError, match="'moved'"):
        make_event("moved", previous=None)


def test_iso_utc_is_utc_with_z() -> None:
    assert iso_utc(0.0) == "1970-01-01T00:00:00.000Z"
    assert iso_utc(TS) == "2026-11-05T12:00:00.123Z"


def test_state_payload_lists_faces_largest_first() -> None:
    faces = [
        FaceInView(face=3, emotion="sad", confidence=0.61234, box=(0.0, 0.0, 0.1, 0.1),
                   scores={"happy": 0.38766, "sad": 0.61234}),
        FaceInView(face=4, emotion="happy", confidence=0.9, box=(0.5, 0.5, 0.3, 0.3),
                   scores={"happy": 0.9, "sad": 0.1}),
    ]
    payload = state_payload(faces, device="kitchen", model_version="1.2", ts=TS)
    assert payload == {
        "schema": 1,
        "ts": "2026-11-05T12:00:00.123Z",
        "device": "kitchen",
        "model": "1.2",
        "count": 2,
        "emotion": "happy",
        "confidence": 0.9,
        "scores": {"happy": 0.9, "sad": 0.1},
        "faces": [
            {"face": 4, "emotion": "happy", "confidence": 0.9, "box": {"x": 0.5, "y": 0.5, "w": 0.3, "h": 0.3},
             "scores": {"happy": 0.9, "sad": 0.1}},
            {"face": 3, "emotion": "sad", "confidence": 0.6123, "box": {"x": 0.0, "y": 0.0, "w": 0.1, "h": 0.1},
             "scores": {"happy": 0.3877, "sad": 0.6123}},
        ],
    }
    assert parse_state(payload).faces[1].scores == {"happy": 0.3877, "sad": 0.6123}
    empty = state_payload([], "kitchen", "1.2", TS)
    fields = (empty["count"], empty["emotion"], empty["confidence"], empty["scores"], empty["faces"])
    assert fields == (0, None, None, None, [])
    assert parse_state(empty).emotion is None


def test_tracker_events_make_valid_payloads() -> None:
    tracker = FaceTracker(TrackerSettings(hold_seconds=0.5, smoothing_seconds=0.3), LABELS)
    rng = np.random.default_rng(0)
    events = []
    for i in range(60):
        t = i / 10
        raw = rng.dirichlet(np.ones(len(LABELS)) * 0.3, size=2).astype(np.float32)  # noisy, like a model
        faces = [Face((600.0, 10.0, 60.0, 60.0), 0.9), Face((10.0, 400.0, 50.0, 80.0), 0.8)]  # at the edges
        events += tracker.update(t, faces if i < 40 else [], raw if i < 40 else raw[:0], (640, 480), 1e9 + t)
    events += tracker.flush(6.0, 1e9 + 6)
    kinds = [e.type for e in events]
    assert kinds.count("appeared") == 2 and kinds.count("left") == 2
    for event in events:
        payload = json.loads(json.dumps(event_payload(event, "kitchen", "0.0-placeholder")))
        assert_exact_event(payload, LABELS)


def test_the_documented_examples_follow_the_schema() -> None:
    text = (Path(__file__).resolve().parents[3] / "docs" / "mqtt.md").read_text(encoding="utf-8")
    examples = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, flags=re.S)]
    events = [e for e in examples if "type" in e]
    assert sorted(e["type"] for e in events) == ["appeared", "changed", "left"]
    for payload in events:
        assert_exact_event(payload, LABELS)
    (state,) = [e for e in examples if "faces" in e and isinstance(e["faces"], list)]
    face = FaceInView(1, "happy", 0.8, (0.1, 0.1, 0.2, 0.2), {"happy": 0.8, "sad": 0.2})
    made = state_payload([face], "kitchen", "1.0", TS)
    assert set(state) == set(made) and set(state["faces"][0]) == set(made["faces"][0])
    assert not parse_state(state).extra
    (stats,) = [e for e in examples if "uptime_s" in e]
    assert not parse_stats(stats).extra
