"""Where events go: the Publisher protocol, the no-broker stdout publisher, and MQTT settings.

The paho adapter lives in ``emocam.edge.mqtt_publisher``; its settings live here so that config parsing
and ``check-config`` never import paho. Every publisher method returns at once: the frame loop
never waits on a network or a disk.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TextIO, runtime_checkable
from urllib.parse import urlsplit

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


# A device id becomes a topic level and a Home Assistant object id: keep it to plain characters.
_DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DEVICE_ID_RULE = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"


def is_valid_device_id(value: object) -> bool:
    """Whether ``value`` can be a topic level and a Home Assistant object id (``DEVICE_ID_RULE``)."""
    return isinstance(value, str) and _DEVICE_ID.match(value) is not None

_SCHEMES = {"mqtt": (False, 1883), "mqtts": (True, 8883)}
MqttProtocol = Literal["3.1.1", "5"]


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """A parsed ``mqtt://[user@]host[:port]`` or ``mqtts://...`` URL."""

    host: str
    port: int
    tls: bool
    username: str | None = None


def parse_broker_url(url: str) -> BrokerAddress:
    """Parse and check a broker URL; ValueError naming the URL and the accepted form otherwise."""
    form = "expected mqtt://[user@]host[:port] or mqtts://[user@]host[:port]"
    if not isinstance(url, str) or not url:
        raise ValueError(f"broker url {url!r} is empty; {form}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"broker url {url!r} is malformed ({exc}); {form}") from exc
    if parts.scheme not in _SCHEMES:
        raise ValueError(f"broker url {url!r} has scheme {parts.scheme!r}; {form}")
    if parts.password is not None:
        # Never from the command line or a config file: it would end up in `ps`, logs and backups.
        raise ValueError(
            f"broker url for host {parts.hostname!r} contains a password; remove it and set the "
            "password through the environment or a systemd credential"
        )
    if not parts.hostname:
        raise ValueError(f"broker url {url!r} has no host; {form}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"broker url {url!r} has a path, query or fragment; {form}")
    tls, default_port = _SCHEMES[parts.scheme]
    return BrokerAddress(
        host=parts.hostname,
        port=port if port is not None else default_port,
        tls=tls,
        username=parts.username or None,
    )


def _check_topic_prefix(name: str, value: str) -> None:
    if not isinstance(value, str) or not value or value.startswith("/") or value.endswith("/"):
        raise ValueError(f"{name}={value!r} must be a non-empty topic like 'emocam' or 'home/emocam'")
    if any(ch in value for ch in "+#\0") or "//" in value:
        raise ValueError(f"{name}={value!r} must not contain '+', '#', NUL or empty levels")


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """Everything the MQTT publisher needs; checked when built (ValueError names the field)."""

    url: str  # mqtt://[user@]host[:port] or mqtts://...
    device_id: str  # topic level <prefix>/<device_id>/...; letters, digits, '.', '_', '-'
    password: str | None = field(default=None, repr=False)  # from env or systemd credential only
    topic_prefix: str = "emocam"
    protocol: MqttProtocol = "5"
    qos: int = 1
    keepalive: int = 30  # seconds; the broker sends the last will after 1.5x this without traffic
    client_id: str | None = None  # default emocam-<device_id>; must be unique on the broker
    ca_file: str | None = None  # mqtts: CA bundle; None uses the system's
    cert_file: str | None = None  # mqtts: client certificate (with key_file)
    key_file: str | None = None
    tls_insecure: bool = False  # skip the host name check (self-signed test brokers only)
    max_queued: int = 1000  # events kept while offline; the oldest are dropped beyond this
    stats_interval: float = 30.0  # seconds between stats messages (the daemon's clock)
    flush_timeout: float = 10.0  # seconds the end of a file waits for the broker to take the last events
    ha_discovery: bool = True  # publish Home Assistant discovery configs
    discovery_prefix: str = "homeassistant"

    def __post_init__(self) -> None:
        address = parse_broker_url(self.url)
        if not is_valid_device_id(self.device_id):
            raise ValueError(f"device_id={self.device_id!r} must be {DEVICE_ID_RULE}")
        _check_topic_prefix("topic_prefix", self.topic_prefix)
        _check_topic_prefix("discovery_prefix", self.discovery_prefix)
        if self.protocol not in ("3.1.1", "5"):
            raise ValueError(f"protocol={self.protocol!r} must be '3.1.1' or '5'")
        if self.qos not in (0, 1, 2) or isinstance(self.qos, bool):
            raise ValueError(f"qos={self.qos!r} must be 0, 1 or 2")
        if not isinstance(self.keepalive, int) or isinstance(self.keepalive, bool) or not 1 <= self.keepalive <= 65535:
            # 0 would switch keepalive off, and with it the broker's detection of a dead device.
            raise ValueError(f"keepalive={self.keepalive!r} must be whole seconds in 1..65535")
        if not isinstance(self.max_queued, int) or isinstance(self.max_queued, bool) or self.max_queued < 1:
            raise ValueError(f"max_queued={self.max_queued!r} must be an integer >= 1")
        if not isinstance(self.stats_interval, (int, float)) or not self.stats_interval > 0:
            raise ValueError(f"stats_interval={self.stats_interval!r} must be a number of seconds > 0")
        flush = self.flush_timeout
        if not isinstance(flush, (int, float)) or isinstance(flush, bool) or not 0 <= flush <= 3600:
            raise ValueError(f"flush_timeout={flush!r} must be a number of seconds in 0..3600")
        if self.client_id is not None and not (isinstance(self.client_id, str) and 0 < len(self.client_id) <= 128):
            raise ValueError(f"client_id={self.client_id!r} must be 1-128 characters")
        tls_files = {"ca_file": self.ca_file, "cert_file": self.cert_file, "key_file": self.key_file}
        if not address.tls and (any(tls_files.values()) or self.tls_insecure):
            used = [name for name, value in tls_files.items() if value] or ["tls_insecure"]
            raise ValueError(f"{', '.join(used)} set but url {self.url!r} is not mqtts://; use mqtts:// for TLS")
        if self.key_file and not self.cert_file:
            raise ValueError("key_file is set without cert_file; a client certificate needs both")
        if self.password is not None and address.username is None and self.protocol == "3.1.1":
            raise ValueError(
                f"a password is set but url {self.url!r} names no user; MQTT 3.1.1 needs "
                "mqtt://user@host for a password"
            )

    @property
    def broker(self) -> BrokerAddress:
        return parse_broker_url(self.url)

    @property
    def effective_client_id(self) -> str:
        return self.client_id or f"emocam-{self.device_id}"

    def topic(self, name: str) -> str:
        """``availability``, ``events``, ``state`` or ``stats`` -> ``<prefix>/<device_id>/<name>``."""
        return f"{self.topic_prefix}/{self.device_id}/{name}"
