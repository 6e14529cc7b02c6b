"""Benchmark the device pipeline on one CPU core: per-stage latency, fps, peak RSS, start-up, CPU use.

    python bench/benchmark.py            # a compact table
    python bench/benchmark.py --json     # the same numbers as JSON

It composes two 640x480 MJPG clips from the bundled sample (one face; three faces), plays each
through the real daemon (emocam.edge.service.daemon.Daemon with the real detector, aligner, int8 classifier and
tracker) as fast as possible, and reads the per-stage medians the daemon itself measures. The
process is pinned to one core and every interpreter uses num_threads=1. Start-up is timed from
spawning `emocam run` (through emocam.edge.service.cli.main) to the end of its first processed frame.

Targets (issue 3): >= 30 fps with one face on one core, peak RSS < 150 MB, start-up < 1 s.
Timings on a shared VM are noisy: run it twice, and compare numbers from the same machine only.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emocam.edge.capture.factory import SAMPLE_CLIP  # noqa: E402
from emocam.edge.capture.files import VideoFileSource  # noqa: E402
from emocam.edge.capture.frames import SystemClock  # noqa: E402
from emocam.edge.mqtt.publishing import StdoutPublisher  # noqa: E402
from emocam.edge.service.config import parse_config  # noqa: E402
from emocam.edge.service.daemon import Daemon, build_pipeline  # noqa: E402

WIDTH, HEIGHT = 640, 480
BACKDROP = (110, 100, 90)
TARGET_FPS, TARGET_RSS_MB, TARGET_STARTUP_S = 30.0, 150.0, 1.0


def pin_to_one_core(cpu: int | None) -> int:
    """Restrict this process (and its children) to one CPU; returns which."""
    allowed = sorted(os.sched_getaffinity(0))
    chosen = allowed[0] if cpu is None else cpu
    os.sched_setaffinity(0, {chosen})
    return chosen


def sample_head() -> np.ndarray:
    """Head and shoulders (360x360) cut from the bundled sample's frame 10."""
    capture = cv2.VideoCapture(str(SAMPLE_CLIP))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 10)
    ok, frame = capture.read()
    capture.release()
    if not ok:
        raise SystemExit(f"cannot read frame 10 of {SAMPLE_CLIP}")
    return frame[120:480, 200:560]


def compose(head: np.ndarray, faces: int, step: int) -> np.ndarray:
    """One frame: ``faces`` heads (1: large, centred; 3: side by side), shifted ``step`` px."""
    canvas = np.full((HEIGHT, WIDTH, 3), BACKDROP, np.uint8)
    size = 300 if faces == 1 else 240
    scaled = cv2.resize(head, (size, size), interpolation=cv2.INTER_AREA)
    shift = step % 40 - 20
    for i in range(faces):
        if faces == 1:
            x, y = (WIDTH - size) // 2 + shift, HEIGHT - size
        else:
            x, y = 20 + i * (WIDTH - size - 40) // (faces - 1) + shift // 2, HEIGHT - size - (i % 2) * 120
        x = min(max(x, 0), WIDTH - size)
        canvas[y : y + size, x : x + size] = scaled
    return canvas


def make_clip(path: Path, faces: int, frames: int, fps: float = 30.0) -> Path:
    head = sample_head()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (WIDTH, HEIGHT))
    for i in range(frames):
        writer.write(compose(head, faces, i))
    writer.release()
    return path


class StatsTap(StdoutPublisher):
    """Events to a throwaway buffer (the stdout publisher's real work); keeps the last stats."""

    def __init__(self) -> None:
        super().__init__(io.StringIO())
        self.last_stats: dict[str, Any] = {}
        self.events = 0

    def publish_event(self, payload: dict[str, Any]) -> None:
        self.events += 1
        super().publish_event(payload)

    def publish_stats(self, payload: dict[str, Any]) -> None:
        self.last_stats = payload


def run_clip(clip: Path, faces: int) -> dict[str, Any]:
    """Play ``clip`` through the daemon as fast as possible; fps, CPU use and stage medians."""
    config = parse_config({"stats": {"interval": 1e9}}, hostname="bench")
    pipeline = build_pipeline(config)
    clock = SystemClock()
    publisher = StatsTap()
    daemon = Daemon(pipeline, publisher, VideoFileSource(clip, realtime=False, clock=clock), clock=clock)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    daemon.run()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    stats = publisher.last_stats
    latency = stats["latency_ms"]
    per_face = classify_per_face(pipeline, clip, faces)
    return {
        "faces": faces,
        "frames": stats["frames"],
        "fps": stats["frames"] / wall,
        "cpu_use": cpu / wall,
        "latency_ms": {
            "capture": latency["capture"],
            "detect": latency["detect"],
            "align": latency["align"],
            "classify_frame": latency["classify"],
            "classify_per_face": per_face,
            "publish": latency["publish"],
        },
        "events": publisher.events,
        "detector": pipeline.detector.name,
        "model": pipeline.classifier.info.version,
    }


