"""``emocam listen``: watch emotion events from one camera, several, or all of them.

    emocam listen [--broker URL] [--device ID ...] [--json] [--summary SECONDS]

Readable lines by default, the events' raw JSON with ``--json``, or, with ``--summary``, the
count and share of each emotion per device and window. Payloads are parsed with
``edge.payloads``; a malformed one is reported on stderr and skipped. paho's network thread only
parses and queues; the main thread prints, so output lines never interleave. The broker may be
down at start or drop later: the client reconnects with back-off and renews its subscriptions.
"""

from __future__ import annotations

import json
import logging
import queue
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Sequence, TextIO

import paho.mqtt.client as mqtt

from edge.errors import ConfigError
from edge.mqtt_client import make_client
from edge.payloads import Availability, Event, PayloadError, parse_message
from edge.publishers import MqttSettings, is_valid_device_id

log = logging.getLogger("emocam.listen")

RECONNECT_MIN_SECONDS = 1
RECONNECT_MAX_SECONDS = 30
_POLL_SECONDS = 0.2  # how often the main thread looks up from the queue (stop requests, windows)


def topics(prefix: str, devices: Sequence[str], summary: bool) -> list[str]:
    """What to subscribe to: events, plus availability for the readable modes."""
    for device in devices:
        if not is_valid_device_id(device):
            raise ConfigError(f"--device {device!r}: a device id is 1-64 letters, digits, '.', '_' or '-'")
    kinds = ("events",) if summary else ("events", "availability")
    return [f"{prefix}/{device}/{kind}" for device in (devices or ["+"]) for kind in kinds]


def _local(ts: datetime) -> str:
    return ts.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def format_event(event: Event) -> str:
    """One readable line: time, device, face, emotion, confidence and what happened."""
    what = {"appeared": "appeared", "left": "left"}.get(event.type, f"changed from {event.previous}")
    return f"{_local(event.ts)}  {event.device}  face {event.face}  {event.emotion} {event.confidence:.2f}  {what}"


def format_availability(message: Availability) -> str:
    return f"{_local(datetime.now(timezone.utc))}  {message.device}  is {message.status}"


@dataclass
class SummaryWindow:
    """Emotions shown per device in one window: each ``appeared`` and ``changed`` event counts the
    emotion it reports; ``left`` only repeats the last one, so it is not counted."""

    start: float
    counts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def add(self, event: Event) -> None:
        if event.type != "left":
            self.counts[event.device][event.emotion] += 1

    def rows(self, end: float) -> list[dict[str, Any]]:
        rows = []
        for device in sorted(self.counts):
            counter = self.counts[device]
            total = sum(counter.values())
            rows.append({
                "device": device,
                "start": _iso(self.start),
                "end": _iso(end),
                "events": total,
                "emotions": {e: {"count": n, "share": round(n / total, 4)} for e, n in counter.most_common()},
            })
        return rows


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def format_summary(row: dict[str, Any]) -> str:
    start = datetime.fromisoformat(row["start"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(row["end"].replace("Z", "+00:00"))
    shares = ", ".join(f"{e} {v['count']} ({v['share']:.0%})" for e, v in row["emotions"].items())
    count = f"{row['events']} event{'' if row['events'] == 1 else 's'}"
    return f"{_local(start)} to {_local(end)[11:]}  {row['device']}  {count}: {shares}"


class Listener:
    """Subscribes, parses on paho's thread, prints on the caller's thread until ``stop`` is set."""

    def __init__(self, settings: MqttSettings, devices: Sequence[str], as_json: bool, summary: float,
                 out: TextIO | None = None) -> None:
        if summary < 0:
            raise ConfigError(f"--summary {summary}: give a window in seconds > 0 (or leave it out)")
        self.settings, self.as_json, self.summary = settings, as_json, summary
        self.out = out if out is not None else sys.stdout
        self.stop = threading.Event()
        self.skipped = 0
        self._topics = topics(settings.topic_prefix, devices, summary > 0)
        self._inbox: queue.Queue[tuple[str, Any, bytes]] = queue.Queue(maxsize=10_000)
        client_id = f"emocam-listen-{uuid.uuid4().hex[:8]}"  # never one of a daemon's ids
        self._client = make_client(settings, client_id)
        self._client.reconnect_delay_set(RECONNECT_MIN_SECONDS, RECONNECT_MAX_SECONDS)
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._connects = 0
        self._reported_unreachable = False  # one warning per outage, not one per back-off step

    def run(self) -> int:
        broker = self.settings.broker
        log.info("listening on %s:%d to %s", broker.host, broker.port, ", ".join(self._topics))
        self._client.connect_async(broker.host, broker.port, keepalive=self.settings.keepalive)
        self._client.loop_start()
        window = SummaryWindow(time.time())
        try:
            while not self.stop.is_set():
                if self.summary and time.time() - window.start >= self.summary:
                    window = self._flush(window)
                try:
                    topic, parsed, raw = self._inbox.get(timeout=_POLL_SECONDS)
                except queue.Empty:
                    continue
                self._show(topic, parsed, raw, window)
        finally:
            self._client.disconnect()
            self._client.loop_stop()
            if self.summary:
                self._flush(window)  # the partial window at Ctrl-C is worth seeing too
        log.info("stopped%s", f"; skipped {self.skipped} malformed messages" if self.skipped else "")
        return 0

    def _show(self, topic: str, parsed: Any, raw: bytes, window: SummaryWindow) -> None:
        if isinstance(parsed, PayloadError):
            self.skipped += 1
            log.warning("skipped a message on %s: %s", topic, parsed)
        elif isinstance(parsed, Availability):
            if self.as_json:
                log.info("%s is %s", parsed.device, parsed.status)
            else:
                self._write(format_availability(parsed))
        elif self.summary:
            window.add(parsed)
        elif self.as_json:
            self._write(raw.decode("utf-8").strip())
        else:
            self._write(format_event(parsed))

    def _flush(self, window: SummaryWindow) -> SummaryWindow:
        end = time.time()
        rows = window.rows(end)
        for row in rows:
            self._write(json.dumps(row, separators=(",", ":")) if self.as_json else format_summary(row))
        if not rows and not self.as_json:
            self._write(f"{_local(datetime.fromtimestamp(window.start, timezone.utc))} to "
                        f"{_local(datetime.fromtimestamp(end, timezone.utc))[11:]}  no events")
        return SummaryWindow(end)

    def _write(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()  # a reader on a pipe sees each line at once

    # ---- paho callbacks (network thread) ----

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            log.warning("broker %s:%d refused the connection: %s", self.settings.broker.host, self.settings.broker.port, reason)
            return
        self._connects += 1
        self._reported_unreachable = False
        log.info("%s MQTT broker %s:%d", "connected to" if self._connects == 1 else "reconnected to",
                 self.settings.broker.host, self.settings.broker.port)
        for topic in self._topics:  # sessions are clean: subscriptions are renewed on every connect
            client.subscribe(topic, qos=1)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        report = log.debug if self._reported_unreachable else log.warning
        report("MQTT broker %s:%d unreachable; retrying until it is back", self.settings.broker.host, self.settings.broker.port)
        self._reported_unreachable = True

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if not self.stop.is_set():
            log.warning("lost the MQTT broker (%s); reconnecting", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            parsed: Any = parse_message(message.topic, message.payload, self.settings.topic_prefix)
        except PayloadError as exc:
            parsed = exc
        try:
            self._inbox.put_nowait((message.topic, parsed, message.payload))
        except queue.Full:
            log.warning("output cannot keep up; dropped a message on %s", message.topic)
