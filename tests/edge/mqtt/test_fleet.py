"""A fleet on one real Mosquitto (docs/fleet.md): listeners that split the events of a shared
subscription, the shipped per-camera ACL, and the load generator in bench/ on a small fleet."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from emocam.edge.capture.factory import SAMPLE_CLIP
from tests.edge.conftest import (
    CLI_TIMEOUT,
    REPO,
    START_TIMEOUT,
    Broker,
    _find_broker,
    emocam,
    event_bytes,
    wait_until,
)

pytestmark = pytest.mark.broker

ACL_FILE = REPO / "docs" / "fleet" / "mosquitto-acl.conf"
BRIDGE_FILE = REPO / "docs" / "fleet" / "mosquitto-bridge.conf"
PASSWORDS = {"kitchen": "kitchen-secret", "hall": "hall-secret", "emocam-listener": "listener-secret"}


def need_mosquitto() -> str:
    found = _find_broker()
    if found is None or found[0] != "mosquitto":
        pytest.skip("needs mosquitto (MQTT 5, shared subscriptions, ACLs): apt-get install -y mosquitto")
    return found[1]


class Client:
    """A paho MQTT 5 client that records what it receives and the broker's answer to each publish."""

    def __init__(self, broker: Broker, user: str | None = None, password: str | None = None) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.acks: dict[int, Any] = {}
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self.refused: Any = None
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fleet-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)
        if user is not None:
            self.client.username_pw_set(user, password)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.on_message = lambda c, u, m: self.received.append((m.topic, bytes(m.payload)))
        self.client.on_publish = lambda c, u, mid, reason, props: self.acks.__setitem__(mid, reason)
        self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.loop_start()
        if not self._connected.wait(START_TIMEOUT):
            raise RuntimeError("no CONNACK")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.refused = reason if reason.is_failure else None
        self._connected.set()

    def subscribe(self, topic: str) -> None:
        self._subscribed.clear()
        self.client.subscribe(topic, qos=1)
        assert self._subscribed.wait(START_TIMEOUT), f"no SUBACK for {topic}"

    def publish(self, topic: str, payload: bytes) -> Any:
        """The broker's reason code for this QoS 1 publish (MQTT 5 PUBACK)."""
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(START_TIMEOUT)
        wait_until(lambda: info.mid in self.acks, timeout=START_TIMEOUT, what="a PUBACK")
        return self.acks[info.mid]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clients() -> Iterator[Any]:
    made: list[Client] = []

    def make(broker: Broker, user: str | None = None, password: str | None = None) -> Client:
        client = Client(broker, user, password)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def acl_broker(tmp_path: Path) -> Iterator[Broker]:
    """Mosquitto with no anonymous access, a password per account and the ACL shipped in docs/fleet/."""
    executable = need_mosquitto()
    passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    passwords = tmp_path / "passwords"
    for n, (user, password) in enumerate(PASSWORDS.items()):
        create = ["-c"] if n == 0 else []
        subprocess.run([passwd, *create, "-b", str(passwords), user, password], check=True, capture_output=True)
    broker = Broker(tmp_path, "mosquitto", executable, anonymous=False,
                    config=[f"password_file {passwords}", f"acl_file {ACL_FILE}"])
    broker.start()
    yield broker
    broker.stop()


# ---- shared subscriptions -------------------------------------------------------------------


