"""The subscriber API: emocam's MQTT payloads parsed and checked into typed objects.

    from emocam.edge.payloads import Event, PayloadError, parse_message

    def on_message(client, userdata, msg):          # a paho-mqtt callback
        try:
            message = parse_message(msg.topic, msg.payload)
        except PayloadError as exc:
            print(f"skipped {msg.topic}: {exc}")
            return
        if isinstance(message, Event):
            print(message.device, message.face, message.emotion, message.confidence)

The contract is docs/mqtt.md; the facts it shares with the publisher (topics, schema version,
``Box``, ``FaceInView``) live in ``emocam.edge.mqtt.wire``. Two rules make subscribers last across emocam upgrades:

- A field this version does not know is kept in ``extra`` and otherwise ignored: emocam adds
  fields without changing ``schema``.
- A ``schema`` newer than ``SCHEMA_VERSION`` is refused, because ``schema`` changes only when a
  field changes meaning or disappears: reading it the old way would be wrong, not just incomplete.

Every problem in a payload is listed in one ``PayloadError`` (a ``ValueError``). Only the standard
library is used, so parsing costs nothing on a Pi or in a Home Assistant add-on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from emocam.edge.mqtt.wire import EVENT_SCHEMA, EVENT_TYPES, ISO_UTC, SCHEMA_VERSION, TOPIC_KINDS, Box, FaceInView

__all__ = [
    "MAX_PAYLOAD_BYTES", "SCHEMA_VERSION", "Availability", "Box", "Event", "FaceInView", "Message",
    "PayloadError", "State", "Stats", "decode_json", "parse_event", "parse_message", "parse_state",
    "parse_stats", "split_topic",
]

# An event is about 0.4 KB and a state with 20 faces about 5 KB: anything far bigger is not ours.
MAX_PAYLOAD_BYTES = 64 * 1024
# Scores are smoothed probabilities rounded to 4 places: their sum drifts a little from 1.
_SUM_TOLERANCE = 0.05


class PayloadError(ValueError):
    """A payload that is not valid emocam JSON; ``problems`` lists every reason."""

    def __init__(self, what: str, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"invalid {what}: " + "; ".join(self.problems))


@dataclass(frozen=True, slots=True)
class Event:
    """One message of ``<prefix>/<device>/events``: a face ``appeared``, ``changed`` or ``left``."""

    type: str
    ts: datetime
    device: str
    face: int
    emotion: str
    confidence: float
    scores: Mapping[str, float]
    box: Box
    model: str
    previous: str | None = None
    schema: int = SCHEMA_VERSION
    extra: Mapping[str, Any] = field(default_factory=dict)
    seq: int | None = None  # the device's event number since it started; None from older emocams
    media_s: float | None = None  # seconds into the video file or image folder; None from a camera or older emocams


@dataclass(frozen=True, slots=True)
class State:
    """The retained ``<prefix>/<device>/state``: the faces in view, largest first.

    ``emotion``, ``confidence`` and ``scores`` are those of the largest face, None with no face.
    """

    ts: datetime
    device: str
    model: str
    count: int
    emotion: str | None
    faces: tuple[FaceInView, ...]
    confidence: float | None = None
    scores: Mapping[str, float] | None = None
    schema: int = SCHEMA_VERSION
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Stats:
    """``<prefix>/<device>/stats``: health counters. Fields a daemon may omit are None or empty."""

    ts: datetime
    device: str
    model: str
    uptime_s: float
    fps: float
    faces: int
    frames: int
    dropped_frames: int | None = None
    skipped_frames: int | None = None
    frame_errors: int | None = None
    source: str | None = None
    source_ok: bool | None = None
    source_reopens: int | None = None
    latency_ms: Mapping[str, float | None] = field(default_factory=dict)
    rss_mb: float | None = None
    peak_rss_mb: float | None = None
    cpu_temp_c: float | None = None
    mqtt: Mapping[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Availability:
    """``<prefix>/<device>/availability``: ``online``, ``offline`` (the last will) or ``stopped``."""

    device: str
    status: str

    @property
    def online(self) -> bool:
        return self.status == "online"


Message = Event | State | Stats | Availability


# ---- decoding ----


def decode_json(payload: bytes | bytearray | str) -> dict[str, Any]:
    """Bytes off the wire -> a JSON object, or PayloadError saying why not."""
    size = len(payload)
    if size > MAX_PAYLOAD_BYTES:
        raise PayloadError("payload", [f"{size} bytes is over the {MAX_PAYLOAD_BYTES}-byte limit"])
    try:
        text = payload.decode("utf-8") if isinstance(payload, (bytes, bytearray)) else payload
        data = json.loads(text)
    except UnicodeDecodeError as exc:
        raise PayloadError("payload", [f"not UTF-8 ({exc.reason} at byte {exc.start})"]) from None
    except json.JSONDecodeError as exc:
        raise PayloadError("payload", [f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"]) from None
    except RecursionError:
        raise PayloadError("payload", ["JSON nested too deeply"]) from None
    if not isinstance(data, dict):
        raise PayloadError("payload", [f"a JSON {type(data).__name__} where an object was expected"])
    return data


def split_topic(topic: str, prefix: str = "emocam") -> tuple[str, str]:
    """``emocam/kitchen/events`` -> (``kitchen``, ``events``); PayloadError for any other topic.

    ``prefix`` may have several levels (``home/emocam``), as ``[mqtt] topic_prefix`` allows.
    """
    head, _, rest = topic.partition(prefix + "/")
    parts = rest.split("/")
    if head or len(parts) != 2 or not parts[0] or parts[1] not in TOPIC_KINDS:
        raise PayloadError("topic", [f"{topic!r} is not {prefix}/<device>/{{{','.join(TOPIC_KINDS)}}}"])
    return parts[0], parts[1]


def parse_message(topic: str, payload: bytes | bytearray | str, prefix: str = "emocam") -> Message:
    """Any emocam message, by its topic: the one call a subscriber needs."""
    device, kind = split_topic(topic, prefix)
    if kind == "availability":
        raw = payload.decode("utf-8", "replace") if isinstance(payload, (bytes, bytearray)) else payload
        status = raw.strip()
        if not status or len(status) > 64:
            raise PayloadError("availability", [f"{raw[:80]!r} is not a status such as online or offline"])
        return Availability(device, status)
    data = decode_json(payload)
    parsed: Event | State | Stats
    if kind == "events":
        parsed = parse_event(data)
    elif kind == "state":
        parsed = parse_state(data)
    else:
        parsed = parse_stats(data)
    if parsed.device != device:
        raise PayloadError(kind, [f"device={parsed.device!r} but the topic says {device!r}"])
    return parsed


# ---- field checks: each appends a problem and returns None instead of raising ----


class _Checker:
    """Reads fields of one payload, collecting every problem rather than stopping at the first."""

    def __init__(self, data: Mapping[str, Any], what: str, known: Set[str], prefix: str = "",
                 problems: list[str] | None = None) -> None:
        """``prefix`` names a nested object in messages (``faces[0].``); ``problems`` is its parent's list."""
        self.data, self.what, self.prefix = data, what, prefix
        self.problems: list[str] = [] if problems is None else problems
        self.extra = {k: v for k, v in data.items() if k not in known}

    @classmethod
    def of(cls, data: Any, what: str, known: Set[str]) -> _Checker:
        """A checker for a whole payload, which must be a JSON object."""
        if not _is_object(data):
            raise PayloadError(what, [f"a JSON {type(data).__name__} where an object was expected"])
        return cls(data, what, known)

    def fail(self, problem: str) -> None:
        self.problems.append(self.prefix + problem)

    def raise_if_any(self) -> None:
        if self.problems:
            raise PayloadError(self.what, self.problems)

    def schema(self) -> int:
        value = self.data.get("schema")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            self.fail(f"schema={value!r} must be an integer >= 1")
            self.raise_if_any()
            raise AssertionError("unreachable: raise_if_any raised")  # for the type checker
        if value > SCHEMA_VERSION:
            self.fail(f"schema {value} is newer than this emocam reads ({SCHEMA_VERSION}); upgrade emocam here")
            self.raise_if_any()
        return int(value)

    def present(self, key: str, required: bool) -> bool:
        if key in self.data and self.data[key] is not None:
            return True
        if required:
            self.fail(f"{key} is {'null' if key in self.data else 'missing'}")
        return False

    def text(self, key: str, required: bool = True, empty_ok: bool = False) -> str | None:
        if not self.present(key, required):
            return None
        value = self.data[key]
        if not isinstance(value, str) or not (value or empty_ok):
            self.fail(f"{key}={value!r} must be a {'' if empty_ok else 'non-empty '}string")
            return None
        return value

    def integer(self, key: str, minimum: int = 0, required: bool = True) -> int | None:
        if not self.present(key, required):
            return None
        value = self.data[key]
        if not _is_int(value) or value < minimum:
            self.fail(f"{key}={value!r} must be an integer >= {minimum}")
            return None
        return int(value)

    def number(self, key: str, unit: bool = False, required: bool = True) -> float | None:
        if not self.present(key, required):
            return None
        value = self.data[key]
        if unit and (number := _unit_or_none(value)) is not None:
            return number
        return _number(self.prefix + key, value, unit, self.problems)

    def timestamp(self) -> datetime | None:
        value = self.data.get("ts")
        if not isinstance(value, str) or not ISO_UTC.match(value):
            self.fail(f"ts={value!r} must be ISO 8601 UTC ending in Z")
            return None
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"ts={value!r} is not a real date and time")
            return None

    def scores(self, key: str, required: bool = True) -> dict[str, float] | None:
        if not self.present(key, required):
            return None
        return _scores(self.prefix + key, self.data[key], self.problems)

    def box(self, key: str = "box") -> Box | None:
        return _box(self.prefix + key, self.data.get(key), self.problems)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_object(value: Any) -> bool:
    return type(value) is dict or isinstance(value, Mapping)  # json.loads makes dicts: the fast check first


