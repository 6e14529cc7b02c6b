"""``emocam run`` as a user meets it: a subprocess, real broker, real signals, real exit codes."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import pytest

from emocam.edge.capture.factory import SAMPLE_CLIP
from emocam.edge.vision.model_info import BUNDLED_MODEL, load_model_info
from tests.edge.conftest import REPO, assert_exact_event, clean_env, emocam, sample_frames
from tests.edge.service.test_config import one_error_line

LABELS = load_model_info(BUNDLED_MODEL).labels
TIMEOUT = 60


def start(*args: str, stderr: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "edge", *args], stdout=subprocess.PIPE, stderr=stderr.open("w"), text=True,
        env=clean_env(), cwd=REPO,
    )


def broker_config(path: Path, broker: Any, extra: str = "") -> Path:
    """A config file speaking the broker's newest protocol (the amqtt fallback has only 3.1.1)."""
    path.write_text(f'{extra}\n[mqtt]\nprotocol = "{broker.protocols[-1]}"\n')
    return path


def wait_for_log(path: Path, text: str, process: subprocess.Popen[str], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text():
        if process.poll() is not None:
            raise AssertionError(
                f"emocam exited with {process.returncode} before logging {text!r}:\n{path.read_text()}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"no {text!r} in the log within {timeout} s:\n{path.read_text()}")
        time.sleep(0.05)


@pytest.fixture
def long_folder(tmp_path: Path) -> Path:
    """The sample's frames as images at 2 fps, the face from 3 s to 11 s: time to send signals."""
    folder = tmp_path / "frames"
    folder.mkdir()
    frames = sample_frames()
    for i, image in enumerate([frames[0]] * 6 + frames[2:]):
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), image)
    return folder


def test_stdout_mode_prints_valid_json_lines(tmp_path: Path) -> None:
    result = emocam("run", "--source", str(SAMPLE_CLIP), "--no-realtime", "--device-id", "desk")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    for event in events:
        assert_exact_event(event, LABELS)
    assert [(e["type"], e["device"]) for e in events] == [("appeared", "desk"), ("left", "desk")]
    assert "events go to standard output as JSON lines" in result.stderr


def test_warning_level_prints_nothing_on_stderr() -> None:
    """LiteRT's C++ "INFO: Created TensorFlow Lite XNNPACK delegate" line obeys the log level too."""
    result = emocam("run", "--source", str(SAMPLE_CLIP), "--no-realtime", env={"EMOCAM_LOG_LEVEL": "warning"})
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["type"] for line in result.stdout.splitlines()] == ["appeared", "left"]
    assert result.stderr == ""


def test_info_level_logs_the_runtime_lines_as_records() -> None:
    pytest.importorskip("ai_edge_litert", reason="the XNNPACK line is LiteRT's")
    result = emocam("run", "--source", str(SAMPLE_CLIP), "--no-realtime")
    assert result.returncode == 0, result.stderr
    line = ("INFO emocam.edge.vision.tflite_runtime: ai_edge_litert.interpreter: "
            "Created TensorFlow Lite XNNPACK delegate for CPU.\n")
    assert line in result.stderr
    assert "\nINFO: " not in result.stderr and not result.stderr.startswith("INFO: ")


