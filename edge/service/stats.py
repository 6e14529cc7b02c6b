"""What the daemon measures about itself: per-stage latency, frame rate, temperature, memory.

``StageTimer`` keeps the latencies of one stats interval (bounded), and ``stats_payload`` turns them
into the object published on ``<prefix>/<device>/stats``. System readings are best effort: a value
that cannot be read (no thermal zone in a container, no /proc) is reported as null.
"""

from __future__ import annotations

import resource
import statistics
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emocam.edge.mqtt.wire import SCHEMA_VERSION, iso_utc

STAGES = ("capture", "detect", "align", "classify", "publish")
THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")
PROC_STATUS = Path("/proc/self/status")
_SAMPLES = 2048  # per stage and interval: ~1 minute at 30 fps, a few KB


class StageTimer:
    """Latencies (seconds) per pipeline stage since the last ``reset``."""

    def __init__(self) -> None:
        self._samples: dict[str, deque[float]] = {stage: deque(maxlen=_SAMPLES) for stage in STAGES}

    def add(self, stage: str, seconds: float) -> None:
        self._samples[stage].append(seconds)

    def medians_ms(self) -> dict[str, float | None]:
        return {
            stage: round(statistics.median(values) * 1000, 3) if values else None
            for stage, values in self._samples.items()
        }

    def reset(self) -> None:
        for values in self._samples.values():
            values.clear()


@dataclass(frozen=True, slots=True)
class Counters:
    """Totals since start-up."""

    frames: int  # frames processed
    dropped: int  # frames the source replaced or skipped because the loop was busy
    skipped: int  # unreadable frames or images
    errors: int  # frames the per-frame guard caught
    reopens: int  # times a live source was reopened


def cpu_temperature(path: Path = THERMAL_ZONE) -> float | None:
    """Degrees Celsius of the first thermal zone (the SoC on a Pi), or None where unreadable."""
    try:
        return round(int(path.read_text().strip()) / 1000, 1)
    except (OSError, ValueError):
        return None


def memory_mb(status: Path = PROC_STATUS) -> tuple[float | None, float | None]:
    """(resident memory now, peak resident memory since start), in MB, where peak >= now.

    Both come from one read of /proc/self/status (VmRSS, VmHWM, in KiB), so they are one moment's
    numbers; the kernel computes VmHWM as at least VmRSS, and the max is taken again here. Mixing
    sources would not hold that: getrusage's ru_maxrss reads approximate per-CPU counters and lags
    /proc/self/statm by a few hundred KB while memory grows. Without /proc: (None, ru_maxrss).
    """
    try:
        fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        rss, peak = (int(fields[key].split()[0]) * 1024 / 1e6 for key in ("VmRSS", "VmHWM"))
    except (OSError, ValueError, KeyError, IndexError):
        return None, _ru_maxrss_mb()
    return round(rss, 1), round(max(peak, rss), 1)  # rounding keeps the order


def _ru_maxrss_mb() -> float:
    """Peak resident memory from getrusage: in bytes on macOS, in KiB elsewhere."""
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(maxrss / 1e6 if sys.platform == "darwin" else maxrss * 1024 / 1e6, 1)


def stats_payload(
    *,
    device: str,
    model_version: str,
    wall_time: float,
    uptime: float,
    fps: float,
    faces: int,
    counters: Counters,
    latency_ms: dict[str, float | None],
    source: str,
    source_ok: bool,
) -> dict[str, Any]:
    """The JSON object for the stats topic (the MQTT publisher adds its own ``mqtt`` counters)."""
    rss, peak = memory_mb()
    return {
        "schema": SCHEMA_VERSION,
        "ts": iso_utc(wall_time),
        "device": device,
        "model": model_version,
        "uptime_s": round(uptime, 1),
        "fps": round(fps, 2),
        "faces": faces,
        "frames": counters.frames,
        "dropped_frames": counters.dropped,
        "skipped_frames": counters.skipped,
        "frame_errors": counters.errors,
        "source": source,
        "source_ok": source_ok,
        "source_reopens": counters.reopens,
        "latency_ms": latency_ms,
        "cpu_temp_c": cpu_temperature(),
        "rss_mb": rss,
        "peak_rss_mb": peak,
    }
