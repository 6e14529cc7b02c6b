"""The MQTT publisher: paho-mqtt 2 on its own network thread, never blocking the frame loop.

Topics (the contract is docs/mqtt.md): ``<prefix>/<device>/availability`` (retained ``online``
on every connect, last will ``offline``, ``stopped`` or another reason on a clean close),
``.../events`` (never retained), ``.../state`` (retained) and ``.../stats``.

Why a queue of our own: paho drops QoS 0 messages while disconnected and, when its own bound is
hit, refuses the newest message. Events must survive a broker outage in order, losing the oldest
first. So while disconnected, events wait in a bounded deque here (oldest dropped and counted);
state and stats keep only their newest message, since an old one is worth nothing. On every
(re)connect the network thread publishes ``online`` and the discovery configs, then drains the
queue in order. The frame loop takes the lock only for a deque append or one paho publish call.

Why a connection attempt failed (refused, unknown host, TLS against a plain port, not an MQTT
server, bad credentials) is logged once per outage by ``emocam.edge.mqtt.outage``.

What never arrived is counted, not guessed: each event handed to paho is remembered by its message
id until the broker acknowledges it (QoS 1/2) or paho has written it (QoS 0). ``flush`` waits
for the broker to take everything, bounded, and returns a ``Delivery`` that says how many events
it never got (pushed out of the full queue, refused, still waiting, unacknowledged) and why.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from emocam.edge.log_limit import LogLimiter
from emocam.edge.mqtt.client import make_client
from emocam.edge.mqtt.discovery import discovery_configs
from emocam.edge.mqtt.outage import BrokerOutage
from emocam.edge.mqtt.publishing import Delivery, Payload
from emocam.edge.mqtt.settings import MqttSettings

log = logging.getLogger(__name__)

RECONNECT_MIN_SECONDS = 1
RECONNECT_MAX_SECONDS = 30
CLOSE_TIMEOUT_SECONDS = 2.0  # how long close() waits for queued messages and ``stopped`` to go out
_CONTROL_MESSAGES = 16
# Acknowledgements that came before their event was registered (the network thread can be that
# quick), and those of state, stats and availability messages: only the recent ones matter.
_EARLY_ACKS = 4096


@dataclass(frozen=True, slots=True)
class MqttStats:
    """Counters since start. ``published`` counts messages the broker acknowledged (QoS 1/2) or
    that were written to the socket (QoS 0); ``dropped`` counts events pushed out of the full
    offline queue and messages that paho or the broker refused; ``queued`` is what waits for a
    connection now."""

    published: int
    dropped: int
    queued: int
    connected: bool
    reconnects: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _Message:
    topic: str
    payload: bytes
    retain: bool
    latest_only: bool  # state/stats: a newer message replaces a waiting one; False: an event

    @property
    def event(self) -> bool:
        return not self.latest_only


def _encode(payload: Payload) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


class MqttPublisher:
    """Publishes to one broker. Build it at start-up (bad TLS files fail here), then ``start``."""

    def __init__(self, settings: MqttSettings, labels: Sequence[str] = (), model_version: str = "") -> None:
        self.settings = settings
        self._labels = tuple(labels)
        self._model_version = model_version
        self._broker = settings.broker
        self._availability = settings.topic("availability")
        self._ha_status = f"{settings.discovery_prefix}/status"
        self._lock = threading.Lock()  # guards the queue, _latest and the connected/closed flags
        self._queue: deque[_Message] = deque()
        self._latest: dict[str, _Message] = {}
        self._connected = False
        self._started = False
        self._closed = False
        self._counts = threading.Lock()  # never held while calling paho: callbacks take it
        self._published = 0
        self._dropped = 0
        self._connects = 0
        self._unacked: set[int] = set()  # message ids of events paho has and the broker has not acknowledged
        self._early_acks: OrderedDict[int, bool] = OrderedDict()  # message id -> refused, not (yet) matched
        self._events_pushed_out = 0  # events dropped from the full offline queue
        self._events_lost = 0  # events refused by paho (its queue full) or the broker, or QoS 0 ones lost with the link
        self._last_loss = ""
        self._flushed = False  # flush() reported what was lost: close() need not say it again
        self._drop_log = LogLimiter(log, interval=30.0)
        self._outage = BrokerOutage(log, self._broker)
        self._client = self._build_client()

    def _build_client(self) -> mqtt.Client:
        s = self.settings
        client = make_client(s, s.effective_client_id)
        client.will_set(self._availability, "offline", qos=1, retain=True)
        client.reconnect_delay_set(RECONNECT_MIN_SECONDS, RECONNECT_MAX_SECONDS)
        # paho's own queue holds what it was handed and the broker has not acknowledged yet. Bound it
        # too (a broker that stops acking must not grow memory), with room for a full drain plus the
        # availability, discovery, state and stats messages of a connect.
        client.max_queued_messages_set(s.max_queued + _CONTROL_MESSAGES)
        client.on_pre_connect = self._on_pre_connect
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_log = self._on_log
        return client

    # ---- Publisher protocol (frame-loop thread) ----

    def start(self) -> None:
        """Begin connecting in the background; returns at once, whether the broker is up or not."""
        if self._started:
            return
        self._started = True
        if not self._labels and self.settings.ha_discovery:
            log.warning("no labels given: Home Assistant discovery is off")
        b = self._broker
        log.info(
            "MQTT %s to %s:%d%s as %s, topics %s/%s/#",
            self.settings.protocol, b.host, b.port, " (TLS)" if b.tls else "",
            self.settings.effective_client_id, self.settings.topic_prefix, self.settings.device_id,
        )
        self._client.connect_async(b.host, b.port, keepalive=self.settings.keepalive)
        self._client.loop_start()

    def publish_event(self, payload: Payload) -> None:
        self._send(_Message(self.settings.topic("events"), _encode(payload), retain=False, latest_only=False))

    def publish_state(self, payload: Payload) -> None:
        self._send(_Message(self.settings.topic("state"), _encode(payload), retain=True, latest_only=True))

    def publish_stats(self, payload: Payload) -> None:
        """Sends the daemon's stats with this publisher's counters added under ``mqtt``."""
        merged = {**payload, "mqtt": self.stats().as_dict()}
        self._send(_Message(self.settings.topic("stats"), _encode(merged), retain=False, latest_only=True))

    def flush(self, wait_for_broker: bool = False, give_up: Callable[[], bool] | None = None) -> Delivery:
        """Wait until the broker has every event, state and stats message, bounded; say what it lacks.

        ``wait_for_broker`` (the end of a file): up to ``flush_timeout`` seconds, also for a broker
        that is not connected yet. Otherwise (a stop): up to 2 s, and only while connected.
        ``give_up`` returning True ends the wait early. Shutdown only: the caller's thread sleeps.
        """
        timeout = self.settings.flush_timeout if wait_for_broker else CLOSE_TIMEOUT_SECONDS
        deadline = time.monotonic() + timeout
        if self._started and not self._closed:
            if wait_for_broker and not self._connected and self._events_waiting():
                log.info("waiting up to %g s for MQTT broker %s to take %d events", timeout, self._outage.name,
                         self._events_waiting())
            while not self._all_sent() and time.monotonic() < deadline and (wait_for_broker or self._connected):
                if give_up is not None and give_up():
                    break
                time.sleep(0.01)  # the network thread connects, drains and collects acknowledgements
        self._flushed = True
        return self._delivery(timeout)

    def close(self, reason: str = "stopped") -> None:
        """Publish ``reason`` on availability (retained), flush briefly, disconnect. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if not self._started:
            return
        deadline = time.monotonic() + CLOSE_TIMEOUT_SECONDS
        while self._connected and not self._all_sent() and time.monotonic() < deadline:
            time.sleep(0.01)  # the network thread is draining; shutdown only, bounded
        if self._connected:
            info = self._client.publish(self._availability, reason, qos=1, retain=True)
            try:
                # The broker acknowledges in order, so this also covers every earlier QoS 1 message.
                info.wait_for_publish(timeout=max(0.0, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as exc:
                log.warning("could not publish availability %r on close: %s", reason, exc)
        if not self._connected:
            log.warning(
                "closing while disconnected from %s: availability stays %s", self._outage.name,
                "'offline' (the last will)" if self._connects else "unchanged (never connected)",
            )
        lost = self._delivery(CLOSE_TIMEOUT_SECONDS)
        self._client.disconnect()
        self._client.loop_stop()
        if lost.undelivered and not self._flushed:  # after a flush, its caller has said it
            log.warning("%s; they are lost", lost)
        log.info("MQTT publisher closed (%s): %s", reason, self.stats())

    def stats(self) -> MqttStats:
        with self._counts:
            published, dropped, connects = self._published, self._dropped, self._connects
        return MqttStats(
            published=published,
            dropped=dropped,
            queued=len(self._queue) + len(self._latest),
            connected=self._connected,
            reconnects=max(0, connects - 1),
        )

    # ---- what reached the broker ----

    def _events_waiting(self) -> int:
        return len(self._queue) + len(self._unacked)

    def _all_sent(self) -> bool:
        return not (self._queue or self._latest or self._unacked)

    def _delivery(self, waited: float) -> Delivery:
        """The events that never reached the broker: pushed out, refused, still queued, unacknowledged."""
        with self._lock:
            queued = len(self._queue)
        with self._counts:
            unacked, pushed_out, lost = len(self._unacked), self._events_pushed_out, self._events_lost
        why = []
        if queued or unacked:
            if not self._connected:
                why.append(self._outage.reason or "not connected")
            else:
                why.append(f"{queued + unacked} not acknowledged yet")
        if pushed_out:
            why.append(f"{pushed_out} pushed out of the full offline queue (max_queued = {self.settings.max_queued})")
        if lost:
            why.append(f"{lost} lost ({self._last_loss})")
        return Delivery(queued + unacked + pushed_out + lost, self._outage.name, "; ".join(why), waited)

    def _track(self, mid: int) -> None:
        """Remember an event paho took, until the broker acknowledges it (``_on_publish``)."""
        with self._counts:
            refused = self._early_acks.pop(mid, None)
            if refused is None:
                if mid in self._unacked:  # an older event with this id never got an answer
                    self._events_lost += 1
                    self._last_loss = "never acknowledged"
                self._unacked.add(mid)
            elif refused:
                self._events_lost += 1

    # ---- sending ----

    def _send(self, message: _Message) -> None:
        with self._lock:
            if self._closed:
                log.debug("publisher closed, not sending to %s", message.topic)
                return
            # Publish directly only when nothing waits, so order is kept while a drain runs.
            if self._connected and not self._queue and not self._latest and self._publish_now(message):
                return
            self._enqueue(message)

    def _enqueue(self, message: _Message) -> None:
        """Caller holds ``_lock``."""
        if message.latest_only:
            self._latest[message.topic] = message
            return
        if len(self._queue) >= self.settings.max_queued:
            self._queue.popleft()
            with self._counts:
                self._events_pushed_out += 1
            self._count_drop("offline queue full (%d): dropped the oldest event", self.settings.max_queued)
        self._queue.append(message)

    def _publish_now(self, message: _Message) -> bool:
        """Hand one message to paho. False if it must be queued again (QoS 0 and no connection)."""
        info = self._client.publish(message.topic, message.payload, qos=self.settings.qos, retain=message.retain)
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            if message.event:
                self._track(info.mid)
            return True
        if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN:
            # The link dropped between our check and the call: paho keeps QoS 1/2 messages for
            # the next connection itself; QoS 0 ones it discards, so we queue them.
            if self.settings.qos > 0 and message.event:
                self._track(info.mid)
            return self.settings.qos > 0
        if message.event:
            with self._counts:
                self._events_lost += 1
                self._last_loss = f"refused by paho: {mqtt.error_string(info.rc)}"
        self._count_drop("paho refused a message to %s: %s", message.topic, mqtt.error_string(info.rc))
        return True

    def _count_drop(self, message: str, *args: object) -> None:
        with self._counts:
            self._dropped += 1
        self._drop_log.warning(time.monotonic(), message, *args)

    def _drain(self) -> None:
        """Network thread, after a connect: send what waited, oldest first, then state/stats."""
        sent = 0
        while True:
            with self._lock:
                if not self._connected:
                    break
                if self._queue:
                    message = self._queue.popleft()
                elif self._latest:
                    message = self._latest.pop(next(iter(self._latest)))
                else:
                    break
                if not self._publish_now(message):
                    if message.latest_only:
                        self._latest.setdefault(message.topic, message)
                    else:
                        self._queue.appendleft(message)
                    break
                sent += 1
        if sent:
            log.info("sent %d messages that waited for the broker", sent)

    def _publish_discovery(self) -> None:
        if not (self.settings.ha_discovery and self._labels):
            return
        for topic, config in discovery_configs(self.settings, self._labels, self._model_version).items():
            self._client.publish(topic, _encode(config), qos=1, retain=True)

    # ---- paho callbacks (network thread) ----

    def _on_pre_connect(self, client: mqtt.Client, userdata: Any) -> None:
        self._outage.attempt()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            # A refusal is not a connection (bad credentials, not authorized): stay offline.
            self._outage.refused(reason)
            return
        self._outage.connected()
        with self._counts:
            self._connects += 1
            first = self._connects == 1
            if self.settings.qos == 0 and self._unacked:
                # paho resends QoS 1/2 messages on a new connection; QoS 0 ones died with the old one.
                self._events_lost += len(self._unacked)
                self._last_loss = "QoS 0, sent when the connection died"
                self._unacked.clear()
        log.info("%s MQTT broker %s:%d", "connected to" if first else "reconnected to",
                 self._broker.host, self._broker.port)
        if self.settings.ha_discovery and self._labels:
            client.subscribe(self._ha_status, qos=1)  # renewed on every connect: sessions are clean
        client.publish(self._availability, "online", qos=1, retain=True)
        self._publish_discovery()
        with self._lock:
            self._connected = True
        self._drain()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        # paho 2 calls this from inside its ``except OSError`` around the connection attempt.
        self._outage.socket_failed(sys.exception())

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        # No lock here: paho may call this while holding its own locks that a publisher holding
        # ours waits for. A plain assignment is atomic; a racing publish gets NO_CONN and queues.
        self._connected = False
        if self._outage.disconnected(reason) and not self._closed:
            log.warning("lost the MQTT broker %s (%s); queueing up to %d events while reconnecting",
                        self._outage.name, reason, self.settings.max_queued)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        refused = bool(reason.is_failure)
        with self._counts:
            if mid in self._unacked:
                self._unacked.discard(mid)
                if refused:
                    self._events_lost += 1
            else:  # not an event, or an event whose registration is still on its way (_track)
                self._early_acks[mid] = refused
                if len(self._early_acks) > _EARLY_ACKS:
                    self._early_acks.popitem(last=False)
            if refused:
                self._last_loss = f"refused by the broker: {reason}"
            else:
                self._published += 1
        if refused:
            self._count_drop("broker refused a message: %s", reason)

    def _on_log(self, client: mqtt.Client, userdata: Any, level: int, text: str) -> None:
        # paho 2.2 logs "Client is not connected" at ERR between connection attempts and after a
        # clean disconnect; our connect/disconnect callbacks already say that, once and rate-limited.
        if level == mqtt.MQTT_LOG_ERR and not text.startswith("Client is not connected"):
            log.error("paho: %s", text)
        else:
            log.debug("paho: %s", text)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == self._ha_status and message.payload == b"online":
            log.info("Home Assistant came online: publishing discovery again")
            self._publish_discovery()
