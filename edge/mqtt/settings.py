"""The ``[mqtt]`` section: the broker, the topics and the delivery rules, checked when built.

This one class is what the config file's ``[mqtt]`` table becomes and what the publisher, ``emocam
listen`` and ``remove-discovery`` use directly; it imports no paho, so reading a config stays
cheap. ``url`` empty means no broker: events go to standard output. ``device_id`` and ``password``
are not keys of the table: the config fills them from the top-level ``device_id`` and from the
systemd credential or the environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from emocam.edge.errors import PublishError
from emocam.edge.field_checks import check_choice, check_range, check_whole
from emocam.edge.mqtt.wire import DEVICE_ID_RULE, TopicKind, is_valid_device_id, topic

_SCHEMES = {"mqtt": (False, 1883), "mqtts": (True, 8883)}
MqttProtocol = Literal["3.1.1", "5"]
MQTT_PROTOCOLS: tuple[MqttProtocol, ...] = ("3.1.1", "5")


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
    """The ``[mqtt]`` table; every rule is checked when it is built (ValueError names the field)."""

    url: str = ""  # mqtt://[user@]host[:port] or mqtts://...; empty = JSON lines on stdout
    topic_prefix: str = "emocam"
    protocol: MqttProtocol = "5"  # 5 | 3.1.1
    qos: int = 1
    keepalive: int = 30  # seconds; the broker sends the last will after 1.5x this without traffic
    client_id: str = ""  # empty = emocam-<device_id>; must be unique on the broker
    ca_file: str = ""  # mqtts: CA bundle; empty uses the system's
    cert_file: str = ""  # mqtts: client certificate (with key_file)
    key_file: str = ""
    tls_insecure: bool = False  # skip the host name check (self-signed test brokers only)
    max_queued: int = 1000  # events kept while offline; the oldest are dropped beyond this
    flush_timeout: float = 10.0  # seconds the end of a file waits for the broker to take the last events
    ha_discovery: bool = True  # publish Home Assistant discovery configs
    discovery_prefix: str = "homeassistant"
    device_id: str = ""  # the config's top-level device_id: topic level <prefix>/<device_id>/...
    password: str | None = field(default=None, repr=False)  # from the credential or environment only

    def __post_init__(self) -> None:
        _check_topic_prefix("topic_prefix", self.topic_prefix)
        _check_topic_prefix("discovery_prefix", self.discovery_prefix)
        check_choice("protocol", self.protocol, MQTT_PROTOCOLS)
        check_choice("qos", self.qos, (0, 1, 2))
        if isinstance(self.qos, bool):
            raise ValueError(f"qos={self.qos!r} is not one of 0, 1, 2")
        # 0 would switch keepalive off, and with it the broker's detection of a dead device.
        check_whole("keepalive", self.keepalive, 5, 3600)
        check_whole("max_queued", self.max_queued, 1)
        check_range("flush_timeout", self.flush_timeout, 0, 3600)
        if not isinstance(self.client_id, str) or len(self.client_id) > 128:
            raise ValueError(f"client_id={self.client_id!r} must be at most 128 characters")
        if self.device_id and not is_valid_device_id(self.device_id):
            raise ValueError(f"device_id={self.device_id!r} must be {DEVICE_ID_RULE}")
        if self.url:
            self._check_broker()

    def _check_broker(self) -> None:
        address = parse_broker_url(self.url)
        if not self.device_id:
            raise ValueError(f"device_id is empty; a broker needs it as a topic level ({DEVICE_ID_RULE})")
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

    def topic(self, kind: TopicKind) -> str:
        """``availability``, ``events``, ``state`` or ``stats`` -> ``<prefix>/<device_id>/<kind>``."""
        return topic(self.topic_prefix, self.device_id, kind)

    def check_tls_files(self) -> None:
        """PublishError (exit 6) naming a TLS file that is not there: what the publisher would meet
        at start-up, checked by ``emocam check-config`` too. Their contents are paho's to judge."""
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            if path and not Path(path).is_file():
                raise PublishError(f"{name} {path} does not exist or is not a file; fix the path or unset it")