def test_two_listeners_in_a_share_group_get_each_event_once(mqtt_broker: Broker, unique_id: str,
                                                              clients: Any, listen: Any) -> None:
    need_mosquitto()
    group = f"g{unique_id}"
    members = [listen("--broker", mqtt_broker.url, "--device", unique_id, "--json", "--share", group)
               for _ in range(2)]
    for member in members:
        member.wait_for_stderr("subscribed to $share/")
    camera = clients(mqtt_broker)
    count = 200
    for seq in range(1, count + 1):
        camera.client.publish(f"emocam/{unique_id}/events", event_bytes(unique_id, seq), qos=1)
    wait_until(lambda: sum(len(m.lines) for m in members) >= count, timeout=CLI_TIMEOUT,
               what=f"{count} events between the two listeners")
    assert all(member.interrupt() == 0 for member in members)
    seqs = [[json.loads(line)["seq"] for line in member.lines] for member in members]
    assert sorted(seqs[0] + seqs[1]) == list(range(1, count + 1))  # each event once, none lost
    assert all(len(part) >= count // 10 for part in seqs), [len(part) for part in seqs]  # both took a share
    for member, part in zip(members, seqs, strict=True):
        assert part == sorted(part)  # each listener's part stays in order
        assert "missed" not in member.stderr  # a member sees gaps by design: it must not call them losses


# ---- per-device isolation --------------------------------------------------------------------


def test_a_camera_writes_only_its_own_topics_and_reads_nothing(acl_broker: Broker, clients: Any) -> None:
    listener = clients(acl_broker, "emocam-listener", PASSWORDS["emocam-listener"])
    listener.subscribe("emocam/#")
    kitchen = clients(acl_broker, "kitchen", PASSWORDS["kitchen"])
    kitchen.subscribe("emocam/#")  # accepted, but the ACL lets nothing through to it
    hall = clients(acl_broker, "hall", PASSWORDS["hall"])

    assert not kitchen.publish("emocam/kitchen/events", event_bytes("kitchen", 1)).is_failure
    refused = kitchen.publish("emocam/hall/events", event_bytes("hall", 1))  # posing as the hall camera
    assert refused.is_failure and refused.getName() == "Not authorized"
    assert not kitchen.publish("homeassistant/sensor/emocam_kitchen/emotion/config", b"{}").is_failure
    assert kitchen.publish("homeassistant/sensor/emocam_hall/emotion/config", b"{}").is_failure
    assert not hall.publish("emocam/hall/events", event_bytes("hall", 1)).is_failure

    wait_until(lambda: len(listener.received) >= 2, timeout=START_TIMEOUT, what="the two allowed events")
    assert [(topic, json.loads(payload)["device"]) for topic, payload in listener.received] == [
        ("emocam/kitchen/events", "kitchen"), ("emocam/hall/events", "hall")]  # not the forged one
    assert kitchen.received == []  # neither the hall's event nor its own

    assert clients(acl_broker).refused is not None  # no anonymous clients
    assert clients(acl_broker, "kitchen", "wrong").refused is not None


def test_the_daemon_and_listen_work_under_the_acl(acl_broker: Broker, listen: Any) -> None:
    """Every topic the daemon writes (availability and its will, discovery, events, state, stats)
    is allowed to it; the listener account reads them and the broker's drop counter."""
    url = f"mqtt://emocam-listener@{acl_broker.host}:{acl_broker.port}"
    watcher = listen("--broker", url, "--json", env={"EMOCAM_MQTT_PASSWORD": PASSWORDS["emocam-listener"]})
    watcher.wait_for_stderr("subscribed to")
    result = emocam("run", "--source", str(SAMPLE_CLIP), "--no-realtime", "--broker", f"mqtt://kitchen@{acl_broker.host}:{acl_broker.port}",
                    "--device-id", "kitchen", env={"EMOCAM_MQTT_PASSWORD": PASSWORDS["kitchen"]})
    assert result.returncode == 0, result.stderr
    assert "refused" not in result.stderr and "dropped=0" in result.stderr, result.stderr
    events = [json.loads(line) for line in watcher.wait_for_lines(2)]
    assert [(e["device"], e["type"], e["seq"]) for e in events] == [("kitchen", "appeared", 1), ("kitchen", "left", 2)]
    assert watcher.interrupt() == 0
    assert "refused" not in watcher.stderr and "kitchen is stopped" in watcher.stderr


# ---- a site bridged to the central broker ------------------------------------------------------


def test_a_site_broker_bridges_its_cameras_to_the_central_one(tmp_path: Path, clients: Any, listen: Any) -> None:
    """docs/fleet/mosquitto-bridge.conf as shipped, pointed at a local central broker without TLS."""
    executable = need_mosquitto()
    central = Broker(tmp_path / "central", "mosquitto", executable)
    bridge = []
    for line in BRIDGE_FILE.read_text().splitlines():
        if line.startswith("address "):
            line = f"address {central.host}:{central.port}"
        elif line.startswith(("bridge_cafile", "remote_username", "remote_password")):
            continue  # the central test broker has no TLS and no accounts
        bridge.append(line)
    site = Broker(tmp_path / "site", "mosquitto", executable, config=bridge)
    for broker in (central, site):
        broker.workdir.mkdir()
        broker.start()
    try:
        watcher = listen("--broker", central.url, "--json")
        watcher.wait_for_stderr("subscribed to")
        wait_until(lambda: "1" in [p.decode() for _, p in _retained(clients, central, "emocam-bridge/shop1/state")],
                   timeout=CLI_TIMEOUT, what="the bridge's connected notification on the central broker")
        camera = clients(site)  # a camera of the site: it knows only the site broker
        camera.client.publish("emocam/shopcam/availability", b"online", qos=1, retain=True)
        assert not camera.publish("emocam/shopcam/events", event_bytes("shopcam", 1)).is_failure
        (line,) = watcher.wait_for_lines(1)
        assert json.loads(line)["device"] == "shopcam" and json.loads(line)["seq"] == 1
        watcher.wait_for_stderr("shopcam is online")
        assert watcher.interrupt() == 0
        # Retained on the central broker too: a dashboard that joins later sees the site's camera.
        assert _retained(clients, central, "emocam/shopcam/availability") == [
            ("emocam/shopcam/availability", b"online")]
    finally:
        site.stop()
        central.stop()


def _retained(clients: Any, broker: Broker, topic: str) -> list[tuple[str, bytes]]:
    """What a new subscriber to ``topic`` gets at once (the retained message, if any)."""
    reader = clients(broker)
    reader.subscribe(topic)
    try:
        wait_until(lambda: bool(reader.received), timeout=1.0, what=f"a retained message on {topic}")
    except AssertionError:
        pass
    return list(reader.received)


# ---- the load generator -------------------------------------------------------------------------


def test_the_load_generator_accounts_for_every_event(mqtt_broker: Broker) -> None:
    need_mosquitto()
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "fleet_load.py"), "--cameras", "30", "--events", "5",
         "--listeners", "2", "--share", f"g{uuid.uuid4().hex[:6]}", "--broker", mqtt_broker.url,
         "--drain", "5", "--timeout", "50", "--json"],
        capture_output=True, text=True, timeout=CLI_TIMEOUT, cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert (report["sent"], report["acked"], report["received"], report["lost"], report["duplicates"]) == (
        150, 150, 150, 0, 0)
    assert sum(p["received"] for p in report["per_listener"]) == 150
    assert report["latency_ms"]["p50"] is not None and report["acked_per_s"] > 0
    result = subprocess.run([sys.executable, str(REPO / "bench" / "fleet_load.py"), "--broker", "mqtt://192.0.2.1"],
                            capture_output=True, text=True, timeout=CLI_TIMEOUT, cwd=REPO)
    assert result.returncode != 0 and "not loopback" in result.stderr