def classify_per_face(pipeline: Any, clip: Path, faces: int, repeats: int = 300) -> float:
    """Median ms per face of one classifier call on all the faces of a frame of ``clip``."""
    from emocam.edge.vision.align import align_face

    capture = cv2.VideoCapture(str(clip))
    ok, frame = capture.read()
    capture.release()
    found = pipeline.detector.detect(frame)
    crops = [align_face(frame, face, pipeline.classifier.info.preprocessing) for face in found]
    if len(crops) != faces:
        print(f"warning: {len(crops)} faces detected in {clip.name}, expected {faces}", file=sys.stderr)
    if not crops:
        return float("nan")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        pipeline.classifier.probabilities(crops)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000 / len(crops)


_PROBE = """
import sys
import emocam.edge.service.daemon
original = emocam.edge.service.daemon.Daemon._process
def first_frame(self, frame):
    original(self, frame)
    sys.stderr.write("BENCH_FIRST_FRAME\\n"); sys.stderr.flush()
    self.request_stop("benchmark")
emocam.edge.service.daemon.Daemon._process = first_frame
from emocam.edge.service.cli import main
sys.exit(main(["run", "--source", sys.argv[1], "--no-realtime"]))
"""


def startup_seconds(clip: Path, runs: int) -> list[float]:
    """Spawn -> first frame processed, through the real CLI path (config, model, detector, source)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMOCAM_")}
    results = []
    for _ in range(runs):
        start = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-c", _PROBE, str(clip)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
            text=True, cwd=REPO, env=env,
        )
        assert child.stderr is not None
        for line in child.stderr:
            if "BENCH_FIRST_FRAME" in line:
                results.append(time.perf_counter() - start)
                break
        child.wait(60)
        if child.returncode != 0:
            raise SystemExit(f"start-up probe failed with exit code {child.returncode}")
    return results


def measure(args: argparse.Namespace) -> dict[str, Any]:
    cpu = pin_to_one_core(args.cpu)
    with tempfile.TemporaryDirectory() as tmp:
        one = make_clip(Path(tmp) / "one_face.avi", 1, args.frames)
        three = make_clip(Path(tmp) / "three_faces.avi", 3, args.frames)
        startup = startup_seconds(one, args.startup_runs)
        runs = [run_clip(one, 1), run_clip(three, 3)]
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6
    return {
        "cpu": cpu,
        "cpus_online": os.cpu_count(),
        "python": sys.version.split()[0],
        "opencv": cv2.__version__,
        "runs": runs,
        "startup_s": statistics.median(startup),
        "startup_runs_s": startup,
        "peak_rss_mb": peak_rss,
        "targets": {
            "fps_one_face": runs[0]["fps"] >= TARGET_FPS,
            "peak_rss": peak_rss < TARGET_RSS_MB,
            "startup": statistics.median(startup) < TARGET_STARTUP_S,
        },
    }


def table(result: dict[str, Any]) -> str:
    one, three = result["runs"]

    def row(name: str, key: str, fmt: str = "{:8.2f}") -> str:
        cells = [
            fmt.format(run["latency_ms"][key]) if run["latency_ms"][key] is not None else "       -"
            for run in (one, three)
        ]
        return f"{name:<28}{cells[0]:>10}{cells[1]:>10}"

    ok = {True: "OK", False: "MISSED"}
    t = result["targets"]
    lines = [
        f"emocam benchmark: CPU {result['cpu']} only (of {result['cpus_online']}), num_threads=1, "
        f"detector {one['detector']}, model v{one['model']}, OpenCV {result['opencv']}",
        f"{'median latency (ms)':<28}{'1 face':>10}{'3 faces':>10}",
        row("capture (decode 640x480)", "capture"),
        row("detect", "detect"),
        row("align + crop (all faces)", "align"),
        row("classify (one call, frame)", "classify_frame"),
        row("classify per face", "classify_per_face", "{:8.3f}"),
        row("track + publish", "publish", "{:8.3f}"),
        f"{'end-to-end fps':<28}{one['fps']:>10.1f}{three['fps']:>10.1f}",
        f"{'CPU use (process/wall)':<28}{one['cpu_use']:>10.0%}{three['cpu_use']:>10.0%}",
        f"{'frames (events)':<28}{one['frames']:>6} ({one['events']}){three['frames']:>6} ({three['events']})",
        f"peak RSS {result['peak_rss_mb']:.0f} MB; start-up to first frame {result['startup_s']:.2f} s "
        f"(median of {', '.join(f'{s:.2f}' for s in result['startup_runs_s'])})",
        f"targets: >= {TARGET_FPS:.0f} fps with 1 face {ok[t['fps_one_face']]}, RSS < {TARGET_RSS_MB:.0f} MB "
        f"{ok[t['peak_rss']]}, start-up < {TARGET_STARTUP_S:.0f} s {ok[t['startup']]}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--frames", type=int, default=150, help="frames per clip (default 150: 5 s at 30 fps)")
    parser.add_argument("--cpu", type=int, default=None, help="which CPU to pin to (default: the first allowed)")
    parser.add_argument("--startup-runs", type=int, default=3, help="start-up measurements (median reported)")
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    result = measure(args)
    print(json.dumps(result, indent=2) if args.json else table(result))


if __name__ == "__main__":
    main()