def _unit_or_none(value: Any) -> float | None:
    """A number in 0..1 as float, or None; the check every score and box field needs, kept cheap
    because a listener runs it ten times per event."""
    kind = type(value)
    if (kind is float or kind is int) and 0.0 <= value <= 1.0:  # NaN fails the comparison
        return float(value)
    return None


def _number(name: str, value: Any, unit: bool, problems: list[str]) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (unit and not 0.0 <= value <= 1.0):
        problems.append(f"{name}={value!r} must be a number" + (" in 0..1" if unit else ""))
        return None
    return float(value)


def _scores(name: str, value: Any, problems: list[str]) -> dict[str, float] | None:
    if not _is_object(value) or len(value) < 2:
        problems.append(f"{name}={value!r} must map every label to a probability")
        return None
    scores: dict[str, float] = {}
    for k, v in value.items():
        number = _unit_or_none(v)
        if number is None:
            number = _number(f"{name}[{k!r}]", v, True, problems)  # a subclass of int/float, or a problem
            if number is None:
                continue
        scores[str(k)] = number
    if len(scores) < len(value):
        return None
    total = sum(scores.values())
    if abs(total - 1.0) > _SUM_TOLERANCE:
        problems.append(f"{name} sum to {total:.3f}, expected about 1")
    return scores


