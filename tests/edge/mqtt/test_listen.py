"""``emocam listen`` against a real broker and a real daemon, run as the user runs them."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from emocam.edge.capture.factory import SAMPLE_CLIP
from emocam.edge.payloads import MAX_PAYLOAD_BYTES
from emocam.edge.vision.model_info import load_model_info
from tests.edge.conftest import REPO, Broker, assert_exact_event, clean_env, emocam, event_bytes, wait_until

pytestmark = pytest.mark.broker

TIMEOUT = 60.0
LABELS = load_model_info(REPO / "edge" / "models" / "emocam-fer6.tflite").labels
EVENT_LINE = re.compile(
    r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}  (\S+)  face (\d+)  (\w+) (0\.\d\d|1\.00)  (appeared|left|changed from \w+)$"
)


def run_daemon(broker: Broker, device: str, tmp_path: Path) -> None:
    config = tmp_path / "emocam.toml"
    config.write_text(f'[mqtt]\nprotocol = "{broker.protocols[-1]}"\n')
    result = emocam("run", "--config", str(config), "--source", str(SAMPLE_CLIP), "--no-realtime",
                    "--broker", broker.url, "--device-id", device)
    assert result.returncode == 0, result.stderr


def test_readable_and_json_lines_from_a_running_daemon(mqtt_broker: Broker, unique_id: str, tmp_path: Path,
                                                       listen: Any) -> None:
    readable = listen("--broker", mqtt_broker.url, "--device", unique_id)
    raw = listen("--broker", mqtt_broker.url, "--device", unique_id, "--json")
    readable.wait_for_stderr("connected to MQTT broker")
    raw.wait_for_stderr("connected to MQTT broker")
    run_daemon(mqtt_broker, unique_id, tmp_path)

    lines = readable.wait_for_lines(4)  # online, appeared, left, stopped
    assert lines[0].endswith(f"  {unique_id}  is online") and lines[-1].endswith(f"  {unique_id}  is stopped")
    matches = [EVENT_LINE.match(line) for line in lines[1:-1]]
    assert all(matches), lines
    assert [(m[1], m[2], m[5]) for m in matches if m] == [(unique_id, "1", "appeared"), (unique_id, "1", "left")]
    assert all(m[3] in LABELS for m in matches if m)

    events = [json.loads(line) for line in raw.wait_for_lines(2)]
    for event in events:
        assert_exact_event(event, LABELS)
    assert [e["type"] for e in events] == ["appeared", "left"]
    assert readable.interrupt() == 0 and raw.interrupt() == 0
    assert len(raw.lines) == 2  # --json keeps stdout to event JSON only


@pytest.mark.broker
def test_listen_piped_into_head_stops_with_exit_0(mqtt_broker: Broker, unique_id: str, tmp_path: Path) -> None:
    # head leaves after the first line ("is online"); the next line listen writes meets the closed
    # pipe: a clean stop, as `emocam run | head` is, not a BrokenPipeError traceback.
    command = (f'"{sys.executable}" -m edge listen --broker {mqtt_broker.url} --device {unique_id} | head -n 1; '
               'exit "${PIPESTATUS[0]}"')
    process = subprocess.Popen(["bash", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=REPO, env=clean_env())
    assert process.stderr is not None
    seen = []
    try:
        while not any("subscribed to" in line for line in seen):  # listen prints nothing before an event
            line = process.stderr.readline()
            assert line, f"listen ended before subscribing: {seen}"
            seen.append(line)
        run_daemon(mqtt_broker, unique_id, tmp_path)
        stdout, rest = process.communicate(timeout=60)
    finally:
        process.kill()
    stderr = "".join(seen) + rest
    assert process.returncode == 0, stderr
    assert stdout.strip().endswith(f"{unique_id}  is online")
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr
    assert "standard output was closed by its reader; stopped" in stderr


def test_summary_counts_emotions_per_device_and_window(mqtt_broker: Broker, unique_id: str, tmp_path: Path,
                                                        subscribe: Any, listen: Any) -> None:
    summary = listen("--broker", mqtt_broker.url, "--summary", "2", "--json")
    summary.wait_for_stderr("connected to MQTT broker")
    run_daemon(mqtt_broker, unique_id, tmp_path)
    other = f"{unique_id}-b"
    sender = subscribe(mqtt_broker, [f"sender/{unique_id}"])
    template = {"schema": 1, "ts": "2026-11-05T12:00:01.250Z", "device": other, "face": 1, "confidence": 0.7,
                "box": {"x": 0.1, "y": 0.1, "w": 0.2, "h": 0.2}, "model": "1.0"}
    sequence = (("appeared", "sad", None), ("changed", "happy", "sad"), ("changed", "sad", "happy"))
    for kind, emotion, previous in sequence:
        scores = {label: (0.7 if label == emotion else 0.3 / (len(LABELS) - 1)) for label in LABELS}
        payload = {**template, "type": kind, "emotion": emotion, "scores": scores}
        if previous:
            payload["previous"] = previous
        sender.client.publish(f"emocam/{other}/events", json.dumps(payload), qos=1)

    def rows() -> dict[str, dict[str, Any]]:
        parsed = [json.loads(line) for line in summary.lines]
        return {row["device"]: row for row in parsed if row["device"] in (unique_id, other)}

    wait_until(lambda: len(rows()) == 2, timeout=TIMEOUT, what="a summary row for both devices")
    assert summary.interrupt() == 0
    daemon_row, other_row = rows()[unique_id], rows()[other]
    assert daemon_row["events"] == 1  # appeared counts; left only repeats it
    (emotion,) = daemon_row["emotions"]
    assert emotion in LABELS and daemon_row["emotions"][emotion] == {"count": 1, "share": 1.0}
    assert other_row["events"] == 3
    assert other_row["emotions"] == {"sad": {"count": 2, "share": 0.6667}, "happy": {"count": 1, "share": 0.3333}}
    assert other_row["start"] < other_row["end"]


def test_malformed_payloads_are_reported_and_skipped(mqtt_broker: Broker, unique_id: str, subscribe: Any,
                                                     listen: Any) -> None:
    watcher = listen("--broker", mqtt_broker.url, "--json")
    watcher.wait_for_stderr("connected to MQTT broker")
    sender = subscribe(mqtt_broker, [f"sender/{unique_id}"])
    topic = f"emocam/{unique_id}/events"
    good = {"schema": 1, "type": "appeared", "ts": "2026-11-05T12:00:01.250Z", "device": unique_id, "face": 1,
            "emotion": "happy", "confidence": 0.6, "scores": {"happy": 0.6, "sad": 0.4},
            "box": {"x": 0.1, "y": 0.1, "w": 0.2, "h": 0.2}, "model": "1.0"}
    bad = [
        ("not JSON", b"{oops"),
        ("face='1'", json.dumps({**good, "face": "1"}).encode()),
        ("confidence=", json.dumps({**good, "confidence": "high"}).encode()),
        (f"over the {MAX_PAYLOAD_BYTES}-byte limit", b" " * (MAX_PAYLOAD_BYTES + 10)),
        ("schema 3 is newer", json.dumps({**good, "schema": 3}).encode()),
        ("a JSON list", b"[1, 2, 3]"),
        ("not UTF-8", b"\xff\xfe\x00"),
    ]
    for _, payload in bad:
        sender.client.publish(topic, payload, qos=1)
    sender.client.publish(topic, json.dumps({**good, "from_a_newer_emocam": True}), qos=1)  # tolerated
    (line,) = watcher.wait_for_lines(1)
    assert json.loads(line)["from_a_newer_emocam"] is True
    watcher.wait_for_stderr("skipped a message", count=len(bad))
    for reason, _ in bad:
        assert reason in watcher.stderr, reason
    assert watcher.interrupt() == 0
    assert f"skipped {len(bad)} malformed messages" in watcher.stderr


def test_reconnects_after_the_broker_restarts_and_filters_devices(own_broker: Broker, unique_id: str,
                                                                  subscribe: Any, listen: Any) -> None:
    watcher = listen("--broker", own_broker.url, "--device", unique_id, "--device", f"{unique_id}-2")
    watcher.wait_for_stderr("connected to MQTT broker")
    own_broker.stop()
    watcher.wait_for_stderr("lost the MQTT broker")
    own_broker.start()
    watcher.wait_for_stderr("reconnected to MQTT broker")
    sender = subscribe(own_broker, [f"sender/{unique_id}"])
    for device in (f"{unique_id}-other", unique_id, f"{unique_id}-2"):
        sender.client.publish(f"emocam/{device}/availability", "online", qos=1)
    lines = watcher.wait_for_lines(2)
    time.sleep(0.3)  # a third line, if the filter failed, would have arrived by now
    assert sorted(line.split("  ")[1] for line in watcher.lines) == sorted([unique_id, f"{unique_id}-2"])
    assert all(line.endswith("is online") for line in lines)
    assert watcher.interrupt() == 0


def test_an_unreachable_broker_is_reported_once_per_outage(tmp_path: Path, listen: Any) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    watcher = listen("--broker", f"mqtt://127.0.0.1:{port}", env={"EMOCAM_LOG_LEVEL": "debug"})
    # Each retry is logged at debug level: wait for the third, then count the warnings.
    watcher.wait_for_stderr("connection refused; retrying", count=3)
    assert watcher.stderr.count("WARNING") == 1, watcher.stderr
    assert (f"WARNING emocam.listen: cannot connect to MQTT broker 127.0.0.1:{port}: connection refused; "
            "retrying until it is back") in watcher.stderr
    assert watcher.interrupt() == 0


def test_the_subscriber_side_loads_no_camera_or_model_stack(tmp_path: Path) -> None:
    config = tmp_path / "emocam.toml"
    config.write_text('[mqtt]\nurl = "mqtt://localhost"\n')
    script = (
        "import json, sys\n"
        "import emocam.edge.service.cli, emocam.edge.mqtt.listen, emocam.edge.mqtt.discovery\n"
        "from pathlib import Path\n"
        "from emocam.edge.service.config import load_config\n"
        f"settings = load_config(Path({str(config)!r}), {{}}, {{}}).mqtt_settings()\n"
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=TIMEOUT,
                            env=clean_env(), cwd=REPO)
    assert result.returncode == 0, result.stderr
    roots = set(json.loads(result.stdout))
    assert "paho" in roots and not {"cv2", "ai_edge_litert", "tflite_runtime"} & roots


def test_bad_arguments_exit_2_with_the_value_named(tmp_path: Path) -> None:
    result = emocam("listen", "--device", "a/b")
    assert result.returncode == 2 and "--device 'a/b'" in result.stderr and "Traceback" not in result.stderr
    result = emocam("listen", "--broker", "http://host")
    assert result.returncode == 2 and "http://host" in result.stderr
    for group in ("a/b", "fleet+", "#", ""):
        result = emocam("listen", "--share", group)
        assert result.returncode == 2 and f"--share {group!r}: a group name is" in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_a_burst_beyond_mosquittos_default_queue_arrives_whole(mqtt_broker: Broker, unique_id: str,
                                                               subscribe: Any, listen: Any) -> None:
    """Mosquitto keeps 20 messages in flight and 1,000 queued for a client that does not announce
    a Receive Maximum, and drops the rest: a listener stopped while 3,000 events arrive would get
    1,020 of them. Over MQTT 5 ``emocam listen`` announces 65535, so it gets all 3,000."""
    if "5" not in mqtt_broker.protocols:
        pytest.skip("needs an MQTT 5 broker (mosquitto)")
    count = 3000
    watcher = listen("--broker", mqtt_broker.url, "--device", unique_id, "--json")
    watcher.wait_for_stderr("subscribed to")
    sender = subscribe(mqtt_broker, [f"sender/{unique_id}"])
    watcher.process.send_signal(signal.SIGSTOP)  # a listener that falls far behind, for a while
    try:
        infos = [sender.client.publish(f"emocam/{unique_id}/events", event_bytes(unique_id, seq), qos=1)
                 for seq in range(1, count + 1)]
        for info in infos:
            info.wait_for_publish(TIMEOUT)
    finally:
        watcher.process.send_signal(signal.SIGCONT)
    lines = watcher.wait_for_lines(count)
    assert [json.loads(line)["seq"] for line in lines] == list(range(1, count + 1))
    assert watcher.interrupt() == 0
    assert "WARNING" not in watcher.stderr, watcher.stderr


def test_gaps_in_seq_are_reported_and_repeats_and_restarts_are_not(mqtt_broker: Broker, unique_id: str,
                                                                     subscribe: Any, listen: Any) -> None:
    watcher = listen("--broker", mqtt_broker.url, "--device", unique_id, "--json")
    watcher.wait_for_stderr("subscribed to")
    sender = subscribe(mqtt_broker, [f"sender/{unique_id}"])
    sent = [1, 2, 5, 6, 6, 1, 2, None]  # 3 and 4 lost; 6 delivered twice; a restart; an emocam without seq
    for seq in sent:
        sender.client.publish(f"emocam/{unique_id}/events", event_bytes(unique_id, seq), qos=1)
    assert len(watcher.wait_for_lines(len(sent))) == len(sent)  # every event is printed, repeats too
    watcher.wait_for_stderr(f"missed 2 events of {unique_id} (seq 3 to 4)")
    assert watcher.interrupt() == 0
    assert watcher.stderr.count("WARNING") == 1, watcher.stderr  # the gap; the restart and the repeat are none
    assert "stopped; missed 2 events of 1 device (gaps in their seq); 1 event arrived twice" in watcher.stderr


def test_readable_formats() -> None:
    from datetime import UTC, datetime

    from emocam.edge.mqtt.listen import SummaryWindow, format_event, format_summary
    from emocam.edge.payloads import parse_event

    payload = {"schema": 1, "type": "changed", "ts": "2026-11-05T12:00:01.250Z", "device": "hall", "face": 4,
               "emotion": "sad", "confidence": 0.666, "scores": {"happy": 0.334, "sad": 0.666},
               "box": {"x": 0.1, "y": 0.1, "w": 0.2, "h": 0.2}, "model": "1.0", "previous": "happy"}
    line = format_event(parse_event(payload))
    local = datetime(2026, 11, 5, 12, 0, 1, tzinfo=UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    assert line == f"{local}  hall  face 4  sad 0.67  changed from happy"
    window = SummaryWindow(start=1_700_000_000.0)
    for kind, emotion in (("appeared", "sad"), ("changed", "happy"), ("left", "happy"), ("changed", "sad")):
        event = {**payload, "type": kind, "emotion": emotion, "confidence": 0.666 if emotion == "sad" else 0.334}
        event.pop("previous") if kind != "changed" else event.update(previous="happy" if emotion == "sad" else "sad")
        window.add(parse_event(event))
    (row,) = window.rows(end=1_700_000_060.0)
    assert row["events"] == 3
    assert row["emotions"] == {"sad": {"count": 2, "share": 0.6667}, "happy": {"count": 1, "share": 0.3333}}
    assert format_summary(row).endswith("  hall  3 events: sad 2 (67%), happy 1 (33%)")
