"""Config: parsing, the layers (file < environment < flags), secrets, and the CLI's exit code 2."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from emocam.edge.errors import ConfigError
from emocam.edge.mqtt.settings import MqttSettings
from emocam.edge.service.config import (
    DEFAULT_CONFIG_FILE,
    Config,
    default_device_id,
    load_config,
    parse_config,
    read_password,
    to_json,
    to_toml,
)
from emocam.edge.vision.model_info import BUNDLED_MODEL, file_sha256
from tests.edge.conftest import emocam


def test_defaults_match_the_commented_default_file() -> None:
    with DEFAULT_CONFIG_FILE.open("rb") as handle:
        shipped = tomllib.load(handle)
    assert parse_config(shipped, hostname="pi") == parse_config({}, hostname="pi")
    # ...and the file shows every key there is (the password excepted: it never lives there).
    resolved = json.loads(to_json(parse_config({}, hostname="pi")))
    resolved["mqtt"].pop("password")
    assert {k: sorted(v) if isinstance(v, dict) else None for k, v in shipped.items()} == {
        k: sorted(v) if isinstance(v, dict) else None for k, v in resolved.items()
    }


def test_empty_config_gives_the_documented_defaults() -> None:
    config = parse_config({}, hostname="kitchen-pi")
    assert config.device_id == "kitchen-pi"
    assert config.source.name == "auto" and (config.source.width, config.source.height) == (640, 480)
    assert config.model.resolved_path == BUNDLED_MODEL
    assert config.mqtt.url == "" and config.mqtt_settings() is None  # no broker: stdout
    assert config.stats.interval == 30.0


@pytest.mark.parametrize(
    ("hostname", "device_id"),
    [("kitchen-pi", "kitchen-pi"), ("My Pi (2)", "My-Pi--2-"), ("-.x", "x"), ("", "emocam"), ("a" * 80, "a" * 64)],
)
def test_device_id_defaults_to_a_sanitized_host_name(hostname: str, device_id: str) -> None:
    assert default_device_id(hostname) == device_id


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"mqtt": {"qos": 3}}, "mqtt.qos: 3 is not one of 0, 1, 2"),
        ({"mqtt": {"protocol": 5}}, "mqtt.protocol: 5 (an integer) must be a string"),
        ({"mqtt": {"qso": 1}}, "mqtt.qso: unknown key; [mqtt] takes url, "),
        ({"mqtt": {"url": "http://broker"}}, "mqtt.url: broker url 'http://broker' has scheme 'http'"),
        ({"mqtt": {"url": "mqtt://u:secret@broker"}}, "mqtt.url: broker url for host 'broker' contains a password"),
        ({"mqtt": {"password": "hunter2"}}, "mqtt.password: secrets are not read from the config file"),
        ({"mqtt": {"url": "mqtt://b", "ca_file": "/ca.pem"}}, "mqtt: ca_file set but url 'mqtt://b' is not mqtts://"),
        ({"tracker": {"hold_seconds": -1}}, "tracker.hold_seconds: -1.0 must be a number of seconds >= 0"),
        ({"tracker": {"min_iou": 1.5}}, "tracker.min_iou: 1.5 must be a number in 0..1"),
        ({"source": {"width": "640"}}, "source.width: '640' (a string) must be a whole number"),
        ({"source": {"fps": 0}}, "source.fps: 0.0 must be greater than 0"),
        ({"source": {"realtime": "yes"}}, "source.realtime: 'yes' (a string) must be true or false"),
        ({"source": 5}, "source: 5 (an integer) must be a table ([source])"),
        ({"detector": {"name": "yolo"}}, "detector.name: 'yolo' is not one of auto, blazeface, haar"),
        ({"detector": {"min_score": 2}}, "detector.min_score: 2.0 must be in 0..1"),
        ({"model": {"num_threads": 0}}, "model.num_threads: 0 must be in 1..64"),
        ({"stats": {"interval": -5}}, "stats.interval: -5.0 must be greater than 0"),
        ({"log_level": "loud"}, "log_level: 'loud' is not one of debug, info, warning, error"),
        ({"device_id": "my pi"}, "device_id: 'my pi' must be 1-64 letters, digits"),
        ({"camera": {}}, "camera: unknown key; the config takes device_id, log_level, [source]"),
    ],
)
def test_bad_values_name_the_dotted_key(mapping: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(mapping, hostname="pi")
    assert str(caught.value).startswith(message)


def test_layers_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "emocam.toml"
    path.write_text('device_id = "from-file"\n[source]\nname = "0"\nfps = 15\n[mqtt]\nurl = "mqtt://file-broker"\n')
    environ = {"EMOCAM_SOURCE": "/dev/video2", "EMOCAM_BROKER": "mqtt://env-broker:1884"}
    flags = {"mqtt.url": "mqtts://flag-broker", "device_id": None, "source.realtime": False}
    config = load_config(path, environ, flags, hostname="pi")
    assert config.device_id == "from-file"  # no env or flag for it
    assert config.source.name == "/dev/video2"  # env beats file
    assert config.source.fps == 15.0  # the file's, untouched
    assert config.source.realtime is False  # flag
    assert config.mqtt.url == "mqtts://flag-broker"  # flag beats env beats file


def test_config_file_named_by_environment_when_no_flag(tmp_path: Path) -> None:
    path = tmp_path / "emocam.toml"
    path.write_text('device_id = "env-file"\n')
    assert load_config(None, {"EMOCAM_CONFIG": str(path)}, hostname="pi").device_id == "env-file"
    assert load_config(None, {}, hostname="pi").device_id == "pi"


def test_errors_say_which_layer_set_the_bad_value(tmp_path: Path) -> None:
    path = tmp_path / "emocam.toml"
    path.write_text("[mqtt]\nqos = 7\n")
    with pytest.raises(ConfigError, match=rf"mqtt.qos: 7 is not one of 0, 1, 2 \(in {path}\)"):
        load_config(path, {}, hostname="pi")
    with pytest.raises(ConfigError, match=r"mqtt.url: .* \(set by \$EMOCAM_BROKER\)"):
        load_config(None, {"EMOCAM_BROKER": "broker:1883"}, hostname="pi")
    with pytest.raises(ConfigError, match=r"device_id: .* \(set by the command line\)"):
        load_config(None, {}, {"device_id": "a/b"}, hostname="pi")


def test_a_bad_value_in_the_file_is_refused_even_where_an_override_replaces_it(tmp_path: Path) -> None:
    path = tmp_path / "emocam.toml"
    path.write_text('[source]\nrealtime = "yes"\n')
    message = rf"^source.realtime: 'yes' \(a string\) must be true or false \(in {path}\)$"
    with pytest.raises(ConfigError, match=message):
        load_config(path, {}, {"source.realtime": False}, hostname="pi")  # --no-realtime
    path.write_text("[source]\nname = 0\n")  # a number where the camera index must be a string
    with pytest.raises(ConfigError, match=rf"^source.name: 0 \(an integer\) must be a string \(in {path}\)$"):
        load_config(path, {"EMOCAM_SOURCE": "/dev/video0"}, {"source.name": "clip.avi"}, hostname="pi")


def test_a_relative_model_path_is_taken_from_the_config_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    path = folder / "emocam.toml"
    path.write_text('[model]\npath = "models/mine.tflite"\n')
    monkeypatch.chdir(tmp_path)  # elsewhere: the working directory must not matter
    config = load_config(Path("etc/emocam.toml"), {}, hostname="pi")  # a relative config path too
    assert config.model.resolved_path == folder / "models" / "mine.tflite"
    assert load_config(None, {"EMOCAM_CONFIG": str(path)}, hostname="pi") == config
    # A file's absolute or home-relative path stays; a mapping without a file keeps the cwd.
    path.write_text('[model]\npath = "/opt/m.tflite"\n')
    assert load_config(path, {}, hostname="pi").model.resolved_path == Path("/opt/m.tflite")
    path.write_text('[model]\npath = "~/m.tflite"\n')
    assert load_config(path, {}, hostname="pi").model.resolved_path == Path("~/m.tflite").expanduser()
    assert parse_config({"model": {"path": "models/mine.tflite"}}, hostname="pi").model.resolved_path == Path(
        "models/mine.tflite"
    )


def test_missing_and_malformed_files_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"config file {tmp_path / 'nope.toml'} does not exist"):
        load_config(tmp_path / "nope.toml", {}, hostname="pi")
    bad = tmp_path / "bad.toml"
    bad.write_text("[mqtt]\nqos = = 1\n")
    with pytest.raises(ConfigError, match=rf"config file {bad} is not valid TOML: .*line 2"):
        load_config(bad, {}, hostname="pi")
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('device_id = "küche"\n'.encode("latin-1"))  # saved by an editor in Latin-1
    with pytest.raises(ConfigError, match=rf"config file {latin1} is not valid TOML: 'utf-8' codec"):
        load_config(latin1, {}, hostname="pi")


def test_password_comes_from_the_credential_first_then_the_environment(tmp_path: Path) -> None:
    assert read_password({}) is None
    assert read_password({"EMOCAM_MQTT_PASSWORD": "from-env"}) == "from-env"
    (tmp_path / "mqtt_password").write_text("from-credential\n")
    environ = {"CREDENTIALS_DIRECTORY": str(tmp_path), "EMOCAM_MQTT_PASSWORD": "from-env"}
    assert read_password(environ) == "from-credential"
    # The unit's default credential is a lone newline: that means "no password".
    (tmp_path / "mqtt_password").write_text("\n")
    assert read_password({"CREDENTIALS_DIRECTORY": str(tmp_path)}) is None


def test_password_reaches_mqtt_settings_but_never_any_printout(tmp_path: Path) -> None:
    environ = {"EMOCAM_BROKER": "mqtt://alice@broker", "EMOCAM_MQTT_PASSWORD": "hunter2"}
    config = load_config(None, environ, hostname="pi")
    settings = config.mqtt_settings()
    assert settings is not None and settings.password == "hunter2" and settings.broker.username == "alice"
    for text in (to_toml(config), to_json(config), repr(config), repr(settings)):
        assert "hunter2" not in text
    assert "# password: <set>" in to_toml(config)


def test_printed_toml_reads_back_as_the_same_config(tmp_path: Path) -> None:
    config = parse_config({"source": {"name": "clip \"1\".avi", "fps": 12}, "mqtt": {"url": "mqtt://b"}}, hostname="pi")
    path = tmp_path / "resolved.toml"
    path.write_text(to_toml(config))
    assert load_config(path, {}, hostname="other") == config


def test_the_mqtt_table_is_the_publishers_settings() -> None:
    config = parse_config(
        {"mqtt": {"url": "mqtts://b:8884", "protocol": "3.1.1", "qos": 2, "client_id": "", "max_queued": 5},
         "stats": {"interval": 7}},
        hostname="pi",
    )
    settings = config.mqtt_settings()
    assert settings is config.mqtt  # one class, no mapping between a config copy and the publisher's
    assert (settings.protocol, settings.qos, settings.max_queued, config.stats.interval) == ("3.1.1", 2, 5, 7.0)
    assert settings.device_id == "pi" and settings.effective_client_id == "emocam-pi"
    assert settings.topic("events") == "emocam/pi/events"
    assert parse_config({}, hostname="pi").mqtt_settings() is None  # no url: stdout


def test_mqtt_rules_are_the_same_in_the_file_and_in_code() -> None:
    # The file and MqttSettings built in code (as `emocam listen` and tests do) share one rule.
    for keepalive, ok in ((4, False), (5, True), (3600, True), (3601, False)):
        try:
            MqttSettings(url="mqtt://b", device_id="pi", keepalive=keepalive)
        except ValueError:
            built = False
        else:
            built = True
        try:
            parse_config({"mqtt": {"url": "mqtt://b", "keepalive": keepalive}}, hostname="pi")
        except ConfigError as exc:
            assert str(exc).startswith(f"mqtt.keepalive: {keepalive} must be"), exc
            parsed = False
        else:
            parsed = True
        assert built == parsed == ok, keepalive
    with pytest.raises(ConfigError, match=r"^mqtt.device_id: not a key of \[mqtt\]; set the top-level device_id"):
        parse_config({"mqtt": {"device_id": "x"}}, hostname="pi")


def test_config_values_are_frozen() -> None:
    config = parse_config({}, hostname="pi")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.device_id = "x"  # type: ignore[misc]
    assert isinstance(config, Config)


# --- through the CLI, as a user meets it ------------------------------------------------------------


def test_cli_bad_config_exits_2_naming_the_key_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[mqtt]\nurl = \"mqtt://localhost\"\nqos = 3\n")
    result = emocam("run", "--config", str(bad))
    assert result.returncode == 2, result.stderr
    assert "mqtt.qos: 3 is not one of 0, 1, 2" in result.stderr
    assert str(bad) in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_cli_bad_flag_value_exits_2(tmp_path: Path) -> None:
    result = emocam("run", "--broker", "localhost:1883")
    assert result.returncode == 2
    assert "mqtt.url: broker url 'localhost:1883'" in result.stderr and "set by the command line" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_check_config_prints_the_resolved_config_with_the_secret_redacted(tmp_path: Path) -> None:
    path = tmp_path / "emocam.toml"
    path.write_text('[mqtt]\nurl = "mqtt://bob@broker"\n')
    env = {"EMOCAM_MQTT_PASSWORD": "hunter2", "EMOCAM_DEVICE_ID": "cam1"}
    result = emocam("check-config", "--config", str(path), env=env)
    assert result.returncode == 0, result.stderr
    resolved = tomllib.loads(result.stdout)
    assert resolved["device_id"] == "cam1" and resolved["mqtt"]["url"] == "mqtt://bob@broker"
    assert "hunter2" not in result.stdout + result.stderr
    assert "# password: <set>" in result.stdout
    assert "config OK; model" in result.stderr

    as_json = emocam("check-config", "--config", str(path), "--json")
    assert json.loads(as_json.stdout)["mqtt"]["password"] == "<not set>"


def test_cli_check_config_rejects_bad_files_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[tracker]\nhold_secs = 1\n")
    result = emocam("check-config", "--config", str(bad))
    assert result.returncode == 2
    assert "tracker.hold_secs: unknown key; [tracker] takes hold_seconds" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_check_config_refuses_a_model_the_runtime_cannot_parse(tmp_path: Path) -> None:
    # The sidecar matches the file, so only loading it (as `run` does) shows that it is cut short.
    model = tmp_path / "model.tflite"
    model.write_bytes(BUNDLED_MODEL.read_bytes()[:1500])
    sidecar = json.loads(BUNDLED_MODEL.with_suffix(".json").read_text())
    model.with_suffix(".json").write_text(json.dumps({**sidecar, "sha256": file_sha256(model)}))
    config = tmp_path / "emocam.toml"
    config.write_text(f'[model]\npath = "{model}"\n')
    result = emocam("check-config", "--config", str(config))
    assert result.returncode == 3, result.stderr
    assert f"model file {model} is not a valid TFLite model" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def one_error_line(stderr: str) -> str:
    """The single ERROR line of a run that failed, after checking it is the only one and nothing else leaked."""
    assert "Traceback" not in stderr, stderr
    assert all(line.split(" ", 1)[0] in ("INFO", "WARNING", "ERROR") for line in stderr.splitlines()), stderr
    errors = [line for line in stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1, stderr
    return errors[0]


@pytest.mark.parametrize("command", [["run", "--no-realtime"], ["check-config"]])
def test_cli_refuses_a_bad_file_value_that_a_flag_overrides_with_exit_2(command: list[str], tmp_path: Path) -> None:
    path = tmp_path / "emocam.toml"
    path.write_text('[source]\nrealtime = "yes"\n')
    result = emocam(command[0], "--config", str(path), *command[1:])
    assert result.returncode == 2, result.stderr
    assert one_error_line(result.stderr) == (
        f"ERROR emocam: source.realtime: 'yes' (a string) must be true or false (in {path})"
    )
    assert result.stdout == ""


def test_cli_finds_a_relative_model_beside_its_config_from_any_working_directory(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    (folder / "models").mkdir(parents=True)
    for suffix in (".tflite", ".json"):
        (folder / "models" / f"mine{suffix}").write_bytes(BUNDLED_MODEL.with_suffix(suffix).read_bytes())
    path = folder / "emocam.toml"
    path.write_text('[model]\npath = "models/mine.tflite"\n')
    result = emocam("check-config", "--config", str(path))  # run from the repository root
    assert result.returncode == 0, result.stderr
    assert f"config OK; model {folder / 'models' / 'mine.tflite'} v" in result.stderr
    assert tomllib.loads(result.stdout)["model"]["path"] == str(folder / "models" / "mine.tflite")
    # A missing one is exit 3, naming where it was looked for.
    path.write_text('[model]\npath = "models/other.tflite"\n')
    result = emocam("check-config", "--config", str(path))
    assert result.returncode == 3, result.stderr
    assert one_error_line(result.stderr).startswith(
        f"ERROR emocam: model file {folder / 'models' / 'other.tflite'} does not exist; "
    )


def test_cli_version() -> None:
    result = emocam("--version")
    assert result.returncode == 0 and result.stdout.startswith("emocam 0.")
