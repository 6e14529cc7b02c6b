"""Publishers: settings checks and stdout without a broker; MQTT behaviour against a real broker.

Every broker test uses its own device id and topic prefix, and waits with a deadline, never a
bare sleep. Reconnects take about a second: paho's shortest back-off (reconnect_delay_set(1, 30)).
"""

from __future__ import annotations

import io
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from emocam.edge.errors import PublishError
from emocam.edge.mqtt.discovery import discovery_configs, discovery_topics, remove_discovery
from emocam.edge.mqtt.outage import BrokerOutage, describe_socket_error
from emocam.edge.mqtt.publisher import MqttPublisher
from emocam.edge.mqtt.publishing import StdoutPublisher
from emocam.edge.mqtt.settings import BrokerAddress, MqttSettings, parse_broker_url
from emocam.edge.mqtt.wire import event_payload, state_payload
from emocam.edge.tracking.tracker import FaceTracker, TrackerSettings
from emocam.edge.vision.faces import Face
from tests.edge.conftest import Broker, Subscriber, assert_exact_event, free_port, wait_until

LABELS = ("angry", "fear", "happy", "neutral", "sad", "surprise")
MODEL = "test-1"
SECRET = "pw-Secret-4711"

PublisherFactory = Callable[..., MqttPublisher]


def event(n: int) -> dict[str, Any]:
    """A small numbered payload; order and loss checks only need the number."""
    return {"n": n}


def numbers(messages: list[Any]) -> list[int]:
    return [json.loads(m.payload)["n"] for m in messages]


@pytest.fixture
def make_publisher(unique_id: str) -> Iterator[PublisherFactory]:
    """``make_publisher(broker or url, **settings)`` -> an MqttPublisher with this test's own topics.

    With a broker (or a proxy to one), the protocol defaults to the newest that broker speaks.
    """
    made: list[MqttPublisher] = []

    def make(target: Broker | LinkProxy | str, **overrides: Any) -> MqttPublisher:
        fields: dict[str, Any] = {"device_id": unique_id, "topic_prefix": f"emocam-{unique_id}",
                                  "discovery_prefix": f"ha-{unique_id}"}
        if not isinstance(target, str):
            fields["protocol"] = target.protocols[-1]
            target = target.url
        settings = MqttSettings(url=target, **{**fields, **overrides})
        publisher = MqttPublisher(settings, labels=LABELS, model_version=MODEL)
        made.append(publisher)
        return publisher

    yield make
    for publisher in made:
        publisher.close()


