"""The MQTT wire contract (docs/mqtt.md): topics, device ids, the payload builders and the event schema.

One module for what the publisher sends, what ``emocam listen`` and ``emocam.edge.payloads`` read
back, and what Home Assistant discovery points at. The tracker hands over ``EmotionEvent`` values
and ``FaceInView`` snapshots; ``event_payload`` and ``state_payload`` make the JSON objects from
them; ``emocam.edge.payloads`` parses those objects back into the same ``Box`` and ``FaceInView``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

EventType = Literal["appeared", "changed", "left"]
EVENT_TYPES: tuple[EventType, ...] = ("appeared", "changed", "left")
SCHEMA_VERSION = 1

_ROUNDING = 4
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")

# ---- topics: <prefix>/<device_id>/<kind> ----

TopicKind = Literal["events", "state", "stats", "availability"]
TOPIC_KINDS: tuple[TopicKind, ...] = ("events", "state", "stats", "availability")

# A device id becomes a topic level and a Home Assistant object id: keep it to plain characters.
_DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DEVICE_ID_RULE = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"


def is_valid_device_id(value: object) -> bool:
    """Whether ``value`` can be a topic level and a Home Assistant object id (``DEVICE_ID_RULE``)."""
    return isinstance(value, str) and _DEVICE_ID.match(value) is not None


def topic(prefix: str, device_id: str, kind: TopicKind) -> str:
    """``("emocam", "kitchen", "events")`` -> ``emocam/kitchen/events``."""
    return f"{prefix}/{device_id}/{kind}"


# ---- the values a payload carries ----


class Box(NamedTuple):
    """A face's box, normalized to the frame: x, y, w, h in 0..1, top-left origin.

    A tuple, so the tracker does its geometry on it directly and ``Box(...) == (x, y, w, h)``.
    """

    x: float
    y: float
    w: float
    h: float

    @property
    def area(self) -> float:
        return self.w * self.h


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
        return dict(zip(self.labels, self.scores, strict=True))


@dataclass(frozen=True, slots=True)
class FaceInView:
    """A confirmed face in view, as the retained state topic shows it: what the tracker reports and
    what ``emocam.edge.payloads.parse_state`` reads back.

    ``scores`` maps every label to its smoothed probability (empty from emocam versions that did
    not send it).
    """

    face: int
    emotion: str
    confidence: float
    box: Box
    scores: Mapping[str, float] = field(default_factory=dict)

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]


def iso_utc(ts: float) -> str:
    """Epoch seconds -> ``2026-11-05T12:00:00.123Z`` (what every payload's ``ts`` holds)."""
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _box_dict(box: Box) -> dict[str, float]:
    return {key: round(float(value), _ROUNDING) for key, value in zip("xywh", box, strict=True)}


def _scores_dict(scores: Mapping[str, float]) -> dict[str, float]:
    return {label: round(float(value), _ROUNDING) for label, value in scores.items()}


def event_payload(
    event: EmotionEvent, device: str, model_version: str, seq: int | None = None, media_s: float | None = None
) -> dict[str, Any]:
    """The JSON object published on ``<prefix>/<device>/events`` for one event.

    ``seq`` numbers the device's events 1, 2, 3... since it started (the daemon counts them), so
    a consumer can tell a lost event (a gap) from a repeated one; None leaves it out. ``media_s``
    is where in a video file or image folder the event happened: seconds since its start, from
    the file's own frame timestamps (``ts`` is when emocam processed it, which with
    ``--no-realtime`` is not the same); None, for a camera, leaves it out.
    """
    payload: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "type": event.type,
        "ts": iso_utc(event.ts),
        "device": device,
        "face": event.face,
        "emotion": event.emotion,
        "confidence": round(float(event.confidence), _ROUNDING),
        "scores": _scores_dict(event.scores_by_label),
        "box": _box_dict(event.box),
        "model": model_version,
    }
    if event.previous is not None:
        payload["previous"] = event.previous
    if seq is not None:
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise ValueError(f"seq={seq!r} must be an integer >= 1")
        payload["seq"] = seq
    if media_s is not None:
        if isinstance(media_s, bool) or not isinstance(media_s, (int, float)) or not (
                math.isfinite(media_s) and media_s >= 0):
            raise ValueError(f"media_s={media_s!r} must be a number of seconds >= 0")
        payload["media_s"] = round(float(media_s), 3)  # milliseconds, like ts
    return payload


def state_payload(faces: Sequence[FaceInView], device: str, model_version: str, ts: float) -> dict[str, Any]:
    """The retained object on ``<prefix>/<device>/state``: every confirmed face, largest first.

    ``emotion`` is the emotion of the largest (most prominent) face, or null when none is in view,
    so a dashboard or Home Assistant sensor can show one value without a template loop.
    """
    ordered = sorted(faces, key=lambda f: (-f.area, f.face))
    listed = [
        {
            "face": f.face,
            "emotion": f.emotion,
            "confidence": round(float(f.confidence), _ROUNDING),
            "box": _box_dict(f.box),
            "scores": _scores_dict(f.scores),
        }
        for f in ordered
    ]
    return {
        "schema": SCHEMA_VERSION,
        "ts": iso_utc(ts),
        "device": device,
        "model": model_version,
        "count": len(ordered),
        "emotion": ordered[0].emotion if ordered else None,
        "confidence": listed[0]["confidence"] if listed else None,
        "scores": listed[0]["scores"] if listed else None,
        "faces": listed,
    }


_NUMBER = {"type": "number", "minimum": 0, "maximum": 1}

# The event payload as JSON Schema (draft 2020-12), for docs and for consumers that validate.
# emocam.edge.payloads.parse_event checks the same rules plus the cross-field ones JSON Schema cannot say.
EVENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "emocam emotion event",
    "type": "object",
    "required": ["schema", "type", "ts", "device", "face", "emotion", "confidence", "scores", "box", "model"],
    "additionalProperties": False,
    "properties": {
        "schema": {"const": SCHEMA_VERSION},
        "type": {"enum": list(EVENT_TYPES)},
        "ts": {"type": "string", "pattern": ISO_UTC.pattern},
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
        "seq": {"type": "integer", "minimum": 1},
        "media_s": {"type": "number", "minimum": 0},
    },
}
