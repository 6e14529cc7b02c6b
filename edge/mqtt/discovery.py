"""Home Assistant MQTT discovery: one device per camera, its entities, and their removal.

The configs are retained under ``<discovery_prefix>/<component>/emocam_<device_id>/<object>/config``
(docs/mqtt.md, "Home Assistant"); the publisher sends them on every connect and again when Home
Assistant announces ``online``. An empty retained config deletes an entity, which is what
``emocam remove-discovery`` sends.
"""

from __future__ import annotations

import re
import ssl
import time
from collections.abc import Sequence

from emocam import __version__
from emocam.edge.errors import PublishError
from emocam.edge.mqtt.client import make_client
from emocam.edge.mqtt.publishing import Payload
from emocam.edge.mqtt.settings import MqttSettings


def _node_id(settings: MqttSettings) -> str:
    """The Home Assistant object id of this camera: ``emocam_<device_id>``, ``.`` becoming ``_``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"emocam_{settings.device_id}")


# (component, object id) of every entity; their config topics are what remove-discovery clears.
_ENTITIES = (("sensor", "emotion"), ("sensor", "faces"), ("event", "emotion"))


def discovery_topics(settings: MqttSettings) -> list[str]:
    """The retained config topics of this camera's Home Assistant entities."""
    node = _node_id(settings)
    return [f"{settings.discovery_prefix}/{component}/{node}/{object_id}/config" for component, object_id in _ENTITIES]


def discovery_configs(settings: MqttSettings, labels: Sequence[str], model_version: str) -> dict[str, Payload]:
    """Home Assistant MQTT discovery: topic -> retained config, one device per camera with
    the dominant emotion (a sensor), the faces in view (a sensor) and emotion changes (an event).

    Both sensors read the retained state topic, so they are right the moment Home Assistant
    subscribes. The emotion sensor is an ``enum`` (its labels plus ``none``), with the largest
    face's confidence and scores and the face count as attributes. The event entity fires on
    every event, with the new emotion as ``event_type`` and ``left`` when a face leaves.
    """
    node = _node_id(settings)
    availability = [
        {
            "topic": settings.topic("availability"),
            # ``stopped`` (a clean exit) is as unavailable as ``offline`` to Home Assistant.
            "value_template": "{{ 'online' if value == 'online' else 'offline' }}",
        }
    ]
    common: Payload = {
        "availability": availability,
        "device": {
            "identifiers": [node],
            "name": f"emocam {settings.device_id}",
            "manufacturer": "emocam",
            "model": "emotion camera",
            "sw_version": f"{__version__} (model {model_version})",
        },
        "origin": {"name": "emocam", "sw_version": __version__},
    }
    state = settings.topic("state")
    emotion = {
        "name": "Emotion",
        "unique_id": f"{node}_emotion",
        "state_topic": state,
        "value_template": "{{ value_json.emotion or 'none' }}",
        "device_class": "enum",
        "options": [*labels, "none"],
        "json_attributes_topic": state,
        "json_attributes_template": (
            "{{ {'faces': value_json.count, 'confidence': value_json.confidence, "
            "'scores': value_json.scores} | to_json }}"
        ),
        "icon": "mdi:emoticon-outline",
        **common,
    }
    faces = {
        "name": "Faces",
        "unique_id": f"{node}_faces",
        "state_topic": state,
        "value_template": "{{ value_json.count }}",
        "state_class": "measurement",
        "unit_of_measurement": "faces",
        "icon": "mdi:account-multiple",
        **common,
    }
    event = {
        "name": "Emotion event",
        "unique_id": f"{node}_emotion_event",
        "state_topic": settings.topic("events"),
        "event_types": [*labels, "left"],
        "value_template": (
            "{{ {'event_type': 'left' if value_json.type == 'left' else value_json.emotion, "
            "'face': value_json.face, 'confidence': value_json.confidence, "
            "'change': value_json.type} | to_json }}"
        ),
        **common,
    }
    return dict(zip(discovery_topics(settings), (emotion, faces, event), strict=True))


def remove_discovery(settings: MqttSettings, timeout: float = 10.0) -> list[str]:
    """Delete this camera's Home Assistant entities: an empty retained config removes one.

    Connects, clears every config topic, waits for the broker to acknowledge, disconnects.
    Returns the topics cleared; PublishError if the broker cannot be reached in ``timeout``.
    """
    client = make_client(settings, f"{settings.effective_client_id}-remove")
    broker = settings.broker
    try:
        client.connect(broker.host, broker.port, keepalive=settings.keepalive)
    except (OSError, ssl.SSLError) as exc:
        raise PublishError(f"cannot reach the MQTT broker {broker.host}:{broker.port}: {exc}") from exc
    client.loop_start()
    try:
        topics = discovery_topics(settings)
        sent = [client.publish(topic, b"", qos=1, retain=True) for topic in topics]
        deadline = time.monotonic() + timeout
        for info in sent:
            try:
                info.wait_for_publish(timeout=max(0.1, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                pass  # not connected: reported below like a timeout
            if not info.is_published():
                raise PublishError(
                    f"the MQTT broker {broker.host}:{broker.port} did not acknowledge the removal within "
                    f"{timeout:.0f} s; check that it is up and that the credentials may write "
                    f"{settings.discovery_prefix}/#"
                )
        return topics
    finally:
        client.disconnect()
        client.loop_stop()