def _box(name: str, value: Any, problems: list[str]) -> Box | None:
    if not _is_object(value) or "x" not in value or "y" not in value or "w" not in value or "h" not in value:
        problems.append(f"{name}={value!r} must be an object with x, y, w and h")
        return None
    x, y = _unit_or_none(value["x"]), _unit_or_none(value["y"])
    w, h = _unit_or_none(value["w"]), _unit_or_none(value["h"])
    if x is None or y is None or w is None or h is None:
        before = len(problems)
        x, y, w, h = (_number(f"{name}.{k}", value[k], True, problems) for k in "xywh")
        if len(problems) > before or x is None or y is None or w is None or h is None:
            return None
    if w <= 0 or h <= 0:
        problems.append(f"{name}={dict(value)} must have a positive width and height")
    if x + w > 1.0 + 1e-3 or y + h > 1.0 + 1e-3:
        problems.append(f"{name}={dict(value)} reaches outside the frame")
    return Box(x, y, w, h)


# ---- the three JSON payloads ----

# Sets, because every field of every message is looked up in them (what is not there goes to extra).
_EVENT_FIELDS = frozenset(EVENT_SCHEMA["properties"])  # one list of the event's fields: the schema's
_STATE_FIELDS = frozenset(("schema", "ts", "device", "model", "count", "emotion", "confidence", "scores", "faces"))
_FACE_FIELDS = frozenset(("face", "emotion", "confidence", "box", "scores"))
_STATS_FIELDS = frozenset(("schema", "ts", "device", "model", "uptime_s", "fps", "faces", "frames", "dropped_frames",
                           "skipped_frames", "frame_errors", "source", "source_ok", "source_reopens", "latency_ms",
                           "rss_mb", "peak_rss_mb", "cpu_temp_c", "mqtt"))


def parse_event(data: Any, labels: Sequence[str] | None = None) -> Event:
    """An event payload (decoded JSON) -> Event. ``labels``: also require exactly these score keys."""
    c = _Checker.of(data, "event payload", _EVENT_FIELDS)
    schema = c.schema()
    kind = c.text("type")
    if kind is not None and kind not in EVENT_TYPES:
        c.fail(f"type={kind!r} must be one of {list(EVENT_TYPES)}")
    # An empty model version is legal: a model whose sidecar gives none.
    ts, device, model = c.timestamp(), c.text("device"), c.text("model", empty_ok=True)
    face = c.integer("face", minimum=1)
    emotion, confidence = c.text("emotion"), c.number("confidence", unit=True)
    scores, box = c.scores("scores"), c.box()
    previous = c.text("previous", required=kind == "changed")
    seq = c.integer("seq", minimum=1, required=False)  # absent from emocam versions before it was sent
    media_s = c.number("media_s", required=False)  # only from files, and from emocam versions that send it
    if media_s is not None and media_s < 0:
        c.fail(f"media_s={media_s!r} must be a number of seconds >= 0")
    if scores is not None:
        if labels is not None and list(scores) != list(labels):
            c.fail(f"scores has labels {list(scores)}, expected {list(labels)} in that order")
        if emotion is not None and emotion not in scores:
            c.fail(f"emotion={emotion!r} is not a key of scores")
        elif emotion is not None and confidence is not None and abs(scores[emotion] - confidence) > 1e-3:
            c.fail(f"confidence={confidence!r} differs from scores[{emotion!r}]={scores[emotion]!r}")
        if kind == "changed" and previous is not None and (previous not in scores or previous == emotion):
            c.fail(f"previous={previous!r} must be another key of scores")
    if kind in ("appeared", "left") and "previous" in data:
        c.fail(f"previous is only allowed for 'changed' events, not {kind!r}")
    c.raise_if_any()
    return Event(kind, ts, device, face, emotion, confidence, scores, box, model, previous, schema, c.extra,  # type: ignore[arg-type]
                 seq, media_s)


