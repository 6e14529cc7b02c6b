"""What a subscriber pays to read emocam messages: parse time per message and the listener's memory.

    python bench/payload_parse.py [--rounds 20000]

Prints the median and 90th-percentile microseconds per ``parse_message`` call for an event, a
state with three faces and a stats message (bytes off the wire to a typed object), the same for a
bare ``json.loads`` in the same run as the reference, and the process's peak RSS after importing
``emocam.edge.mqtt.listen`` (what ``emocam listen`` holds before its first message).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import emocam.edge.mqtt.listen  # noqa: E402,F401  (its imports are what `emocam listen` loads)
from emocam.edge.mqtt.wire import EmotionEvent, FaceInView, event_payload, state_payload  # noqa: E402
from emocam.edge.payloads import parse_message  # noqa: E402

LABELS = ("angry", "fear", "happy", "neutral", "sad", "surprise")
SCORES = (0.02, 0.03, 0.8, 0.1, 0.03, 0.02)


def samples() -> dict[str, tuple[str, bytes]]:
    event = EmotionEvent("changed", 3, "happy", 0.8, LABELS, SCORES, (0.1, 0.2, 0.2, 0.25), 1.7e9, "neutral")
    scores = dict(zip(LABELS, SCORES, strict=True))
    faces = [FaceInView(i, "happy", 0.8, (0.1 * i, 0.1, 0.1, 0.1), scores) for i in (1, 2, 3)]
    stats = {"schema": 1, "ts": "2026-11-05T12:00:30.000Z", "device": "kitchen", "model": "1.0", "uptime_s": 30.0,
             "fps": 29.8, "faces": 2, "frames": 894, "latency_ms": {"detect": 6.2}, "rss_mb": 96.5,
             "mqtt": {"published": 41, "dropped": 0, "queued": 0, "connected": True, "reconnects": 0}}
    return {
        "event": ("emocam/kitchen/events", json.dumps(event_payload(event, "kitchen", "1.0")).encode()),
        "state (3 faces)": ("emocam/kitchen/state", json.dumps(state_payload(faces, "kitchen", "1.0", 1.7e9)).encode()),
        "stats": ("emocam/kitchen/stats", json.dumps(stats).encode()),
    }


def timed(call, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        out.append((time.perf_counter() - started) * 1e6)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20000)
    args = parser.parse_args()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS after importing emocam.edge.mqtt.listen: {peak_mb:.1f} MB")
    print(f"{'message':16} {'bytes':>6} {'parse µs p50':>13} {'p90':>7} {'json.loads µs':>14} {'ratio':>6}")
    for name, (topic, payload) in samples().items():
        parse = timed(lambda topic=topic, payload=payload: parse_message(topic, payload), args.rounds)
        loads = timed(lambda payload=payload: json.loads(payload), args.rounds)
        p50, p90 = statistics.median(parse), statistics.quantiles(parse, n=10)[8]
        base = statistics.median(loads)
        print(f"{name:16} {len(payload):6d} {p50:13.1f} {p90:7.1f} {base:14.1f} {p50 / base:6.1f}")


if __name__ == "__main__":
    main()
