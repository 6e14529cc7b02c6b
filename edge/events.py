"""Emotion events and the JSON payloads that carry them (the topic contract in docs/mqtt.md).

The tracker produces ``EmotionEvent`` values and ``FaceState`` snapshots; publishers send the dicts
that ``event_payload`` and ``state_payload`` build. ``validate_event_payload`` is the executable
form of the documented schema: tests use it on what a real subscriber receives.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal, Mapping, Sequence

EventType = Literal["appeared", "changed", "left"]
EVENT_TYPES: tuple[EventType, ...] = ("appeared", "changed", "left")
SCHEMA_VERSION = 1

# Scores are smoothed int8 probabilities rounded to 4 places: their sum drifts a little from 1.
_SUM_TOLERANCE = 0.05
_ROUNDING = 4
_ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")

Box = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class EmotionEvent:
    """A face appeared, its emotion changed, or it left.

    ``box`` is normalized to the frame (x, y, w, h in 0..1), ``scores`` are the smoothed
    probabilities in ``labels`` order, ``confidence`` is the smoothed probability of ``emotion``
    and ``ts`` is epoch seconds. ``previous`` is the emotion reported before, for ``changed`` only.
    """

    type: EventType
    face: int
    emotion: str
    confidence: float
    labels: tuple[str, ...]
    scores: tuple[float, ...]
    box: Box
    ts: float
    previous: str | None = None

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"event type {self.type!r} is not one of {', '.join(EVENT_TYPES)}")
        if len(self.labels) != len(self.scores):
            raise ValueError(f"{len(self.scores)} scores for {len(self.labels)} labels")
        if self.emotion not in self.labels:
            raise ValueError(f"emotion {self.emotion!r} is not one of the labels {list(self.labels)}")
        if (self.previous is not None) != (self.type == "changed"):
            raise ValueError("previous is set for 'changed' events and only for them")

    @property
    def scores_by_label(self) -> dict[str, float]:
        return dict(zip(self.labels, self.scores))


@dataclass(frozen=True, slots=True)
class FaceState:
    """A confirmed face in view, as the retained state topic shows it."""

    face: int
    emotion: str
    confidence: float
    box: Box

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]


def iso_utc(ts: float) -> str:
    """Epoch seconds -> ``2026-11-05T12:00:00.123Z`` (what every payload's ``ts`` holds)."""
    moment = datetime.fromtimestamp(ts, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _box_dict(box: Box) -> dict[str, float]:
    return {key: round(float(value), _ROUNDING) for key, value in zip("xywh", box)}


def event_payload(event: EmotionEvent, device: str, model_version: str) -> dict[str, Any]:
    """The JSON object published on ``<prefix>/<device>/events`` for one event."""
    payload: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "type": event.type,
        "ts": iso_utc(event.ts),
        "device": device,
        "face": event.face,
        "emotion": event.emotion,
        "confidence": round(float(event.confidence), _ROUNDING),
        "scores": {label: round(float(s), _ROUNDING) for label, s in zip(event.labels, event.scores)},
        "box": _box_dict(event.box),
        "model": model_version,
    }
    if event.previous is not None:
        payload["previous"] = event.previous
    return payload


def state_payload(faces: Sequence[FaceState], device: str, model_version: str, ts: float) -> dict[str, Any]:
    """The retained object on ``<prefix>/<device>/state``: every confirmed face, largest first.

    ``emotion`` is the emotion of the largest (most prominent) face, or null when none is in view,
    so a dashboard or Home Assistant sensor can show one value without a template loop.
    """
    ordered = sorted(faces, key=lambda f: (-f.area, f.face))
    return {
        "schema": SCHEMA_VERSION,
        "ts": iso_utc(ts),
        "device": device,
        "model": model_version,
        "count": len(ordered),
        "emotion": ordered[0].emotion if ordered else None,
        "faces": [
            {
                "face": f.face,
                "emotion": f.emotion,
                "confidence": round(float(f.confidence), _ROUNDING),
                "box": _box_dict(f.box),
            }
            for f in ordered
        ],
    }


_NUMBER = {"type": "number", "minimum": 0, "maximum": 1}

# The event payload as JSON Schema (draft 2020-12), for docs and for consumers that validate.
# validate_event_payload checks the same rules plus the cross-field ones JSON Schema cannot say.
EVENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "emocam emotion event",
    "type": "object",
    "required": ["schema", "type", "ts", "device", "face", "emotion", "confidence", "scores", "box", "model"],
    "additionalProperties": False,
    "properties": {
        "schema": {"const": SCHEMA_VERSION},
        "type": {"enum": list(EVENT_TYPES)},
        "ts": {"type": "string", "pattern": _ISO_UTC.pattern},
        "device": {"type": "string", "minLength": 1},
        "face": {"type": "integer", "minimum": 1},
        "emotion": {"type": "string", "minLength": 1},
        "confidence": _NUMBER,
        "scores": {"type": "object", "minProperties": 2, "additionalProperties": _NUMBER},
        "box": {
            "type": "object",
            "required": ["x", "y", "w", "h"],
            "additionalProperties": False,
            "properties": {key: _NUMBER for key in "xywh"},
        },
        "model": {"type": "string"},
        "previous": {"type": "string", "minLength": 1},
    },
}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_unit(name: str, value: Any, problems: list[str]) -> None:
    if not _is_number(value) or not 0.0 <= value <= 1.0:
        problems.append(f"{name}={value!r} must be a number in 0..1")