def parse_state(data: Any) -> State:
    """A retained state payload (decoded JSON) -> State."""
    c = _Checker.of(data, "state payload", _STATE_FIELDS)
    schema = c.schema()
    ts, device = c.timestamp(), c.text("device")
    model = c.text("model", empty_ok=True)
    count = c.integer("count")
    emotion = c.text("emotion", required=False)
    confidence = c.number("confidence", unit=True, required=False)
    scores = c.scores("scores", required=False)
    faces: list[FaceInView] = []
    listed = data.get("faces")
    if not isinstance(listed, list):
        c.fail(f"faces={listed!r} must be a list")
    else:
        for i, item in enumerate(listed):
            face = _face_in_view(f"faces[{i}]", item, c.problems)
            if face is not None:
                faces.append(face)
        if count is not None and count != len(listed):
            c.fail(f"count={count} but faces lists {len(listed)}")
        if listed and faces and emotion != faces[0].emotion:
            c.fail(f"emotion={emotion!r} is not the first (largest) face's {faces[0].emotion!r}")
        if not listed and emotion is not None:
            c.fail(f"emotion={emotion!r} with no face in view; expected null")
    c.raise_if_any()
    return State(ts, device, model, count, emotion, tuple(faces), confidence, scores, schema, c.extra)  # type: ignore[arg-type]


def _face_in_view(name: str, item: Any, problems: list[str]) -> FaceInView | None:
    if not isinstance(item, Mapping):
        problems.append(f"{name}={item!r} must be an object")
        return None
    before = len(problems)
    c = _Checker(item, "state payload", _FACE_FIELDS, prefix=f"{name}.", problems=problems)
    face, emotion = c.integer("face", minimum=1), c.text("emotion")
    confidence, box = c.number("confidence", unit=True), c.box()
    scores = c.scores("scores", required="scores" in item)  # absent from emocam versions before scores were sent
    if len(problems) > before:
        return None
    return FaceInView(face, emotion, confidence, box, scores or {})  # type: ignore[arg-type]


def parse_stats(data: Any) -> Stats:
    """A stats payload (decoded JSON) -> Stats."""
    c = _Checker.of(data, "stats payload", _STATS_FIELDS)
    schema = c.schema()
    ts, device = c.timestamp(), c.text("device")
    model = c.text("model", empty_ok=True)
    uptime, fps = c.number("uptime_s"), c.number("fps")
    faces, frames = c.integer("faces"), c.integer("frames")
    dropped, skipped, errors, reopens = (
        c.integer(key, required=False)
        for key in ("dropped_frames", "skipped_frames", "frame_errors", "source_reopens"))
    source = c.text("source", required=False)
    source_ok = data.get("source_ok")
    if source_ok is not None and not isinstance(source_ok, bool):
        c.fail(f"source_ok={source_ok!r} must be true or false")
        source_ok = None
    latency = data.get("latency_ms", {})
    if not isinstance(latency, Mapping) or not all(
            v is None or _number("", v, False, []) is not None for v in latency.values()):
        c.fail(f"latency_ms={latency!r} must map stages to milliseconds (or null)")
        latency = {}
    rss, peak, temp = (c.number(key, required=False) for key in ("rss_mb", "peak_rss_mb", "cpu_temp_c"))
    mqtt = data.get("mqtt", {})
    if not isinstance(mqtt, Mapping):
        c.fail(f"mqtt={mqtt!r} must be an object of counters")
        mqtt = {}
    c.raise_if_any()
    return Stats(
        ts, device, model, uptime, fps, faces, frames, dropped, skipped, errors, source, source_ok,  # type: ignore[arg-type]
        reopens, dict(latency), rss, peak, temp, dict(mqtt), schema, c.extra,
    )
