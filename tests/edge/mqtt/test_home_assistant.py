"""Home Assistant discovery as Home Assistant meets it: configs from a running daemon, checked
against the fields its MQTT integration requires, with their templates rendered on what the
daemon really publishes; and ``emocam remove-discovery`` deleting the entities again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from emocam.edge.capture.factory import SAMPLE_CLIP
from emocam.edge.mqtt.discovery import discovery_configs
from emocam.edge.mqtt.settings import MqttSettings
from emocam.edge.mqtt.wire import FaceInView, state_payload
from emocam.edge.vision.model_info import load_model_info
from tests.edge.conftest import REPO, Broker, emocam, free_port

LABELS = load_model_info(REPO / "edge" / "models" / "emocam-fer6.tflite").labels
MODEL = "1.0.0"

jinja2 = pytest.importorskip("jinja2")
_ENV = jinja2.Environment()
_ENV.filters["to_json"] = json.dumps  # Home Assistant's filter of that name


def render(template: str, payload: bytes | str | dict[str, Any]) -> str:
    """How Home Assistant evaluates a template: ``value`` is the text, ``value_json`` its JSON."""
    if isinstance(payload, bytes):
        text = payload.decode()
    else:
        text = payload if isinstance(payload, str) else json.dumps(payload)
    try:
        value_json = json.loads(text)
    except ValueError:
        value_json = None
    return str(_ENV.from_string(template).render(value=text, value_json=value_json))


# What Home Assistant's MQTT integration requires of each discovered platform (its docs: mqtt
# sensor and mqtt event), and what an entry in its device registry needs.
_HA_REQUIRED = {"sensor": {"state_topic"}, "event": {"state_topic", "event_types"}}


def check_home_assistant_config(component: str, config: dict[str, Any]) -> None:
    missing = _HA_REQUIRED[component] - set(config)
    assert not missing, f"{component} config lacks {missing}"
    assert config["unique_id"] and config["device"]["identifiers"], "the device registry needs both"
    assert all("topic" in a for a in config["availability"])
    assert config["origin"]["name"]
    if config.get("device_class") == "enum":  # Home Assistant refuses units and state classes on enums
        assert config["options"] and "unit_of_measurement" not in config and "state_class" not in config
    if config.get("state_class") == "measurement":
        assert "unit_of_measurement" in config


def test_templates_render_like_home_assistant() -> None:
    settings = MqttSettings(url="mqtt://host", device_id="kitchen")
    configs = discovery_configs(settings, LABELS, MODEL)
    emotion, faces, event_entity = configs.values()
    for topic, config in configs.items():
        check_home_assistant_config(topic.split("/")[1], config)
    scores = dict(zip(LABELS, (0.02, 0.03, 0.8, 0.1, 0.03, 0.02), strict=True))
    state = state_payload([FaceInView(1, "happy", 0.8, (0.1, 0.1, 0.2, 0.2), scores)], "kitchen", MODEL, 0.0)
    assert render(emotion["value_template"], state) == "happy"
    assert render(emotion["value_template"], state_payload([], "kitchen", MODEL, 0.0)) == "none"
    attributes = json.loads(render(emotion["json_attributes_template"], state))
    assert attributes == {"faces": 1, "confidence": 0.8, "scores": scores}
    assert render(faces["value_template"], state) == "1"
    appeared = {"type": "appeared", "emotion": "sad", "face": 3, "confidence": 0.7}
    assert json.loads(render(event_entity["value_template"], appeared)) == {
        "event_type": "sad", "face": 3, "confidence": 0.7, "change": "appeared"}
    assert json.loads(render(event_entity["value_template"], {**appeared, "type": "left"}))["event_type"] == "left"
    availability = emotion["availability"][0]["value_template"]
    assert [render(availability, v) for v in ("online", "offline", "stopped")] == ["online", "offline", "offline"]


@pytest.mark.broker
def test_a_running_daemon_publishes_configs_whose_topics_are_fed(
    mqtt_broker: Broker, subscribe: Any, unique_id: str, tmp_path: Path
) -> None:
    config_filter = f"homeassistant/+/emocam_{unique_id}/+/config"
    watcher = subscribe(mqtt_broker, [config_filter, f"emocam/{unique_id}/#"])
    config_file = tmp_path / "emocam.toml"
    config_file.write_text(f'[mqtt]\nprotocol = "{mqtt_broker.protocols[-1]}"\n')
    result = emocam("run", "--config", str(config_file), "--source", str(SAMPLE_CLIP), "--no-realtime",
                    "--broker", mqtt_broker.url, "--device-id", unique_id)
    assert result.returncode == 0, result.stderr
    seen = watcher.collect(lambda got: any(m.text == "stopped" for m in got))
    configs = {m.topic: json.loads(m.payload) for m in seen if m.topic.endswith("/config")}
    components = sorted(t.split("/")[1] + "/" + t.split("/")[3] for t in configs)
    assert components == ["event/emotion", "sensor/emotion", "sensor/faces"]
    assert len({c["unique_id"] for c in configs.values()}) == 3
    assert len({json.dumps(c["device"], sort_keys=True) for c in configs.values()}) == 1  # one device per camera

    def fed(topic: str) -> list[bytes]:
        return [m.payload for m in seen if m.topic == topic]

    for topic, config in configs.items():
        component = topic.split("/")[1]
        check_home_assistant_config(component, config)
        values = fed(config["state_topic"])
        assert values, f"nothing published on {config['state_topic']}, which {topic} reads"
        rendered = [render(config["value_template"], v) for v in values]
        if component == "event":
            assert [json.loads(r)["event_type"] for r in rendered][-1] == "left"
            assert all(json.loads(r)["event_type"] in config["event_types"] for r in rendered)
        elif config.get("device_class") == "enum":
            assert rendered[-1] == "none" and all(r in config["options"] for r in rendered), rendered
            template, topic = config["json_attributes_template"], config["json_attributes_topic"]
            attributes = [json.loads(render(template, v)) for v in fed(topic)]
            assert set(attributes[0]["scores"]) == set(LABELS) and attributes[0]["faces"] == 1
        else:
            assert [int(r) for r in rendered] == [1, 0]  # the astronaut, then nobody
        availability = [render(a["value_template"], v) for a in config["availability"] for v in fed(a["topic"])]
        assert availability[0] == "online" and availability[-1] == "offline"  # 'stopped' reads as offline

    kept = subscribe(mqtt_broker, [config_filter]).collect(lambda got: len(got) >= 3)
    # Home Assistant restarting sees them.
    assert all(m.retain for m in kept) and {m.topic for m in kept} == set(configs)

    removed = emocam("remove-discovery", "--broker", mqtt_broker.url, "--device-id", unique_id)
    assert removed.returncode == 0, removed.stderr
    cleared = watcher.collect(lambda got: len([m for m in got if m.topic.endswith("/config") and not m.payload]) >= 3)
    assert {m.topic for m in cleared if m.topic.endswith("/config") and not m.payload} == set(configs)
    late = subscribe(mqtt_broker, [config_filter])
    assert [m for m in late.quiet(0.5) if m.payload] == [], "a retained config survived remove-discovery"


def test_remove_discovery_without_a_broker_says_which_one() -> None:
    port = free_port()
    result = emocam("remove-discovery", "--broker", f"mqtt://127.0.0.1:{port}", "--device-id", "kitchen")
    assert result.returncode == 6, result.stderr
    assert f"cannot reach the MQTT broker 127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr
    result = emocam("remove-discovery", "--device-id", "kitchen")
    assert result.returncode == 2 and "--broker" in result.stderr
