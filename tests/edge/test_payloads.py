"""The subscriber API (emocam.edge.payloads): what it accepts, what it refuses, and how it says why."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from emocam.edge.mqtt.wire import EVENT_SCHEMA, EmotionEvent, FaceInView, event_payload, state_payload
from emocam.edge.payloads import (
    MAX_PAYLOAD_BYTES,
    Availability,
    Box,
    Event,
    PayloadError,
    State,
    Stats,
    decode_json,
    parse_event,
    parse_message,
    parse_stats,
)

LABELS = ("angry", "fear", "happy", "neutral", "sad", "surprise")
SCORES = (0.01, 0.02, 0.81234, 0.1, 0.03, 0.02766)
TS = datetime(2026, 11, 5, 12, 0, 0, 123000, tzinfo=UTC)


def make_payload(kind: str = "changed", previous: str | None = "neutral") -> dict[str, Any]:
    event = EmotionEvent(kind, 7, "happy", SCORES[2], LABELS, SCORES, (0.1, 0.2, 0.25, 1 / 3), TS.timestamp(), previous)  # type: ignore[arg-type]
    return json.loads(json.dumps(event_payload(event, "kitchen", "1.2")))


def wire(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def test_an_event_parses_into_typed_fields() -> None:
    event = parse_message("emocam/kitchen/events", wire(make_payload()))
    assert isinstance(event, Event)
    fields = (event.type, event.device, event.face, event.emotion, event.previous)
    assert fields == ("changed", "kitchen", 7, "happy", "neutral")
    assert event.ts == TS
    assert event.confidence == pytest.approx(0.8123)
    assert list(event.scores) == list(LABELS)
    assert event.box == Box(0.1, 0.2, 0.25, 0.3333)
    assert event.extra == {}


def test_fields_from_a_newer_emocam_are_kept_aside_not_refused() -> None:
    payload = {**make_payload(), "gaze": {"x": 0.1}, "age_hint": None}
    event = parse_event(payload, LABELS)
    assert event.extra == {"gaze": {"x": 0.1}, "age_hint": None}


def test_media_s_is_read_from_file_events_and_none_otherwise() -> None:
    assert parse_event(make_payload()).media_s is None  # a camera, or an emocam before media_s
    event = parse_event({**make_payload(), "media_s": 12.5})
    assert event.media_s == 12.5 and event.extra == {}
    assert parse_event({**make_payload(), "media_s": 0}).media_s == 0.0
    for bad in (-1, "12.5", True, [1]):
        with pytest.raises(PayloadError, match="media_s="):
            parse_event({**make_payload(), "media_s": bad})


def test_seq_is_read_when_sent_and_none_from_older_emocams() -> None:
    assert parse_event(make_payload()).seq is None  # emocam before seq: still an event
    event = parse_event({**make_payload(), "seq": 12})
    assert event.seq == 12 and event.extra == {}
    for bad in ("12", 0, 1.5, True):
        with pytest.raises(PayloadError, match="seq="):
            parse_event({**make_payload(), "seq": bad})


def test_a_newer_schema_is_refused_with_advice() -> None:
    with pytest.raises(PayloadError, match="schema 2 is newer than this emocam reads .1.; upgrade emocam"):
        parse_event({**make_payload(), "schema": 2})


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(payload: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = payload
        for key in parents:
            target = target[key]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value

    return mutate


_DELETE = object()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_set("box", _DELETE), "box=None must be an object"),
        (_set("schema", 0), "schema=0"),
        (_set("schema", "1"), "schema='1'"),
        (_set("type", "moved"), "type='moved'"),
        (_set("ts", "2026-11-05T12:00:00+00:00"), "ts="),
        (_set("ts", "2026-13-45T12:00:00Z"), "not a real date"),
        (_set("ts", 1700000000), "ts="),
        (_set("device", ""), "device="),
        (_set("face", 0), "face=0"),
        (_set("face", True), "face=True"),
        (_set("face", "7"), "face='7'"),
        (_set("confidence", 1.5), "confidence=1.5"),
        (_set("confidence", 0.5), "differs from scores['happy']"),
        (_set("scores.happy", _DELETE), "emotion='happy' is not a key of scores"),
        (_set("scores.sad", 0.5), "scores sum to"),
        (_set("scores.sad", float("nan")), "scores['sad']"),
        (_set("scores", [0.5, 0.5]), "must map every label"),
        (_set("box.x", 0.9), "reaches outside the frame"),
        (_set("box.w", 0.0), "positive width"),
        (_set("box.h", _DELETE), "x, y, w and h"),
        (_set("previous", "happy"), "previous='happy'"),
        (_set("previous", _DELETE), "previous is missing"),
        (_set("model", 3), "model=3"),
    ],
)
def test_each_problem_is_named(mutate: Callable[[dict[str, Any]], None], message: str) -> None:
    payload = make_payload()
    mutate(payload)
    with pytest.raises(PayloadError, match="invalid event payload") as error:
        parse_event(payload)
    assert message in str(error.value)


def test_every_problem_is_listed_at_once() -> None:
    payload = {**make_payload(), "face": 0, "confidence": "high", "device": 5}
    with pytest.raises(PayloadError) as error:
        parse_event(payload)
    assert len(error.value.problems) == 3, error.value.problems


def test_label_order_is_checked_when_given_and_previous_only_on_changed() -> None:
    with pytest.raises(PayloadError, match="expected .* in that order"):
        parse_event(make_payload(), tuple(reversed(LABELS)))
    appeared = make_payload("appeared", None)
    parse_event(appeared, LABELS)
    with pytest.raises(PayloadError, match="only allowed for 'changed'"):
        parse_event({**appeared, "previous": "neutral"})


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[1, 2]", "a JSON list where an object was expected"),
        (b"null", "a JSON NoneType"),
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b" " * (MAX_PAYLOAD_BYTES + 1), "over the 65536-byte limit"),
    ],
)
def test_malformed_bytes_are_refused_clearly(payload: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        decode_json(payload)
    with pytest.raises(PayloadError):
        parse_message("emocam/kitchen/events", payload)


def test_topics_route_to_the_right_type() -> None:
    face = FaceInView(4, "happy", 0.9, (0.5, 0.5, 0.3, 0.3), {"happy": 0.9, "sad": 0.1})
    state = parse_message("emocam/kitchen/state", wire(state_payload([face], "kitchen", "1.2", TS.timestamp())))
    assert isinstance(state, State)
    assert (state.count, state.emotion, state.confidence, state.scores) == (1, "happy", 0.9, {"happy": 0.9, "sad": 0.1})
    assert state.faces[0].box == Box(0.5, 0.5, 0.3, 0.3)
    availability = parse_message("emocam/kitchen/availability", b"offline")
    assert availability == Availability("kitchen", "offline") and not availability.online
    with pytest.raises(PayloadError, match="topic"):
        parse_message("emocam/kitchen/snapshot", b"{}")
    with pytest.raises(PayloadError, match="topic"):
        parse_message("other/kitchen/events", wire(make_payload()))
    nested = parse_message("home/emocam/kitchen/events", wire(make_payload()), prefix="home/emocam")
    assert isinstance(nested, Event) and nested.device == "kitchen"
    wrongs = ("emocam/kitchen/events", "home/emocam/a/b/events", "x/home/emocam/kitchen/events", "home/emocam//events")
    for wrong in wrongs:
        with pytest.raises(PayloadError, match="topic"):
            parse_message(wrong, wire(make_payload()), prefix="home/emocam")
    with pytest.raises(PayloadError, match="device='kitchen' but the topic says 'hall'"):
        parse_message("emocam/hall/events", wire(make_payload()))


def test_state_consistency_is_checked() -> None:
    face = FaceInView(1, "sad", 0.7, (0.1, 0.1, 0.2, 0.2), {"happy": 0.3, "sad": 0.7})
    made = state_payload([face], "kitchen", "1.0", TS.timestamp())
    with pytest.raises(PayloadError, match="count=3 but faces lists 1"):
        parse_message("emocam/kitchen/state", wire({**made, "count": 3}))
    with pytest.raises(PayloadError, match="largest"):
        parse_message("emocam/kitchen/state", wire({**made, "emotion": "happy"}))
    older = {k: v for k, v in made.items() if k not in ("confidence", "scores")}  # before scores were sent
    assert parse_message("emocam/kitchen/state", wire(older)).scores is None  # type: ignore[union-attr]


def test_stats_parse_with_optional_fields_missing() -> None:
    minimal = {"schema": 1, "ts": "2026-11-05T12:00:30.000Z", "device": "kitchen", "model": "1.0",
               "uptime_s": 30.0, "fps": 29.8, "faces": 2, "frames": 894}
    stats = parse_stats(minimal)
    assert isinstance(stats, Stats)
    assert (stats.fps, stats.rss_mb, stats.mqtt, stats.latency_ms) == (29.8, None, {}, {})
    with pytest.raises(PayloadError, match="fps='fast'"):
        parse_stats({**minimal, "fps": "fast"})


def test_json_schema_agrees_with_the_parser() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(EVENT_SCHEMA)
    validator = jsonschema.Draft202012Validator(EVENT_SCHEMA)
    good = make_payload()
    assert list(validator.iter_errors(good)) == []
    assert list(validator.iter_errors({**good, "seq": 3})) == []
    assert list(validator.iter_errors({**good, "seq": 3, "media_s": 12.345})) == []
    for bad in ({**good, "type": "moved"}, {**good, "face": 0}, {**good, "ts": "yesterday"}, {**good, "seq": 0},
                {**good, "box": {"x": 0.1, "y": 0.2, "w": 2.0, "h": 0.1}}, {**good, "media_s": -1},
                {**good, "media_s": "12.5"}):
        assert list(validator.iter_errors(bad)), bad
        with pytest.raises(PayloadError):
            parse_event(bad)