@pytest.mark.broker
def test_sample_through_a_real_broker(mqtt_broker: Any, subscribe: Any, unique_id: str, tmp_path: Path) -> None:
    subscriber = subscribe(mqtt_broker, [f"emocam/{unique_id}/#"])
    config = broker_config(tmp_path / "emocam.toml", mqtt_broker)
    result = emocam("run", "--config", str(config), "--source", str(SAMPLE_CLIP), "--no-realtime",
                    "--broker", mqtt_broker.url, "--device-id", unique_id)
    assert result.returncode == 0, result.stderr
    seen = subscriber.collect(lambda s: any(m.topic.endswith("/availability") and m.text == "stopped" for m in s))
    availability = [m.text for m in seen if m.topic.endswith("/availability")]
    assert availability[0] == "online" and availability[-1] == "stopped"
    events = [json.loads(m.payload) for m in seen if m.topic.endswith("/events")]
    for event in events:
        assert_exact_event(event, LABELS)
    assert [(e["type"], e["face"], e["device"]) for e in events] == [("appeared", 1, unique_id), ("left", 1, unique_id)]
    assert not any(m.retain for m in seen if m.topic.endswith("/events"))  # events are never retained
    states = [json.loads(m.payload) for m in seen if m.topic.endswith("/state")]
    assert [s["count"] for s in states] == [1, 0]
    stats = [json.loads(m.payload) for m in seen if m.topic.endswith("/stats")]
    assert stats[-1]["frames"] == 18 and stats[-1]["mqtt"]["connected"] is True
    assert result.stdout == ""  # with a broker, stdout stays quiet


@pytest.mark.broker
@pytest.mark.slow
def test_sigterm_leaves_cleanly_with_left_events_and_stopped(
    mqtt_broker: Any, subscribe: Any, unique_id: str, long_folder: Path, tmp_path: Path
) -> None:
    subscriber = subscribe(mqtt_broker, [f"emocam/{unique_id}/#"])
    log = tmp_path / "stderr.log"
    config = broker_config(tmp_path / "emocam.toml", mqtt_broker, "[source]\nfps = 2.0\n[tracker]\nhold_seconds = 0.5")
    process = start("run", "--config", str(config), "--source", str(long_folder), "--broker", mqtt_broker.url,
                    "--device-id", unique_id, stderr=log)
    try:
        seen = subscriber.collect(lambda s: any(m.topic.endswith("/events") for m in s), timeout=TIMEOUT)
        process.send_signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0, log.read_text()
    finally:
        process.kill()
    seen += subscriber.collect(lambda s: any(m.text == "stopped" for m in s))
    events = [json.loads(m.payload) for m in seen if m.topic.endswith("/events")]
    assert [e["type"] for e in events] == ["appeared", "left"]
    text = log.read_text()
    assert "stopping (SIGTERM)" in text
    assert "Traceback" not in text


@pytest.mark.slow
def test_sighup_rejects_a_bad_config_and_applies_a_good_one(long_folder: Path, tmp_path: Path) -> None:
    model = tmp_path / "model" / "emocam.tflite"
    model.parent.mkdir()
    shutil.copy(BUNDLED_MODEL, model)
    sidecar = json.loads(BUNDLED_MODEL.with_suffix(".json").read_text())
    model.with_suffix(".json").write_text(json.dumps({**sidecar, "version": "2.0-reloaded"}))
    config = tmp_path / "emocam.toml"
    config.write_text("[source]\nfps = 2.0\n")
    log = tmp_path / "stderr.log"
    process = start("run", "--config", str(config), "--source", str(long_folder), stderr=log)
    try:
        wait_for_log(log, "emocam.edge.capture.files: opened", process)
        config.write_text("[source]\nfps = 2.0\n[tracker]\nhold_seconds = -1\n")
        process.send_signal(signal.SIGHUP)
        wait_for_log(log, "reload rejected", process)
        config.write_text(f'[source]\nfps = 2.0\n[model]\npath = "{model}"\n')
        process.send_signal(signal.SIGHUP)
        wait_for_log(log, "reloaded: model", process)
        assert process.stdout is not None
        first = process.stdout.readline()  # the face appears (or EOF if the clip ran out)
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=TIMEOUT)
    finally:
        process.kill()
    text = log.read_text()
    assert process.returncode == 0, text
    assert "tracker.hold_seconds: -1.0 must be a number of seconds >= 0" in text
    assert "v2.0-reloaded" in text
    assert "Traceback" not in text
    # The face was seen after the reload, so its events name the new model.
    events = [json.loads(line) for line in (first + rest).splitlines()]
    assert [(e["type"], e["model"]) for e in events] == [("appeared", "2.0-reloaded"), ("left", "2.0-reloaded")]


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_bad_model_exits_3_before_the_camera_is_opened(damage: str, long_folder: Path, tmp_path: Path) -> None:
    model = tmp_path / "model.tflite"
    if damage == "truncated":
        model.write_bytes(BUNDLED_MODEL.read_bytes()[:1500])
        shutil.copy(BUNDLED_MODEL.with_suffix(".json"), model.with_suffix(".json"))
    config = tmp_path / "emocam.toml"
    config.write_text(f'[model]\npath = "{model}"\n')
    result = emocam("run", "--config", str(config), "--source", str(long_folder))
    assert result.returncode == 3, result.stderr
    assert str(model) in result.stderr
    assert ("does not exist" if damage == "missing" else "sha256") in result.stderr
    assert "emocam.edge.capture.files: opened" not in result.stderr  # the source was never touched
    assert "Traceback" not in result.stderr


