"""Compare the events of emocam on emulated arm64 with the same runs on x86 (tests/arm64/run.sh).

Reads what ``mosquitto_sub -v`` printed (one ``TOPIC PAYLOAD`` line per message) and, for every
clip NAME given, compares two pairs of devices:

- ``arm64-NAME`` with ``x86-NAME``: the events of the installed config. The same event types,
  face ids, emotions, previous emotions, seq and media_s are required; confidence and scores
  may differ by ``--score``, boxes (normalized to the frame) by ``--box``.
- ``arm64-NAME-frames`` with ``x86-NAME-frames``: a run whose tracker reports every frame (no
  smoothing, no hold, a new face per frame), so each ``appeared`` event carries one frame's raw
  probabilities. The same frames must have the same number of faces; probabilities may differ
  by ``--frame``, boxes by ``--box``. Top-class flips are counted and reported.

Prints one line per clip, then the verdict line, which begins ``arm64 vs x86:``. Exit status 0
when everything is within tolerance, 1 otherwise. Standard library only: it runs on the host's
python3, with no venv.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BOX_KEYS = ("x", "y", "w", "h")
MEDIA_S_EPS = 0.0005  # media_s is rounded to milliseconds in the payload


@dataclass
class Outcome:
    """What one pair of runs showed: the largest differences and everything that did not match."""

    events: int = 0
    frames: int = 0
    confidence: float = 0.0
    score: float = 0.0
    box: float = 0.0
    flips: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.problems and self.confidence == self.score == self.box == 0.0 and self.flips == 0


def read_events(path: Path) -> dict[str, list[dict[str, Any]]]:
    """device id -> its event payloads, in seq order."""
    by_device: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in path.read_text(encoding="utf-8").splitlines():
        topic, _, payload = line.partition(" ")
        parts = topic.split("/")
        if len(parts) != 3 or parts[2] != "events":
            continue
        by_device[parts[1]].append(json.loads(payload))
    for events in by_device.values():
        events.sort(key=lambda e: e.get("seq", 0))
    return by_device


def _score_diff(a: dict[str, Any], b: dict[str, Any], where: str, problems: list[str]) -> float:
    if set(a["scores"]) != set(b["scores"]):
        problems.append(f"{where}: labels {sorted(a['scores'])} vs {sorted(b['scores'])}")
        return 0.0
    return max(abs(a["scores"][k] - b["scores"][k]) for k in a["scores"])


def _box_diff(a: dict[str, Any], b: dict[str, Any]) -> float:
    return max(abs(a["box"][k] - b["box"][k]) for k in BOX_KEYS)


def compare_events(arm: Sequence[dict[str, Any]], x86: Sequence[dict[str, Any]], score_tol: float,
                   box_tol: float) -> Outcome:
    out = Outcome(events=len(arm))
    if not arm and not x86:
        out.problems.append("no events on either side")
    if len(arm) != len(x86):
        out.problems.append(f"{len(arm)} events on arm64, {len(x86)} on x86")
    for i, (a, b) in enumerate(zip(arm, x86, strict=False), start=1):
        where = f"event {i}"
        for key in ("type", "face", "emotion", "previous", "seq", "model"):
            if a.get(key) != b.get(key):
                out.problems.append(f"{where}: {key} {a.get(key)!r} on arm64, {b.get(key)!r} on x86")
        if ("media_s" in a) != ("media_s" in b) or abs(a.get("media_s", 0) - b.get("media_s", 0)) > MEDIA_S_EPS:
            out.problems.append(f"{where}: media_s {a.get('media_s')} on arm64, {b.get('media_s')} on x86")
        out.confidence = max(out.confidence, abs(a["confidence"] - b["confidence"]))
        out.score = max(out.score, _score_diff(a, b, where, out.problems))
        out.box = max(out.box, _box_diff(a, b))
    if out.confidence > score_tol or out.score > score_tol:
        out.problems.append(f"confidence/scores differ by up to {max(out.confidence, out.score):.4f} (> {score_tol})")
    if out.box > box_tol:
        out.problems.append(f"boxes differ by up to {out.box:.4f} of the frame (> {box_tol})")
    return out


def _frames(events: Iterable[dict[str, Any]]) -> dict[float, list[dict[str, Any]]]:
    """media_s -> the faces of that frame, left to right (one ``appeared`` event each)."""
    frames: dict[float, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        if event["type"] == "appeared":
            frames[round(event["media_s"], 3)].append(event)
    for faces in frames.values():
        faces.sort(key=lambda e: (e["box"]["x"], e["box"]["y"]))
    return frames


def _top(event: dict[str, Any]) -> str:
    return max(event["scores"], key=lambda k: event["scores"][k])


def compare_frames(arm: Sequence[dict[str, Any]], x86: Sequence[dict[str, Any]], frame_tol: float,
                   box_tol: float) -> Outcome:
    a_frames, b_frames = _frames(arm), _frames(x86)
    out = Outcome(frames=len(a_frames))
    if not a_frames and not b_frames:
        out.problems.append("no frame with a face on either side")
    only_arm = sorted(set(a_frames) - set(b_frames))
    only_x86 = sorted(set(b_frames) - set(a_frames))
    if only_arm or only_x86:
        out.problems.append(f"faces only on arm64 at {only_arm[:5]} s, only on x86 at {only_x86[:5]} s")
    for t in sorted(set(a_frames) & set(b_frames)):
        fa, fb = a_frames[t], b_frames[t]
        if len(fa) != len(fb):
            out.problems.append(f"frame at {t} s: {len(fa)} faces on arm64, {len(fb)} on x86")
            continue
        for a, b in zip(fa, fb, strict=True):
            out.score = max(out.score, _score_diff(a, b, f"frame at {t} s", out.problems))
            out.box = max(out.box, _box_diff(a, b))
            out.flips += _top(a) != _top(b)
    if out.score > frame_tol:
        out.problems.append(f"per-frame probabilities differ by up to {out.score:.4f} (> {frame_tol})")
    if out.box > box_tol:
        out.problems.append(f"per-frame boxes differ by up to {out.box:.4f} of the frame (> {box_tol})")
    return out


def describe(name: str, events: Outcome, frames: Outcome) -> str:
    if events.identical and frames.identical:
        return f"{name}: {events.events} events and {frames.frames} frames with a face, identical"
    text = (f"{name}: {events.events} events (max |Δconfidence| {events.confidence:.4f}, |Δscore| {events.score:.4f},"
            f" |Δbox| {events.box:.4f}); {frames.frames} frames (max |Δp| {frames.score:.4f},"
            f" |Δbox| {frames.box:.4f}, {frames.flips} top-class flips)")
    problems = events.problems + [f"per frame: {p}" for p in frames.problems]
    return text + ("; MISMATCH: " + "; ".join(problems) if problems else "")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("events", type=Path, help="mosquitto_sub -v output")
    parser.add_argument("clips", nargs="+", help="clip names: devices arm64-NAME, x86-NAME, ...-frames")
    parser.add_argument("--score", type=float, default=0.02, help="events: confidence and scores")
    parser.add_argument("--box", type=float, default=0.01, help="boxes, as a fraction of the frame")
    parser.add_argument("--frame", type=float, default=0.06, help="per-frame probabilities")
    args = parser.parse_args(argv)

    devices = read_events(args.events)
    results = []
    for name in args.clips:
        events = compare_events(devices.get(f"arm64-{name}", []), devices.get(f"x86-{name}", []), args.score, args.box)
        frames = compare_frames(devices.get(f"arm64-{name}-frames", []), devices.get(f"x86-{name}-frames", []),
                                args.frame, args.box)
        print(describe(name, events, frames))
        results.append((events, frames))

    outcomes = [o for pair in results for o in pair]
    if any(o.problems for o in outcomes):
        bad = [name for name, (e, f) in zip(args.clips, results, strict=True) if e.problems or f.problems]
        print(f"arm64 vs x86: MISMATCH on {', '.join(bad)} (see above)")
        return 1
    if all(o.identical for o in outcomes):
        print(f"arm64 vs x86: identical ({', '.join(args.clips)}: same events, same per-frame probabilities and boxes)")
        return 0
    e_conf = max(e.confidence for e, _ in results)
    e_score = max(e.score for e, _ in results)
    e_box = max(e.box for e, _ in results)
    f_score = max(f.score for _, f in results)
    f_box = max(f.box for _, f in results)
    flips = sum(f.flips for _, f in results)
    print(f"arm64 vs x86: same events within tolerance ({', '.join(args.clips)}): max |Δconfidence| {e_conf:.4f},"
          f" |Δscore| {e_score:.4f} (tolerance {args.score}), |Δbox| {e_box:.4f} of the frame (tolerance {args.box});"
          f" per frame |Δp| {f_score:.4f} (tolerance {args.frame}), |Δbox| {f_box:.4f}, {flips} top-class flips")
    return 0


if __name__ == "__main__":
    sys.exit(main())