class LinkProxy:
    """A TCP relay in front of the broker whose ``cut()`` kills the link like a dead Wi-Fi would:
    the broker sees the connection drop without an MQTT DISCONNECT. ``freeze()`` holds every byte
    instead, like a link that stalls: connected, but nothing arrives either way."""

    def __init__(self, broker: Broker) -> None:
        self._target = (broker.host, broker.port)
        self.protocols = broker.protocols
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"mqtt://127.0.0.1:{self._server.getsockname()[1]}"
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._flowing = threading.Event()
        self._flowing.set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                near, _ = self._server.accept()
                far = socket.create_connection(self._target)
            except OSError:
                return
            with self._lock:
                self._sockets += [near, far]
            for src, dst in ((near, far), (far, near)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self._flowing.wait()
                dst.sendall(data)
        except OSError:
            pass

    def freeze(self) -> None:
        self._flowing.clear()

    def cut(self) -> None:
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._sockets.clear()

    def close(self) -> None:
        self._flowing.set()
        self._server.close()
        self.cut()


class NotABroker:
    """A TCP server that is no MQTT broker: it answers like a web server and hangs up."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"mqtt://127.0.0.1:{self._server.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.recv(1024)
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass

    def close(self) -> None:
        self._server.close()


OUTAGE = "cannot connect to MQTT broker"


def outage_lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == level and r.name == "emocam.edge.mqtt.publisher" and OUTAGE in r.getMessage()]


# ---- without a broker ----


def test_connection_errors_are_named_in_a_few_words() -> None:
    plain, tls = BrokerAddress("broker.lan", 1883, False), BrokerAddress("broker.lan", 1883, True)
    assert describe_socket_error(ConnectionRefusedError(111, "Connection refused"), plain) == "connection refused"
    assert describe_socket_error(socket.gaierror(socket.EAI_NONAME, "Name or service not known"), plain) == (
        "unknown host")
    assert describe_socket_error(socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
                                 plain) == "host name lookup failed (Temporary failure in name resolution)"
    assert describe_socket_error(TimeoutError("timed out"), plain) == "timed out"
    assert describe_socket_error(OSError(113, "No route to host"), plain) == "no route to host"
    # A plain listener reached over TLS hangs up on the ClientHello; over plain TCP a reset is just that.
    reset = ConnectionResetError(104, "Connection reset by peer")
    hung_up = "TLS handshake failed (the server hung up; is port 1883 a TLS listener?)"
    assert describe_socket_error(reset, tls) == hung_up
    assert describe_socket_error(reset, plain) == "connection reset by peer"
    wrong = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    assert describe_socket_error(wrong, tls).startswith("TLS handshake failed (")


def test_an_outage_is_reported_once_at_warning_then_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="test.outage")
    outage = BrokerOutage(logging.getLogger("test.outage"), BrokerAddress("broker.lan", 1883, False))
    for _ in range(3):
        outage.attempt()
        outage.socket_failed(ConnectionRefusedError(111, "Connection refused"))
    outage.attempt()
    outage.refused("Not authorized")  # the broker is back but says no: news, so a warning again
    outage.disconnected("Unspecified error")  # paho's hang-up after the refusal: not another reason
    outage.attempt()
    outage.refused("Not authorized")
    outage.connected()
    assert outage.reason is None and outage.disconnected("Unspecified error")  # a loss: the caller says so
    outage.attempt()
    outage.disconnected("Unspecified error")  # TCP accepted, no CONNACK: not an MQTT broker
    levels = [(r.levelname, r.getMessage()) for r in caplog.records]
    refused = "cannot connect to MQTT broker broker.lan:1883: connection refused; retrying with back-off"
    not_authorized = ("cannot connect to MQTT broker broker.lan:1883: the broker refused the connection "
                      "(Not authorized); retrying with back-off")
    assert levels[:5] == [("WARNING", refused), ("DEBUG", refused), ("DEBUG", refused),
                          ("WARNING", not_authorized), ("DEBUG", not_authorized)]
    assert levels[5] == ("WARNING", "cannot connect to MQTT broker broker.lan:1883: the server hung up without an MQTT "
                         "answer (is it an MQTT broker? a TLS port needs mqtts://); retrying with back-off")
    assert len(levels) == 6


def test_broker_url_parsing() -> None:
    assert parse_broker_url("mqtt://pi.local") == parse_broker_url("mqtt://pi.local:1883")
    plain = parse_broker_url("mqtt://emocam@pi.local")
    assert (plain.host, plain.port, plain.tls, plain.username) == ("pi.local", 1883, False, "emocam")
    secure = parse_broker_url("mqtts://[::1]:8884/")
    assert (secure.host, secure.port, secure.tls, secure.username) == ("::1", 8884, True, None)
    assert parse_broker_url("mqtts://broker").port == 8883


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"url": "mqtt://user:hunter2@host"}, "contains a password"),
        ({"url": "http://host"}, "scheme 'http'"),
        ({"url": "mqtt://:1883"}, "has no host"),
        ({"url": "mqtt://host:99999"}, "malformed"),
        ({"url": "mqtt://host/emocam"}, "path"),
        ({"device_id": "kitchen/left"}, "device_id='kitchen/left'"),
        ({"device_id": "cam+1"}, "device_id='cam+1'"),
        ({"device_id": ""}, "device_id is empty"),
        ({"topic_prefix": "emocam/#"}, "topic_prefix='emocam/#'"),
        ({"topic_prefix": "/emocam"}, "topic_prefix='/emocam'"),
        ({"discovery_prefix": ""}, "discovery_prefix=''"),
        ({"protocol": "3"}, "protocol='3'"),
        ({"qos": 3}, "qos=3"),
        ({"keepalive": 0}, "keepalive=0"),
        ({"max_queued": 0}, "max_queued=0"),
        ({"ca_file": "/etc/ca.pem"}, "ca_file set but url"),
        ({"url": "mqtts://host", "key_file": "/k.pem"}, "key_file is set without cert_file"),
        ({"protocol": "3.1.1", "password": SECRET}, "needs mqtt://user@host"),
    ],
)
def test_settings_reject_bad_values(overrides: dict[str, Any], message: str) -> None:
    fields = {"url": "mqtt://host", "device_id": "kitchen", **overrides}
    with pytest.raises(ValueError) as error:
        MqttSettings(**fields)
    assert message in str(error.value)
    assert "hunter2" not in str(error.value) and SECRET not in str(error.value)


def test_password_is_redacted_in_repr() -> None:
    settings = MqttSettings(url="mqtt://emocam@host", device_id="kitchen", password=SECRET)
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    assert settings.password == SECRET


def test_stdout_publisher_writes_events_only(caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()
    publisher = StdoutPublisher(stream)
    caplog.set_level(logging.DEBUG, logger="emocam.edge.mqtt.publishing")
    publisher.start()
    publisher.publish_event({"type": "appeared", "face": 1})
    publisher.publish_state({"count": 1})
    publisher.publish_stats({"fps": 30.0})
    publisher.publish_event({"type": "left", "face": 1})
    publisher.close()
    lines = stream.getvalue().splitlines()
    assert [json.loads(line) for line in lines] == [{"type": "appeared", "face": 1}, {"type": "left", "face": 1}]
    assert '"fps": 30.0' in caplog.text and '"count": 1' in caplog.text


def test_tls_files_are_checked_when_built(tmp_path: Any) -> None:
    missing = tmp_path / "missing-ca.pem"
    with pytest.raises(PublishError, match=f"ca_file {missing} does not exist"):
        MqttPublisher(MqttSettings(url="mqtts://host", device_id="kitchen", ca_file=str(missing)))
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(PublishError, match="TLS setup failed .*ca_file="):
        MqttPublisher(MqttSettings(url="mqtts://host", device_id="kitchen", ca_file=str(garbage)))


def test_offline_queue_is_bounded_and_never_blocks(make_publisher: PublisherFactory) -> None:
    publisher = make_publisher(f"mqtt://127.0.0.1:{free_port()}", max_queued=50)  # nobody listens there
    began = time.perf_counter()
    publisher.start()
    for n in range(1000):
        publisher.publish_event(event(n))
    publisher.publish_state({"count": 1})
    publisher.publish_state({"count": 2})
    publisher.publish_stats({"fps": 1.0})
    assert time.perf_counter() - began < 0.5  # ~1000 calls: microseconds each, no network wait
    stats = publisher.stats()
    assert (stats.connected, stats.published, stats.dropped, stats.queued) == (False, 0, 950, 50 + 2)
    began = time.monotonic()
    publisher.close()
    assert time.monotonic() - began < 2.5
    publisher.publish_event(event(1001))  # after close: ignored, not raised
    assert publisher.stats().queued == 52


def test_flush_counts_the_events_that_never_reached_the_broker(
    make_publisher: PublisherFactory, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nobody listens there
    publisher = make_publisher(f"mqtt://127.0.0.1:{port}", max_queued=2, flush_timeout=0.5)
    publisher.start()
    for n in range(5):
        publisher.publish_event(event(n))
    publisher.publish_state({"count": 1})
    wait_until(lambda: "connection refused" in caplog.text, what="a failed attempt")
    began = time.monotonic()
    quick = publisher.flush()  # a stop: no waiting for a broker that is not there
    assert time.monotonic() - began < 0.1
    delivery = publisher.flush(wait_for_broker=True)  # the end of a file: flush_timeout
    assert 0.5 <= time.monotonic() - began < 1.5
    assert (quick.undelivered, quick.why) == (delivery.undelivered, delivery.why) and delivery.waited == 0.5
    assert str(delivery) == (f"5 events not delivered to 127.0.0.1:{port}: connection refused; "
                             "3 pushed out of the full offline queue (max_queued = 2)")
    caplog.clear()
    publisher.close()
    assert "not delivered" not in caplog.text  # the caller of flush has the count: said once, by it


# ---- against a real broker ----


@pytest.mark.broker
@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_availability_online_then_stopped_is_retained(
    mqtt_broker: Broker, make_publisher: PublisherFactory, subscribe: Callable[..., Subscriber], protocol: str
) -> None:
    if protocol not in mqtt_broker.protocols:
        pytest.skip(f"{mqtt_broker.kind} does not speak MQTT {protocol}")
    publisher = make_publisher(mqtt_broker, protocol=protocol)
    topic = publisher.settings.topic("availability")
    publisher.start()
    # Acknowledged (acks come in order; ``online`` goes first), so the new subscriber gets it retained.
    wait_until(lambda: publisher.stats().published >= 1, what="connect")
    online = subscribe(mqtt_broker, [topic]).get()
    assert (online.text, online.retain) == ("online", True)
    publisher.close()
    late = subscribe(mqtt_broker, [topic]).get()  # a fresh client, after the fact
    assert (late.text, late.retain) == ("stopped", True)


@pytest.mark.broker
def test_last_will_offline_when_the_link_dies_then_reconnects(
    mqtt_broker: Broker, make_publisher: PublisherFactory, subscribe: Callable[..., Subscriber]
) -> None:
    proxy = LinkProxy(mqtt_broker)
    try:
        publisher = make_publisher(proxy)
        publisher.start()
        wait_until(lambda: publisher.stats().connected, what="connect")
        watcher = subscribe(mqtt_broker, [publisher.settings.topic("availability")])
        assert watcher.get().text == "online"
        proxy.cut()
        seen = watcher.collect(lambda got: [m.text for m in got][-1:] == ["online"], timeout=10)
        assert [m.text for m in seen] == ["offline", "online"]  # the broker's will, then the reconnect
        wait_until(lambda: publisher.stats().connected, what="reconnect")
        assert publisher.stats().reconnects == 1
    finally:
        proxy.close()


@pytest.mark.broker
def test_tracker_events_arrive_in_order_and_match_the_schema(
    mqtt_broker: Broker, make_publisher: PublisherFactory, subscribe: Callable[..., Subscriber]
) -> None:
    publisher = make_publisher(mqtt_broker)
    events_sub = subscribe(mqtt_broker, [publisher.settings.topic("events")])
    publisher.start()
    tracker = FaceTracker(TrackerSettings(hold_seconds=0.3, smoothing_seconds=0.0), LABELS)
    sent = []
    for i in range(60):  # two faces; the second turns from sad to surprise, then both leave
        t = i / 10
        rows = [np.eye(len(LABELS))[2] * 0.9 + 0.02, np.eye(len(LABELS))[4 if i < 20 else 5] * 0.9 + 0.02]
        faces = [Face((100.0, 100.0, 80.0, 80.0), 0.9), Face((400.0, 120.0, 90.0, 90.0), 0.9)]
        seen = i < 45
        for e in tracker.update(t, faces if seen else [], np.array(rows if seen else []), (640, 480), 1e9 + t):
            sent.append(event_payload(e, publisher.settings.device_id, MODEL))
            publisher.publish_event(sent[-1])
            publisher.publish_state(state_payload(tracker.tracks, publisher.settings.device_id, MODEL, 1e9 + t))
    assert [(p["type"], p["face"]) for p in sent] == [
        ("appeared", 1), ("appeared", 2), ("changed", 2), ("left", 1), ("left", 2)]
    got = events_sub.collect(lambda got: len(got) >= len(sent))
    received = [json.loads(m.payload) for m in got]
    assert received == sent
    for payload in received:
        assert_exact_event(payload, LABELS)
    assert not any(m.retain for m in got)
    state = subscribe(mqtt_broker, [publisher.settings.topic("state")]).get()  # retained, latest
    assert state.retain and json.loads(state.payload)["count"] == 0


@pytest.mark.broker
def test_stats_carry_the_publisher_counters(
    mqtt_broker: Broker, make_publisher: PublisherFactory, subscribe: Callable[..., Subscriber]
) -> None:
    publisher = make_publisher(mqtt_broker)
    stats_sub = subscribe(mqtt_broker, [publisher.settings.topic("stats")])
    publisher.start()
    wait_until(lambda: publisher.stats().connected, what="connect")
    publisher.publish_stats({"fps": 30.0, "uptime": 12.5})
    stats = json.loads(stats_sub.get().payload)
    assert stats["fps"] == 30.0 and stats["uptime"] == 12.5
    assert stats["mqtt"]["connected"] is True and stats["mqtt"]["dropped"] == 0
    assert set(stats["mqtt"]) == {"published", "dropped", "queued", "connected", "reconnects"}


@pytest.mark.broker
def test_broker_down_at_start_then_up_delivers_the_newest_queued(
    own_broker: Broker, make_publisher: PublisherFactory, subscribe: Callable[..., Subscriber]
) -> None:
    publisher = make_publisher(own_broker, max_queued=3)
    events_sub = subscribe(own_broker, [publisher.settings.topic("events")], persistent=True)
    own_broker.stop()
    began = time.monotonic()
    publisher.start()
    for n in range(1, 6):
        publisher.publish_event(event(n))
    publisher.publish_state({"count": 1})
    publisher.publish_state({"count": 2})
    assert time.monotonic() - began < 0.5  # start-up never waits on the broker (a connect try takes ~1 s)
    assert publisher.stats().dropped == 2 and publisher.stats().queued == 3 + 1
    own_broker.start()
    wait_until(lambda: publisher.stats().connected and publisher.stats().queued == 0, what="flush")
    assert numbers(events_sub.collect(lambda got: len(got) >= 3, timeout=10)) == [3, 4, 5]  # oldest dropped
    state = subscribe(own_broker, [publisher.settings.topic("state")]).get()
    assert json.loads(state.payload) == {"count": 2}  # only the newest state was kept
    assert events_sub.quiet(0.2) == []


@pytest.mark.broker
@pytest.mark.parametrize("qos", [0, 1])
def test_broker_restart_mid_run_resumes_and_counts_losses(
    own_broker: Broker, make_publisher: PublisherFactory, subscribe: Callable[..., Subscriber], qos: int
) -> None:
    publisher = make_publisher(own_broker, max_queued=2, qos=qos)
    events_sub = subscribe(own_broker, [publisher.settings.topic("events")], persistent=True)
    publisher.start()
    wait_until(lambda: publisher.stats().connected, what="connect")
    publisher.publish_event(event(1))
    assert numbers([events_sub.get()]) == [1]
    own_broker.stop()
    wait_until(lambda: not publisher.stats().connected, what="disconnect")
    for n in (2, 3, 4):
        publisher.publish_event(event(n))
    assert publisher.stats().dropped == 1
    own_broker.start()
    wait_until(lambda: publisher.stats().connected and publisher.stats().queued == 0, what="reconnect")
    publisher.publish_event(event(5))
    assert numbers(events_sub.collect(lambda got: len(got) >= 3, timeout=10)) == [3, 4, 5]
    stats = publisher.stats()
    assert (stats.reconnects, stats.dropped, stats.queued) == (1, 1, 0)


@pytest.mark.broker
def test_refused_connection_is_not_connected(
    refusing_broker: Broker, make_publisher: PublisherFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="emocam.edge.mqtt.publisher")
    publisher = make_publisher(refusing_broker)
    publisher.start()
    publisher.publish_event(event(1))
    wait_until(lambda: "refused the connection" in caplog.text, what="the refusal")
    stats = publisher.stats()
    assert (stats.connected, stats.queued, stats.published) == (False, 1, 0)


@pytest.mark.broker
@pytest.mark.parametrize(("case", "reason"), [
    ("nothing listens", "connection refused"),
    ("unknown host", "unknown host"),
    ("TLS against a plain port", "TLS handshake failed"),
    ("not an MQTT server", "the server hung up without an MQTT answer"),
    ("bad credentials", "the broker refused the connection (Not authorized)"),
])
def test_why_the_broker_cannot_be_reached_is_logged_once_per_outage(
    case: str, reason: str, request: pytest.FixtureRequest, make_publisher: PublisherFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="emocam.edge.mqtt.publisher")
    password = None
    if case == "nothing listens":
        url = f"mqtt://127.0.0.1:{free_port()}"
    elif case == "unknown host":
        url = "mqtt://emocam-test.invalid"  # .invalid never resolves (RFC 2606)
    elif case == "TLS against a plain port":
        broker = request.getfixturevalue("mqtt_broker")
        url = f"mqtts://{broker.host}:{broker.port}"
    elif case == "not an MQTT server":
        server = NotABroker()
        request.addfinalizer(server.close)
        url = server.url
    else:
        broker = request.getfixturevalue("refusing_broker")
        url, password = broker.url.replace("mqtt://", "mqtt://emocam@"), SECRET
    publisher = make_publisher(url, password=password)
    publisher.start()
    publisher.publish_event(event(1))
    # paho retries after 1 s, then 2 s: the second attempt of the outage is logged at DEBUG only.
    wait_until(lambda: outage_lines(caplog, logging.DEBUG), timeout=20, what="a second failed attempt")
    (warning,) = outage_lines(caplog, logging.WARNING)
    host = url.split("//")[1].split("@")[-1]
    assert warning.startswith(f"{OUTAGE} {host if ':' in host else host + ':1883'}: ") and reason in warning, warning
    assert warning.endswith("; retrying with back-off")
    assert outage_lines(caplog, logging.DEBUG)[0] == warning  # the same line, quieter
    assert publisher.stats().connected is False and publisher.stats().queued == 1
    assert SECRET not in caplog.text


@pytest.mark.broker
def test_events_the_broker_never_acknowledged_are_counted(
    mqtt_broker: Broker, make_publisher: PublisherFactory, subscribe: Callable[..., Subscriber]
) -> None:
    proxy = LinkProxy(mqtt_broker)
    try:
        publisher = make_publisher(proxy, flush_timeout=0.5)
        events_sub = subscribe(mqtt_broker, [publisher.settings.topic("events")])
        publisher.start()
        wait_until(lambda: publisher.stats().connected, what="connect")
        publisher.publish_event(event(1))
        assert numbers([events_sub.get()]) == [1]
        wait_until(lambda: publisher.flush().undelivered == 0, what="the acknowledgement")
        proxy.freeze()  # connected, but neither the events nor the broker's answers get through
        publisher.publish_event(event(2))
        publisher.publish_event(event(3))
        delivery = publisher.flush(wait_for_broker=True)
        assert str(delivery) == f"2 events not delivered to {proxy.url[7:]}: 2 not acknowledged yet"
    finally:
        proxy.close()


@pytest.mark.broker
def test_home_assistant_discovery_is_retained_republished_and_removable(
    mqtt_broker: Broker, make_publisher: PublisherFactory, subscribe: Callable[..., Subscriber]
) -> None:
    publisher = make_publisher(mqtt_broker)
    settings = publisher.settings
    publisher.start()
    wait_until(lambda: publisher.stats().connected, what="connect")
    watcher = subscribe(mqtt_broker, [f"{settings.discovery_prefix}/#"])
    first = watcher.collect(lambda got: len(got) >= 3)
    # The watcher may have caught them live (retain flag off); a subscriber that comes later gets
    # them only because the broker retained them.
    retained = subscribe(mqtt_broker, [f"{settings.discovery_prefix}/#"]).collect(lambda got: len(got) >= 3)
    assert all(m.retain for m in retained) and {m.topic for m in retained} == {m.topic for m in first}
    configs = {m.topic: json.loads(m.payload) for m in first}
    assert configs == discovery_configs(settings, LABELS, MODEL)
    assert set(configs) == set(discovery_topics(settings))
    watcher.client.publish(f"{settings.discovery_prefix}/status", "online")  # Home Assistant restarted
    again = watcher.collect(lambda got: len([m for m in got if "/config" in m.topic]) >= 3)
    assert {m.topic for m in again if "/config" in m.topic} == set(configs)

    publisher.close()
    assert remove_discovery(settings) == discovery_topics(settings)
    cleared = watcher.collect(lambda got: len([m for m in got if m.payload == b""]) >= 3)
    assert {m.topic for m in cleared if m.payload == b""} == set(configs)
    late = subscribe(mqtt_broker, [f"{settings.discovery_prefix}/#"])  # nothing retained is left
    assert [m for m in late.quiet(0.5) if m.payload] == []


def test_remove_discovery_names_an_unreachable_broker() -> None:
    settings = MqttSettings(url=f"mqtt://127.0.0.1:{free_port()}", device_id="kitchen")
    with pytest.raises(PublishError, match=r"cannot reach the MQTT broker 127\.0\.0\.1:\d+"):
        remove_discovery(settings)


@pytest.mark.broker
def test_password_is_never_logged(
    mqtt_broker: Broker, make_publisher: PublisherFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = mqtt_broker.url.replace("mqtt://", "mqtt://emocam@")
    publisher = make_publisher(url, password=SECRET, protocol=mqtt_broker.protocols[-1])
    publisher.start()
    wait_until(lambda: publisher.stats().connected, what="connect with a password")
    publisher.publish_event(event(1))
    publisher.close()
    assert "paho: Sending CONNECT" in caplog.text  # paho's debug log was captured
    assert SECRET not in caplog.text