def test_missing_source_file_exits_4(tmp_path: Path) -> None:
    result = emocam("run", "--source", str(tmp_path / "nope.avi"))
    assert result.returncode == 4
    assert "nope.avi' is not a camera, stream, file or folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_image_folder_where_no_image_decodes_exits_4_naming_them(tmp_path: Path) -> None:
    folder = tmp_path / "junk"
    folder.mkdir()
    for i in range(7):
        (folder / f"img{i}.jpg").write_text("junk\n")
    result = emocam("run", "--source", str(folder), "--no-realtime")
    assert result.returncode == 4, result.stderr
    assert one_error_line(result.stderr) == (
        f"ERROR emocam: image folder {folder}: none of its 7 images can be decoded (img0.jpg, img1.jpg, img2.jpg "
        "and 4 more); check that they are whole image files OpenCV reads (JPEG, PNG, BMP, WebP, TIFF, PGM/PPM)"
    )
    assert "WARNING" not in result.stderr and result.stdout == ""


def run_with_stdout_closed(*args: str) -> tuple[int, str]:
    """``emocam ARGS`` whose reader closes the pipe before it writes anything: (exit code, stderr)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "edge", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=clean_env(), cwd=REPO,
    )
    assert process.stdout is not None
    process.stdout.close()  # long before the model is loaded: every write of it meets a closed pipe
    _, stderr = process.communicate(timeout=TIMEOUT)
    return process.returncode, stderr


def test_a_reader_closing_stdout_stops_the_run_at_once_with_exit_0() -> None:
    code, stderr = run_with_stdout_closed("run", "--source", str(SAMPLE_CLIP), "--no-realtime")
    assert code == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr
    assert [line for line in stderr.splitlines() if not line.startswith("INFO")] == [], stderr
    assert "INFO emocam: standard output was closed by its reader; stopping" in stderr
    # The first event met the closed pipe in the middle of the clip: the loop stopped there.
    assert "stopping (standard output closed) after" in stderr and "end of video file" not in stderr


def test_run_piped_into_head_prints_one_event_and_exits_0() -> None:
    # In realtime the "left" event comes seconds after head has left with the "appeared" line, so
    # the write that meets the closed pipe is certain (as fast as possible, it is only likely).
    command = f'"{sys.executable}" -m edge run --source "{SAMPLE_CLIP}" | head -n 1; exit "${{PIPESTATUS[0]}}"'
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=TIMEOUT, cwd=REPO,
                            env=clean_env())
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["type"] for line in result.stdout.splitlines()] == ["appeared"]
    assert "Traceback" not in result.stderr
    assert "standard output was closed by its reader" in result.stderr


@pytest.mark.skipif(any(Path("/dev").glob("video*")), reason="this machine has a V4L2 device")
@pytest.mark.parametrize("how", ["config file", "systemd", "demo"])
def test_no_camera_plays_the_sample_only_in_the_demo(how: str, tmp_path: Path) -> None:
    # A Pi whose camera is missing must not send the sample's "happy" to Home Assistant as if it
    # were the kitchen's: under systemd, or with a config file, it is exit 4 and one line.
    config = tmp_path / "emocam.toml"
    config.write_text('[source]\nname = "auto"\nrealtime = false\n')
    args = ("run", "--config", str(config)) if how == "config file" else ("run", "--no-realtime")
    result = emocam(*args, env={"INVOCATION_ID": "0123abcd"} if how == "systemd" else None)
    assert "Traceback" not in result.stderr
    if how == "demo":
        assert result.returncode == 0, result.stderr
        assert "playing the bundled sample" in result.stderr and '"type":"appeared"' in result.stdout
    else:
        assert result.returncode == 4, result.stderr
        assert result.stdout == ""
        assert result.stderr.strip().splitlines()[-1].startswith("ERROR emocam: no camera found (picamera2: ")


def test_run_with_stdout_closed_and_no_broker_says_events_would_go_nowhere() -> None:
    # `emocam run >&-`: not a reader that left, but no place for the events from the start.
    result = subprocess.run(["bash", "-c", f'exec "{sys.executable}" -m edge run --source "{SAMPLE_CLIP}" >&-'],
                            capture_output=True, text=True, timeout=TIMEOUT, cwd=REPO, env=clean_env())
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("ERROR emocam: no broker is set ([mqtt] url is empty)")
    assert "set [mqtt] url or --broker" in result.stderr


def test_check_config_into_a_closed_pipe_exits_0_without_a_traceback() -> None:
    code, stderr = run_with_stdout_closed("check-config")
    assert code == 0, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    assert "config OK; model" in stderr


class BrokenPipePublisher:
    """A stdout publisher whose reader has gone: every write fails."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def start(self) -> None:
        self.calls.append("start")

    def publish_event(self, payload: dict[str, Any]) -> None:
        self.calls.append("event")
        raise BrokenPipeError(32, "Broken pipe")

    def publish_state(self, payload: dict[str, Any]) -> None:
        self.calls.append("state")

    def publish_stats(self, payload: dict[str, Any]) -> None:
        self.calls.append("stats")

    def close(self, reason: str = "stopped") -> None:
        self.calls.append("close")
        raise BrokenPipeError(32, "Broken pipe")