def _event_problems(payload: Mapping[str, Any], labels: Sequence[str] | None) -> list[str]:
    problems: list[str] = []
    required = EVENT_SCHEMA["required"]
    missing = [key for key in required if key not in payload]
    if missing:
        return [f"missing keys {missing}"]
    unknown = sorted(set(payload) - set(EVENT_SCHEMA["properties"]))
    if unknown:
        problems.append(f"unknown keys {unknown}")
    if payload["schema"] != SCHEMA_VERSION or isinstance(payload["schema"], bool):
        problems.append(f"schema={payload['schema']!r}, expected {SCHEMA_VERSION}")
    kind = payload["type"]
    if kind not in EVENT_TYPES:
        problems.append(f"type={kind!r} must be one of {list(EVENT_TYPES)}")
    ts = payload["ts"]
    if not isinstance(ts, str) or not _ISO_UTC.match(ts):
        problems.append(f"ts={ts!r} must be ISO 8601 UTC ending in Z")
    if not isinstance(payload["device"], str) or not payload["device"]:
        problems.append(f"device={payload['device']!r} must be a non-empty string")
    face = payload["face"]
    if not isinstance(face, int) or isinstance(face, bool) or face < 1:
        problems.append(f"face={face!r} must be an integer >= 1")
    if not isinstance(payload["model"], str):
        problems.append(f"model={payload['model']!r} must be a string")
    _check_unit("confidence", payload["confidence"], problems)

    scores = payload["scores"]
    if not isinstance(scores, Mapping) or len(scores) < 2:
        problems.append(f"scores={scores!r} must map every label to a probability")
        return problems
    for label, value in scores.items():
        _check_unit(f"scores[{label!r}]", value, problems)
    if labels is not None and list(scores) != list(labels):
        problems.append(f"scores has labels {list(scores)}, expected {list(labels)} in that order")
    if all(_is_number(v) for v in scores.values()) and abs(sum(scores.values()) - 1.0) > _SUM_TOLERANCE:
        problems.append(f"scores sum to {sum(scores.values()):.3f}, expected about 1")
    emotion = payload["emotion"]
    if emotion not in scores:
        problems.append(f"emotion={emotion!r} is not a key of scores")
    elif _is_number(payload["confidence"]) and abs(scores[emotion] - payload["confidence"]) > 1e-3:
        problems.append(f"confidence={payload['confidence']!r} differs from scores[{emotion!r}]")
    previous = payload.get("previous")
    if kind == "changed":
        if previous not in scores or previous == emotion:
            problems.append(f"previous={previous!r} must be another key of scores for 'changed'")
    elif "previous" in payload:
        problems.append(f"previous is only allowed for 'changed' events, not {kind!r}")

    box = payload["box"]
    if not isinstance(box, Mapping) or sorted(box) != ["h", "w", "x", "y"]:
        problems.append(f"box={box!r} must be an object with exactly x, y, w, h")
        return problems
    for key in "xywh":
        _check_unit(f"box.{key}", box[key], problems)
    if all(_is_number(box[k]) for k in "xywh"):
        if box["w"] <= 0 or box["h"] <= 0:
            problems.append(f"box={dict(box)} must have a positive width and height")
        if box["x"] + box["w"] > 1.0 + 1e-3 or box["y"] + box["h"] > 1.0 + 1e-3:
            problems.append(f"box={dict(box)} reaches outside the frame")
    return problems


def validate_event_payload(payload: Any, labels: Sequence[str] | None = None) -> None:
    """Raise ValueError listing every way ``payload`` breaks the documented event schema.

    Pass ``labels`` to also require exactly those score keys, in that order.
    """
    if not isinstance(payload, Mapping):
        raise ValueError(f"event payload must be a JSON object, got {type(payload).__name__}")
    problems = _event_problems(payload, labels)
    if problems:
        raise ValueError("invalid event payload: " + "; ".join(problems))
