"""Where events go: the Publisher protocol, what a flush could not deliver, and the no-broker publisher.

The paho adapter is ``emocam.edge.mqtt.publisher``. Every publisher method returns at once: the
frame loop never waits on a network or a disk.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TextIO, runtime_checkable

log = logging.getLogger(__name__)

Payload = dict[str, Any]


class Publisher(Protocol):
    """Sends event, state and stats payloads somewhere. No method may block the frame loop."""

    def start(self) -> None: ...

    def publish_event(self, payload: Payload) -> None: ...

    def publish_state(self, payload: Payload) -> None: ...

    def publish_stats(self, payload: Payload) -> None: ...

    def close(self, reason: str = "stopped") -> None: ...


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a publisher could not deliver: ``undelivered`` events, where to, and why."""

    undelivered: int = 0
    destination: str = ""
    why: str = ""
    waited: float = 0.0  # seconds the flush allowed for it

    def __str__(self) -> str:
        if not self.undelivered:
            return f"every event delivered to {self.destination}"
        noun = "event" if self.undelivered == 1 else "events"
        return f"{self.undelivered} {noun} not delivered to {self.destination}: {self.why}"


@runtime_checkable
class Flushable(Protocol):
    """A publisher that can lose events on the way (MQTT) and can say how many it lost.

    The daemon calls ``flush`` before ``close``; a publisher without it (stdout) loses nothing.
    ``give_up`` is polled while it waits: True ends the wait (a second Ctrl-C).
    """

    def flush(self, wait_for_broker: bool = False, give_up: Callable[[], bool] | None = None) -> Delivery: ...


class StdoutPublisher:
    """Events as JSON lines on a stream (stdout by default): how emocam runs without a broker.

    State and stats go to the log at DEBUG, so the stream holds only events and stays parseable.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout

    def start(self) -> None:
        log.info("no broker configured: events go to standard output as JSON lines")

    def publish_event(self, payload: Payload) -> None:
        # One write per line and a flush, so a reader piping us (jq, a test) sees whole lines now.
        self._stream.write(json.dumps(payload, separators=(",", ":")) + "\n")
        self._stream.flush()

    def publish_state(self, payload: Payload) -> None:
        log.debug("state %s", json.dumps(payload))

    def publish_stats(self, payload: Payload) -> None:
        log.debug("stats %s", json.dumps(payload))

    def close(self, reason: str = "stopped") -> None:
        log.info("publisher closed (%s)", reason)
        self._stream.flush()