def test_the_stdout_guard_reports_the_closed_pipe_once_and_writes_nothing_more() -> None:
    from emocam.edge.service.cli import _UntilStdoutCloses

    inner = BrokenPipePublisher()
    closed: list[bool] = []
    publisher = _UntilStdoutCloses(inner, lambda: closed.append(True))
    publisher.start()
    publisher.publish_state({})
    publisher.publish_event({"n": 1})  # meets the closed pipe
    publisher.publish_event({"n": 2})
    publisher.publish_stats({})
    publisher.close()
    assert closed == [True]
    assert inner.calls == ["start", "state", "event"]


@pytest.mark.broker
def test_the_whole_pipeline_never_imports_tensorflow_or_keras(mqtt_broker: Any, unique_id: str, tmp_path: Path) -> None:
    config = broker_config(tmp_path / "emocam.toml", mqtt_broker)
    script = (
        "import json, sys\n"
        "from emocam.edge.service.cli import main\n"
        f"rc = main(['run', '--config', {str(config)!r}, '--source', {str(SAMPLE_CLIP)!r}, '--no-realtime',"
        f" '--broker', {mqtt_broker.url!r}, '--device-id', {unique_id!r}])\n"
        "roots = {name.split('.')[0] for name in sys.modules}\n"
        "ours = {'.'.join(name.split('.')[:2]) for name in sys.modules if name.startswith('emocam.')}\n"
        "print(json.dumps({'rc': rc, 'roots': sorted(roots), 'ours': sorted(ours)}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=TIMEOUT,
                            env=clean_env(), cwd=REPO)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["rc"] == 0
    # The run really went through the model, the detector and paho...
    assert {"ai_edge_litert", "cv2", "paho", "emocam"} <= set(report["roots"]) and report["ours"] == ["emocam.edge"]
    # ...and never near the training stack.
    assert not {"tensorflow", "keras", "tf_keras", "tensorflow_lite_support", "edge", "train", "convert"} & set(
        report["roots"])
