"""Face tracking: stable ids, smoothed emotions, and events only when something changes.

Per frame the daemon calls ``FaceTracker.update(now, faces, scores, frame_size)``. ``now`` is a
clock in seconds (monotonic for a camera, the video's own timestamps for a file) and drives every
duration here, so tests pass time in and never sleep. Events carry ``wall_time`` (epoch seconds).

Rules, all time-based so they do not depend on the frame rate:
- Detections are matched to tracks greedily by IoU (best pair first, at least ``min_iou``).
  Unmatched detections start new tracks; ids increase and are never reused.
- Probabilities are smoothed with an exponential moving average whose weight for a frame
  ``dt`` seconds after the previous one is ``1 - exp(-dt / smoothing_seconds)``.
- ``appeared`` is emitted once a track has existed for ``hold_seconds`` (so a one-frame false
  detection produces nothing), with the smoothed top emotion at that moment.
- ``changed`` is emitted when another emotion has led the smoothed scores for ``hold_seconds``
  without interruption (hysteresis: frame-to-frame flicker never gets there) and its smoothed
  probability is at least ``min_confidence``.
- ``left`` is emitted when a track that appeared has not been seen for ``lost_after_seconds``;
  tracks that never appeared vanish silently. ``flush`` ends every track (end of file, shutdown).

Boxes are normalized by the frame size on the way in, so events, state and IoU all work in 0..1
and a source reopened at another resolution keeps its tracks.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np

from emocam.edge.mqtt.wire import Box, EmotionEvent, EventType, FaceInView
from emocam.edge.vision.faces import Face

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TrackerSettings:
    """How long things must hold before they are reported (all in seconds)."""

    hold_seconds: float = 1.0  # a face / a new emotion must persist this long to be reported
    smoothing_seconds: float = 0.5  # time constant of the moving average over probabilities (0 = off)
    lost_after_seconds: float = 1.5  # a face unseen this long has left
    min_iou: float = 0.3  # overlap needed to treat a detection as the same face as a track
    min_confidence: float = 0.0  # smoothed probability a new emotion needs to be reported

    def __post_init__(self) -> None:
        for name in ("hold_seconds", "smoothing_seconds", "lost_after_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name}={value!r} must be a number of seconds >= 0")
        if self.lost_after_seconds <= 0:
            raise ValueError(f"lost_after_seconds={self.lost_after_seconds!r} must be > 0")
        for name in ("min_iou", "min_confidence"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}={value!r} must be a number in 0..1")
        if self.min_iou == 0.0:
            raise ValueError("min_iou=0 would match any detection to any face; use a value in (0, 1]")


@dataclass(slots=True)
class _Track:
    id: int
    box: Box
    smoothed: np.ndarray
    first_seen: float
    last_seen: float
    reported: str | None = None  # None until ``appeared`` was emitted
    candidate: int | None = None  # label index leading the smoothed scores, not yet reported
    candidate_since: float = 0.0
    seen_now: bool = False


def normalize_box(box: tuple[float, float, float, float], frame_size: tuple[int, int]) -> Box:
    """Pixel (x, y, w, h) -> (x, y, w, h) in 0..1 of the frame, clipped to the frame."""
    width, height = frame_size
    x0 = min(max(box[0] / width, 0.0), 1.0)
    y0 = min(max(box[1] / height, 0.0), 1.0)
    x1 = min(max((box[0] + box[2]) / width, 0.0), 1.0)
    y1 = min(max((box[1] + box[3]) / height, 0.0), 1.0)
    return Box(x0, y0, x1 - x0, y1 - y0)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


class FaceTracker:
    """Turns per-frame detections and probabilities into appeared/changed/left events."""

    def __init__(self, settings: TrackerSettings, labels: tuple[str, ...]) -> None:
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ValueError(f"labels={list(labels)} must be 2 or more distinct names")
        self.settings = settings
        self.labels = tuple(labels)
        self._tracks: list[_Track] = []
        self._next_id = 1

    @property
    def tracks(self) -> tuple[FaceInView, ...]:
        """Faces that have appeared and not left, with their reported emotion (for the state topic).

        The state changes exactly when ``update`` or ``flush`` return events, so publish it then.
        """
        states = []
        for track in self._tracks:
            if track.reported is not None:
                index = self.labels.index(track.reported)
                scores = {label: float(p) for label, p in zip(self.labels, track.smoothed, strict=True)}
                states.append(FaceInView(track.id, track.reported, float(track.smoothed[index]), track.box, scores))
        return tuple(states)

    def update(
        self,
        now: float,
        faces: list[Face],
        scores: np.ndarray,
        frame_size: tuple[int, int],
        wall_time: float | None = None,
    ) -> list[EmotionEvent]:
        """Feed one frame: ``faces`` in pixels, ``scores`` (N, C) probabilities in label order.

        ``frame_size`` is (width, height) of the frame the boxes are in. ``wall_time`` stamps the
        events (epoch seconds; the current time when omitted). Returns the events, ``left`` first.
        """
        probs = self._check_inputs(faces, scores, frame_size)
        stamp = time.time() if wall_time is None else wall_time
        events = self._expire(now, stamp)
        boxes = [normalize_box(face.box, frame_size) for face in faces]
        for track in self._tracks:
            track.seen_now = False
        matches, unmatched = self._match(boxes)
        for track, index in matches:
            self._observe(track, now, boxes[index], probs[index])
        for index in unmatched:
            track = _Track(
                id=self._next_id, box=boxes[index], smoothed=probs[index].copy(), first_seen=now, last_seen=now,
                seen_now=True,
            )
            self._next_id += 1
            self._tracks.append(track)
            log.debug("new track %d at %s", track.id, track.box)
        for track in self._tracks:
            if track.seen_now:
                event = self._decide(track, now, stamp)
                if event is not None:
                    events.append(event)
        return events

    def flush(self, now: float, wall_time: float | None = None) -> list[EmotionEvent]:
        """End every track: ``left`` for each face that appeared. For end of file and shutdown.

        ``now`` is the clock of the last frame, taken for symmetry with ``update``; the faces leave
        whatever it says, and the events carry ``wall_time``.
        """
        stamp = time.time() if wall_time is None else wall_time
        events = [
            self._event("left", track, track.reported, stamp) for track in self._tracks if track.reported is not None
        ]
        self._tracks.clear()
        return events

    def _check_inputs(self, faces: list[Face], scores: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
        probs = np.asarray(scores, dtype=np.float64)
        if len(faces) == 0 and probs.size == 0:
            return probs.reshape(0, len(self.labels))
        if probs.ndim != 2 or probs.shape != (len(faces), len(self.labels)):
            raise ValueError(
                f"scores has shape {probs.shape}, expected ({len(faces)}, {len(self.labels)}): "
                "one row of label probabilities per face"
            )
        width, height = frame_size
        if width <= 0 or height <= 0:
            raise ValueError(f"frame_size={frame_size!r} must be a positive (width, height)")
        return probs

    def _expire(self, now: float, stamp: float) -> list[EmotionEvent]:
        limit = self.settings.lost_after_seconds
        gone = [track for track in self._tracks if now - track.last_seen >= limit]
        if not gone:
            return []
        self._tracks = [track for track in self._tracks if now - track.last_seen < limit]
        return [self._event("left", track, track.reported, stamp) for track in gone if track.reported is not None]

    def _match(self, boxes: list[Box]) -> tuple[list[tuple[_Track, int]], list[int]]:
        """(track, detection index) pairs, and the indices of detections no track claimed."""
        # Greedy by best overlap: with a handful of faces this equals the optimal assignment in
        # practice and needs no solver.
        pairs = sorted(
            ((iou(track.box, box), t, d) for t, track in enumerate(self._tracks) for d, box in enumerate(boxes)),
            reverse=True,
        )
        used_tracks: set[int] = set()
        used_boxes: set[int] = set()
        matches = []
        for overlap, t, d in pairs:
            if overlap < self.settings.min_iou:
                break
            if t in used_tracks or d in used_boxes:
                continue
            used_tracks.add(t)
            used_boxes.add(d)
            matches.append((self._tracks[t], d))
        return matches, [d for d in range(len(boxes)) if d not in used_boxes]

    def _observe(self, track: _Track, now: float, box: Box, probs: np.ndarray) -> None:
        dt = max(0.0, now - track.last_seen)
        tau = self.settings.smoothing_seconds
        alpha = 1.0 if tau == 0 else 1.0 - math.exp(-dt / tau)
        track.smoothed += alpha * (probs - track.smoothed)
        track.box = box
        track.last_seen = now
        track.seen_now = True

    def _decide(self, track: _Track, now: float, stamp: float) -> EmotionEvent | None:
        hold = self.settings.hold_seconds
        top = int(np.argmax(track.smoothed))
        if track.reported is None:
            if now - track.first_seen < hold:
                return None
            track.reported = self.labels[top]
            return self._event("appeared", track, track.reported, stamp)
        if self.labels[top] == track.reported:
            track.candidate = None
            return None
        if track.candidate != top:
            track.candidate, track.candidate_since = top, now
        if now - track.candidate_since < hold or track.smoothed[top] < self.settings.min_confidence:
            return None
        previous, track.reported, track.candidate = track.reported, self.labels[top], None
        return self._event("changed", track, track.reported, stamp, previous)

    def _event(
        self, kind: EventType, track: _Track, emotion: str, stamp: float, previous: str | None = None
    ) -> EmotionEvent:
        index = self.labels.index(emotion)
        return EmotionEvent(
            type=kind,
            face=track.id,
            emotion=emotion,
            confidence=float(track.smoothed[index]),
            labels=self.labels,
            scores=tuple(float(v) for v in track.smoothed),
            box=track.box,
            ts=stamp,
            previous=previous,
        )
