"""What the daemon reports about itself: memory readings that agree with each other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from emocam.edge.service.stats import Counters, memory_mb, stats_payload

STATUS = "Name:\tpython\nVmPeak:\t  900000 kB\nVmHWM:\t{hwm:>8} kB\nVmRSS:\t{rss:>8} kB\nThreads:\t4\n"


def payload() -> dict[str, Any]:
    return stats_payload(
        device="pi", model_version="1.0", wall_time=1_800_000_000.0, uptime=1.0, fps=30.0, faces=0,
        counters=Counters(0, 0, 0, 0, 0), latency_ms={}, source="test", source_ok=True,
    )


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads Linux's /proc")
def test_peak_memory_is_never_below_the_current_while_memory_grows() -> None:
    # Growing memory is when the old readings (statm now, getrusage's lagging peak) disagreed.
    kept = []
    readings = []
    for _ in range(30):
        block = bytearray(4_000_000)
        block[::4096] = b"\1" * len(block[::4096])  # touch every page: resident, not just mapped
        kept.append(block)
        stats = payload()
        readings.append((stats["rss_mb"], stats["peak_rss_mb"]))
    assert all(rss is not None and peak >= rss for rss, peak in readings), readings
    # Most of the 120 MB kept became resident (a long pytest process may reuse some freed pages).
    assert readings[-1][0] >= readings[0][0] + 60


def test_memory_is_read_from_one_status_snapshot_in_kib(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text(STATUS.format(hwm=200_000, rss=150_000))
    assert memory_mb(status) == (153.6, 204.8)  # KiB -> MB (10^6 bytes), as rss_mb always was
    status.write_text(STATUS.format(hwm=100_000, rss=150_000))  # a peak behind: never reported so
    assert memory_mb(status) == (153.6, 153.6)


def test_without_proc_the_peak_still_comes_from_getrusage(tmp_path: Path) -> None:
    rss, peak = memory_mb(tmp_path / "no-such-status")
    assert rss is None
    assert peak is not None and 5 < peak < 10_000  # this test process, in MB whatever the unit
    (tmp_path / "garbled").write_text("VmRSS: lots\n")
    assert memory_mb(tmp_path / "garbled")[0] is None
