"""A file's events that never reach the broker, as a user meets it: ``emocam run`` exits 7 with the count.

The daemon side (the wait at the end of a file, a camera's exit 0) is in test_daemon.py; the
counting in the publisher is in test_mqtt.py.
"""

from __future__ import annotations

from pathlib import Path

from emocam.edge.capture.factory import SAMPLE_CLIP
from emocam.edge.errors import DeliveryError
from tests.edge.conftest import emocam, free_port


def test_a_file_run_against_an_unreachable_broker_exits_7_with_the_count(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    wait = 1.5
    config = tmp_path / "emocam.toml"
    config.write_text(f"[mqtt]\nflush_timeout = {wait}\n")  # the key a user sets; 10 s by default
    result = emocam("run", "--config", str(config), "--source", str(SAMPLE_CLIP), "--no-realtime",
                    "--broker", f"mqtt://127.0.0.1:{port}", "--device-id", "file-run")
    lines = result.stderr.splitlines()
    assert result.returncode == DeliveryError.exit_code == 7, result.stderr
    assert (f"WARNING emocam.edge.mqtt.publisher: cannot connect to MQTT broker 127.0.0.1:{port}: connection refused; "
            "retrying with back-off") in lines, result.stderr
    assert lines[-1] == (f"ERROR emocam: 2 events not delivered to 127.0.0.1:{port}: connection refused; waited "
                         f"{wait:g} s for the broker after the end of video file {SAMPLE_CLIP}"), result.stderr
    assert "Traceback" not in result.stderr


def test_a_negative_flush_timeout_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "emocam.toml"
    config.write_text("[mqtt]\nflush_timeout = -1\n")
    result = emocam("check-config", "--config", str(config))
    assert result.returncode == 2 and "mqtt.flush_timeout" in result.stderr and "Traceback" not in result.stderr
