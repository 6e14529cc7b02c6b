"""``emocam listen``: watch emotion events from one camera, several, or all of them.

    emocam listen [--broker URL] [--device ID ...] [--json] [--summary SECONDS] [--share GROUP]

Readable lines by default, the events' raw JSON with ``--json``, or, with ``--summary``, the
count and share of each emotion per device and window. Payloads are parsed with
``emocam.edge.payloads``; a malformed one is reported on stderr and skipped. The broker may be down at
start or drop later: the client reconnects with back-off and resumes its session.

Keeping up with a fleet (docs/fleet.md): paho's network thread only hands each message over, so
the broker is acknowledged at once; the main thread parses, formats and prints in batches and
flushes stdout when it has caught up, so output lines never interleave. Over MQTT 5 the client
announces a Receive Maximum of 65535: without it Mosquitto keeps 20 messages in flight, queues
1,000 and then drops the rest without telling anyone; with it, Mosquitto sends as fast as the
socket takes them, so a stall is absorbed by the socket buffers (about 12,000 events on Linux
loopback) before that queue. Should the main thread fall far behind (stdout blocked), the
network thread waits, and the backlog stays on the broker, where it is bounded and counted.
What is lost anyway shows up as gaps in each device's ``seq`` and in the broker's ``$SYS`` drop
counter; both are reported on stderr. ``--share GROUP`` subscribes through an MQTT 5 shared
subscription, so the broker splits the events among the listeners of one group, each event to
one of them.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from emocam.edge.closed_stdout import discard_stdout
from emocam.edge.errors import ConfigError
from emocam.edge.log_limit import LogLimiter
from emocam.edge.mqtt.client import make_client
from emocam.edge.mqtt.event_gaps import Gap, SequenceGaps
from emocam.edge.mqtt.outage import BrokerOutage
from emocam.edge.mqtt.settings import MqttSettings
from emocam.edge.mqtt.wire import is_valid_device_id
from emocam.edge.payloads import Availability, Event, PayloadError, parse_message

log = logging.getLogger("emocam.listen")

RECONNECT_MIN_SECONDS = 1
RECONNECT_MAX_SECONDS = 30
RECEIVE_MAXIMUM = 65535  # MQTT 5: unacknowledged messages the broker may send us (the protocol's maximum)
SESSION_EXPIRY_SECONDS = 300  # MQTT 5: the broker keeps our subscriptions and queues for us over an outage this long
BACKLOG_LIMIT = 20_000  # messages handed over but not printed yet; beyond this the network thread waits
DROPPED_TOPIC = "$SYS/broker/publish/messages/dropped"  # Mosquitto's count of messages it dropped, every 10 s
NETWORK_STOP_SECONDS = 5.0  # how long a stop waits for the network thread to say goodbye to the broker
_POLL_SECONDS = 0.2  # how often the main thread looks up when idle (stop requests, windows)
_BATCH = 2000  # messages printed per write
_LINGER_SECONDS = 0.002  # after a quiet spell, wait this long for more before printing: fewer, larger writes
_SHARE_GROUP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def topics(prefix: str, devices: Sequence[str], summary: bool, share: str | None = None) -> list[str]:
    """What to subscribe to: events, plus availability for the readable modes; shared with ``share``."""
    for device in devices:
        if not is_valid_device_id(device):
            raise ConfigError(f"--device {device!r}: a device id is 1-64 letters, digits, '.', '_' or '-'")
    if share is not None and not _SHARE_GROUP.match(share):
        raise ConfigError(f"--share {share!r}: a group name is 1-64 letters, digits, '.', '_' or '-' "
                          "(MQTT forbids '/', '+' and '#' in it)")
    kinds = ("events",) if summary else ("events", "availability")
    head = f"$share/{share}/" if share else ""
    return [f"{head}{prefix}/{device}/{kind}" for device in (devices or ["+"]) for kind in kinds]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _local(ts: datetime) -> str:
    return ts.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def format_event(event: Event) -> str:
    """One readable line: time, device, face, emotion, confidence and what happened."""
    what = {"appeared": "appeared", "left": "left"}.get(event.type, f"changed from {event.previous}")
    return f"{_local(event.ts)}  {event.device}  face {event.face}  {event.emotion} {event.confidence:.2f}  {what}"


def format_availability(message: Availability) -> str:
    return f"{_local(datetime.now(UTC))}  {message.device}  is {message.status}"


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
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def format_summary(row: dict[str, Any]) -> str:
    start = datetime.fromisoformat(row["start"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(row["end"].replace("Z", "+00:00"))
    shares = ", ".join(f"{e} {v['count']} ({v['share']:.0%})" for e, v in row["emotions"].items())
    count = f"{row['events']} event{'' if row['events'] == 1 else 's'}"
    return f"{_local(start)} to {_local(end)[11:]}  {row['device']}  {count}: {shares}"


class Listener:
    """Subscribes; paho's thread hands messages over, the caller's thread prints until ``stop`` is set."""

    def __init__(self, settings: MqttSettings, devices: Sequence[str], as_json: bool, summary: float,
                 out: TextIO | None = None, share: str | None = None) -> None:
        if summary < 0:
            raise ConfigError(f"--summary {summary}: give a window in seconds > 0 (or leave it out)")
        self.settings, self.as_json, self.summary, self.share = settings, as_json, summary, share
        self.out = out if out is not None else sys.stdout
        self.stop = threading.Event()
        self.skipped = 0
        self.gaps = SequenceGaps()
        self._topics = topics(settings.topic_prefix, devices, summary > 0, share)
        self._v5 = settings.protocol == "5"
        self._backlog: deque[mqtt.MQTTMessage] = deque()
        self._wake = threading.Event()  # set by the network thread when the backlog was empty
        self._room = threading.Event()  # set by the main thread when the backlog went down
        self._lines: list[str] = []
        self._gap_log = LogLimiter(log, interval=10.0)
        self._broker_dropped: int | None = None  # the broker's $SYS count when we first saw it
        self._broker_dropped_reported = 0
        self._outage = BrokerOutage(log, settings.broker, "retrying until it is back")  # one warning per outage
        client_id = f"emocam-listen-{uuid.uuid4().hex[:8]}"  # never one of a daemon's ids
        self._client = make_client(settings, client_id)
        self._client.reconnect_delay_set(RECONNECT_MIN_SECONDS, RECONNECT_MAX_SECONDS)
        self._client.on_pre_connect = lambda client, userdata: self._outage.attempt()
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        # paho's own loop_forever (reconnects, back-off) on a thread of ours rather than loop_start:
        # loop_start adds a wake-up socket pair that costs two more system calls per message.
        self._network = threading.Thread(target=self._client.loop_forever, kwargs={"retry_first_connection": True},
                                         name="emocam-listen-mqtt", daemon=True)
        self._connects = 0

    def run(self) -> int:
        broker = self.settings.broker
        log.info("listening on %s:%d to %s", broker.host, broker.port, ", ".join(self._topics))
        if self.share:
            log.info("shared subscription %r: this listener gets its part of the events; "
                     "gaps in seq are not counted", self.share)
        self._client.connect_async(broker.host, broker.port, keepalive=self.settings.keepalive,
                                   properties=self._connect_properties())
        self._network.start()
        window = SummaryWindow(time.time())
        reader_gone = False
        try:
            while not self.stop.is_set():
                if self.summary and time.time() - window.start >= self.summary:
                    window = self._flush_window(window)
                if not self._print_batch(window):
                    self._idle()
        except BrokenPipeError:
            reader_gone = True  # `emocam listen | head -n 5`: the reader has what it wanted
        finally:
            self._disconnect()
            if not reader_gone:
                reader_gone = not self._drain(window)
        if reader_gone:
            discard_stdout()  # the buffered rest and the flush at exit go nowhere, without an error
            log.info("standard output was closed by its reader; stopped%s", self._totals())
        else:
            log.info("stopped%s", self._totals())
        return 0

    def _drain(self, window: SummaryWindow) -> bool:
        """Print what arrived before the disconnect; False when the reader of stdout has gone."""
        try:
            while self._print_batch(window):
                pass
            if self.summary:
                self._flush_window(window)  # the partial window at Ctrl-C is worth seeing too
            self._flush()
        except BrokenPipeError:
            return False
        return True

    def _connect_properties(self) -> Properties | None:
        if not self._v5:
            return None  # MQTT 3.1.1 has neither: the broker's own limits apply (docs/fleet.md)
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.ReceiveMaximum = RECEIVE_MAXIMUM
        properties.SessionExpiryInterval = SESSION_EXPIRY_SECONDS
        return properties

    def _disconnect(self) -> None:
        properties = None
        if self._v5:  # a clean exit: the broker may forget our session at once
            properties = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = 0
        self._client.disconnect(properties=properties)  # loop_forever returns once it is out
        self._network.join(NETWORK_STOP_SECONDS)

    def _totals(self) -> str:
        parts = []
        if self.skipped:
            parts.append(f"skipped {self.skipped} malformed messages")
        if self.gaps.missed:
            devices = len(self.gaps.devices_with_gaps)
            parts.append(f"missed {_count(self.gaps.missed, 'event')} of {_count(devices, 'device')} "
                         "(gaps in their seq)")
        if self.gaps.repeats:
            parts.append(f"{_count(self.gaps.repeats, 'event')} arrived twice")
        if self._broker_dropped_reported:
            parts.append(f"the broker dropped {self._broker_dropped_reported} messages meanwhile")
        return "; " + "; ".join(parts) if parts else ""

    # ---- the main thread: parse, format, print ----

    def _idle(self) -> None:
        """Nothing to print: flush what was written and wait for the next message."""
        self._flush()
        self._wake.clear()
        if not self._backlog:  # checked after clear: a message handed over meanwhile sets it again
            if self._wake.wait(_POLL_SECONDS):
                time.sleep(_LINGER_SECONDS)  # let a few more arrive: one write for many, not one each

    def _print_batch(self, window: SummaryWindow) -> bool:
        """Handle up to a batch of waiting messages; False when there were none."""
        backlog = self._backlog
        if not backlog:
            return False
        for _ in range(min(len(backlog), _BATCH)):
            self._show(backlog.popleft(), window)
        if self._lines:
            self.out.write("\n".join(self._lines) + "\n")
            self._lines.clear()
        self._room.set()
        return True

    def _flush(self) -> None:
        self.out.flush()  # when caught up: a reader on a pipe sees each line without delay

    def _show(self, message: mqtt.MQTTMessage, window: SummaryWindow) -> None:
        payload = message.payload
        try:
            topic = message.topic
        except UnicodeDecodeError:
            self._skip("a topic", PayloadError("topic", ["not UTF-8"]))
            return
        if topic == DROPPED_TOPIC:
            self._broker_drops(payload)
            return
        try:
            parsed = parse_message(topic, payload, self.settings.topic_prefix)
        except PayloadError as exc:
            self._skip(topic, exc)
            return
        if isinstance(parsed, Availability):
            if self.as_json:
                log.info("%s is %s", parsed.device, parsed.status)
            else:
                self._lines.append(format_availability(parsed))
            return
        if not isinstance(parsed, Event):
            return  # not subscribed to (state, stats): a broker that sends more than asked
        if not self.share:
            gap = self.gaps.see(parsed.device, parsed.seq)
            if gap is not None:
                self._report_gap(gap)
        if self.summary:
            window.add(parsed)
        elif self.as_json:
            text = payload.decode("utf-8").strip()
            self._lines.append(text if "\n" not in text else json.dumps(json.loads(text), separators=(",", ":")))
        else:
            self._lines.append(format_event(parsed))

    def _skip(self, topic: str, exc: PayloadError) -> None:
        self.skipped += 1
        log.warning("skipped a message on %s: %s", topic, exc)

    def _report_gap(self, gap: Gap) -> None:
        span = f"seq {gap.first}" if gap.count == 1 else f"seq {gap.first} to {gap.last}"
        self._gap_log.warning(time.monotonic(), "missed %d event%s of %s (%s): the broker dropped them for "
                              "this listener, or the camera's offline queue overflowed; %d missed so far",
                              gap.count, "" if gap.count == 1 else "s", gap.device, span, self.gaps.missed)

    def _broker_drops(self, payload: bytes | bytearray) -> None:
        try:
            count = int(payload)
        except ValueError:
            return
        if self._broker_dropped is None or count < self._broker_dropped:
            self._broker_dropped = count  # first look, or the broker restarted
            return
        new = count - self._broker_dropped - self._broker_dropped_reported
        if new > 0:
            self._broker_dropped_reported += new
            log.warning("the broker dropped %d messages in the last interval (%d since listen started), "
                        "for this or another slow subscriber: its queue for that client was full",
                        new, self._broker_dropped_reported)

    def _flush_window(self, window: SummaryWindow) -> SummaryWindow:
        end = time.time()
        rows = window.rows(end)
        for row in rows:
            self._lines.append(json.dumps(row, separators=(",", ":")) if self.as_json else format_summary(row))
        if not rows and not self.as_json:
            self._lines.append(f"{_local(datetime.fromtimestamp(window.start, UTC))} to "
                               f"{_local(datetime.fromtimestamp(end, UTC))[11:]}  no events")
        if self._lines:
            self.out.write("\n".join(self._lines) + "\n")
            self._lines.clear()
        self._flush()
        return SummaryWindow(end)

    # ---- paho callbacks (network thread) ----

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        backlog = self._backlog
        while len(backlog) >= BACKLOG_LIMIT and not self.stop.is_set():
            # The printer is far behind: stop reading, so the broker holds the rest (and acks wait).
            self._room.clear()
            if len(backlog) >= BACKLOG_LIMIT:
                self._room.wait(_POLL_SECONDS)
        backlog.append(message)
        if not self._wake.is_set():
            self._wake.set()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._outage.refused(reason)
            return
        self._connects += 1
        self._outage.connected()
        log.info("%s MQTT broker %s:%d", "connected to" if self._connects == 1 else "reconnected to",
                 self.settings.broker.host, self.settings.broker.port)
        if getattr(flags, "session_present", False):
            # MQTT 5 session kept over the outage: the subscriptions stand, queued messages follow.
            log.info("resumed the session: the subscriptions stand and what the broker queued follows")
            return
        client.subscribe([(topic, 1) for topic in self._topics] + [(DROPPED_TOPIC, 0)])

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        granted = []
        for topic, reason in zip([*self._topics, DROPPED_TOPIC], reasons, strict=False):
            if not reason.is_failure:
                granted.append(topic)
            elif topic == DROPPED_TOPIC:
                log.debug("no access to %s (%s): broker drops are counted from seq gaps only", topic, reason)
            else:
                log.warning("the broker refused the subscription to %s: %s", topic, reason)
        log.info("subscribed to %s", ", ".join(t for t in granted if t != DROPPED_TOPIC) or "nothing")

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        # paho 2 calls this from inside its ``except OSError`` around the connection attempt.
        self._outage.socket_failed(sys.exception())

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if self._outage.disconnected(reason) and not self.stop.is_set():
            log.warning("lost the MQTT broker (%s); reconnecting", reason)
