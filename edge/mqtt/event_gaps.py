"""Lost events, told from the ``seq`` numbers of each device's events (docs/mqtt.md).

A daemon numbers its events 1, 2, 3... from its start. A subscriber that sees 7 after 4 missed
5 and 6: the broker dropped them for it, or they were pushed out of the camera's offline queue.
Either way the subscriber can say so instead of silently showing less. Events from emocam
versions without ``seq`` are not counted.

Two things look like going backwards and are not losses: a QoS 1 message delivered twice after
a reconnect (at most a publisher's queue behind the newest), and a restarted daemon, which
counts from 1 again. A seq far below the last one, or 1, is taken as a restart.
"""

from __future__ import annotations

from dataclasses import dataclass

# How far behind the newest a repeated delivery can be: the daemon's offline queue
# ([mqtt] max_queued, 1000 by default) plus paho's in-flight window. Anything further back,
# or seq 1, is a restart.
REPEAT_WINDOW = 1100


@dataclass(frozen=True, slots=True)
class Gap:
    """Events ``first``..``last`` (inclusive) of ``device`` never arrived."""

    device: str
    first: int
    last: int

    @property
    def count(self) -> int:
        return self.last - self.first + 1


class SequenceGaps:
    """Per device, the newest ``seq`` seen; ``see`` reports what is missing before each new one."""

    def __init__(self) -> None:
        self._newest: dict[str, int] = {}
        self.missed = 0
        self.repeats = 0
        self.restarts = 0
        self.devices_with_gaps: set[str] = set()

    def see(self, device: str, seq: int | None) -> Gap | None:
        """Record one event; the gap it reveals, if any."""
        if seq is None:
            return None
        newest = self._newest.get(device)
        if newest is None or seq == newest + 1:
            self._newest[device] = seq
            return None
        if seq > newest:
            return self._gap(device, newest + 1, seq)
        if seq == 1 or seq < newest - REPEAT_WINDOW:
            self.restarts += 1
            self._newest[device] = seq
            return self._gap(device, 1, seq) if seq > 1 else None  # the restarted daemon's first events
        self.repeats += 1  # a redelivery (or a late one): not new, not lost
        return None

    def _gap(self, device: str, first: int, seq: int) -> Gap:
        self._newest[device] = seq
        gap = Gap(device, first, seq - 1)
        self.missed += gap.count
        self.devices_with_gaps.add(device)
        return gap
