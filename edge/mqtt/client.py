"""One way to build a paho-mqtt 2 client from ``MqttSettings``: protocol, credentials, TLS."""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from emocam.edge.errors import PublishError
from emocam.edge.mqtt.settings import MqttSettings


def make_client(settings: MqttSettings, client_id: str) -> mqtt.Client:
    """A paho client for ``settings``: protocol, credentials and TLS (files checked now).

    Shared by the publisher, ``emocam listen`` and ``remove-discovery``; each passes its own
    ``client_id``, because two clients with one id disconnect each other.
    """
    v5 = settings.protocol == "5"
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else True,  # MQTT 5 takes clean_start at connect time instead
    )
    # A bug in a callback must not kill the network thread; paho then reports it via on_log.
    client.suppress_exceptions = True
    if settings.broker.username is not None or settings.password is not None:
        client.username_pw_set(settings.broker.username or "", settings.password)
    if settings.broker.tls:
        _set_tls(client, settings)
    return client


def _set_tls(client: mqtt.Client, s: MqttSettings) -> None:
    s.check_tls_files()
    try:
        client.tls_set(ca_certs=s.ca_file or None, certfile=s.cert_file or None, keyfile=s.key_file or None)
    except (OSError, ssl.SSLError, ValueError) as exc:
        names = ", ".join(f"{n}={getattr(s, n)}" for n in ("ca_file", "cert_file", "key_file") if getattr(s, n))
        raise PublishError(f"TLS setup failed ({names or 'system CA store'}): {exc}") from exc
    if s.tls_insecure:
        client.tls_insecure_set(True)
