"""tests/arm64/compare.py, on made-up events: what it accepts, and proof that each check can fail."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.arm64 import compare

COMPARE = Path(compare.__file__)


def _event(kind: str = "appeared", face: int = 1, seq: int = 1, media_s: float = 0.4, happy: float = 0.88,
           x: float = 0.40, emotion: str = "happy") -> dict[str, Any]:
    rest = round(1 - happy, 4)
    return {
        "schema": 1, "type": kind, "ts": "2026-12-02T00:00:00.000Z", "device": "d", "face": face,
        "emotion": emotion, "confidence": happy, "scores": {"happy": happy, "neutral": rest},
        "box": {"x": x, "y": 0.45, "w": 0.18, "h": 0.24}, "model": "1.3.0", "seq": seq, "media_s": media_s,
    }


def _frames(n: int, happy: float = 0.88, x: float = 0.40) -> list[dict[str, Any]]:
    return [_event(face=i + 1, seq=i + 1, media_s=0.2 * (i + 2), happy=happy, x=x) for i in range(n)]


def _write(path: Path, runs: dict[str, list[dict[str, Any]]]) -> Path:
    lines = ["emocam-arm64/marker ready"]
    for device, events in runs.items():
        lines += [f"emocam/{device}/events {json.dumps({**e, 'device': device})}" for e in events]
    lines.append("emocam/x86-sample/state {}")  # other topics are ignored
    path.write_text("\n".join(lines) + "\n")
    return path


def _both(events: list[dict[str, Any]], frames: list[dict[str, Any]], arm_events: list[dict[str, Any]] | None = None,
          arm_frames: list[dict[str, Any]] | None = None) -> dict[str, list[dict[str, Any]]]:
    return {
        "arm64-sample": arm_events if arm_events is not None else events, "x86-sample": events,
        "arm64-sample-frames": arm_frames if arm_frames is not None else frames, "x86-sample-frames": frames,
    }


def _run(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(COMPARE), str(path), "sample", *args],
                          capture_output=True, text=True, timeout=30)


EVENTS = [_event(), _event("left", seq=2, media_s=3.4)]


def test_identical_runs(tmp_path: Path) -> None:
    result = _run(_write(tmp_path / "e.txt", _both(EVENTS, _frames(3))))
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines()[-1].startswith("arm64 vs x86: identical (sample")


def test_small_differences_are_measured_and_pass(tmp_path: Path) -> None:
    arm = [_event(happy=0.885), _event("left", seq=2, media_s=3.4, x=0.403)]
    result = _run(_write(tmp_path / "e.txt", _both(EVENTS, _frames(3), arm, _frames(3, happy=0.87))))
    assert result.returncode == 0, result.stdout
    verdict = result.stdout.splitlines()[-1]
    assert verdict.startswith("arm64 vs x86: same events within tolerance (sample)")
    assert "|Δconfidence| 0.0050" in verdict and "|Δbox| 0.0030" in verdict and "per frame |Δp| 0.0100" in verdict


@pytest.mark.parametrize(
    ("arm_events", "arm_frames", "why"),
    [
        ([_event(emotion="neutral"), EVENTS[1]], None, "emotion 'neutral' on arm64, 'happy' on x86"),
        ([EVENTS[0]], None, "1 events on arm64, 2 on x86"),
        ([_event(face=2), EVENTS[1]], None, "face 2 on arm64, 1 on x86"),
        ([_event(media_s=0.6), EVENTS[1]], None, "media_s 0.6 on arm64, 0.4 on x86"),
        ([_event(happy=0.95), EVENTS[1]], None, "confidence/scores differ by up to 0.0700"),
        ([_event(x=0.45), EVENTS[1]], None, "boxes differ by up to 0.0500 of the frame"),
        (None, _frames(2), "faces only on arm64 at [] s, only on x86 at [0.8] s"),
        (None, _frames(3, happy=0.70), "per-frame probabilities differ by up to 0.1800"),
        ([], [], "no events on either side"),
    ],
)
def test_a_difference_beyond_tolerance_fails(tmp_path: Path, arm_events: Any, arm_frames: Any, why: str) -> None:
    runs = _both(EVENTS, _frames(3), arm_events, arm_frames)
    if arm_events == []:
        runs = {device: [] for device in runs}
    result = _run(_write(tmp_path / "e.txt", runs))
    assert result.returncode == 1
    assert why in result.stdout
    assert result.stdout.splitlines()[-1] == "arm64 vs x86: MISMATCH on sample (see above)"


def test_top_class_flips_are_counted() -> None:
    arm = [_event(face=1, seq=1, happy=0.49)]
    x86 = [_event(face=1, seq=1, happy=0.51)]
    outcome = compare.compare_frames(arm, x86, frame_tol=0.06, box_tol=0.01)
    assert outcome.flips == 1 and not outcome.problems
