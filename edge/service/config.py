"""The daemon's configuration: one TOML file, then environment overrides, then CLI flags.

``parse_config(mapping)`` is pure (no files, no environment) and is what tests call. Every unknown
key and every bad value becomes one ConfigError naming the dotted key, the value and what is
allowed, e.g. ``mqtt.qos: 3 is not one of 0, 1, 2``. ``load_config`` adds the layers: the file
(``--config`` or ``$EMOCAM_CONFIG``; none means the defaults), the few environment variables in
``ENV_OVERRIDES``, then the CLI flags. The broker password is never in the file or on the command
line: it comes from the systemd credential ``mqtt_password`` or ``$EMOCAM_MQTT_PASSWORD``.

The defaults here and the commented ``edge/emocam.toml`` must agree; a test holds them together.
"""

from __future__ import annotations

import dataclasses
import json
import re
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emocam.edge.capture.settings import SourceConfig
from emocam.edge.errors import ConfigError
from emocam.edge.field_checks import check_range
from emocam.edge.mqtt.settings import MqttSettings
from emocam.edge.mqtt.wire import DEVICE_ID_RULE, is_valid_device_id
from emocam.edge.tracking.tracker import TrackerSettings
from emocam.edge.vision.settings import DetectorConfig, ModelConfig

DEFAULT_CONFIG_FILE = Path(__file__).resolve().parent.parent / "emocam.toml"
CREDENTIAL_NAME = "mqtt_password"
PASSWORD_ENV = "EMOCAM_MQTT_PASSWORD"
CONFIG_ENV = "EMOCAM_CONFIG"
# Environment variable -> dotted key it overrides. Kept small: the file is the place for the rest.
ENV_OVERRIDES = {
    "EMOCAM_SOURCE": "source.name",
    "EMOCAM_BROKER": "mqtt.url",
    "EMOCAM_DEVICE_ID": "device_id",
    "EMOCAM_LOG_LEVEL": "log_level",
}
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True, slots=True)
class StatsConfig:
    interval: float = 30.0  # seconds between stats messages

    def __post_init__(self) -> None:
        check_range("interval", self.interval, above=0)


@dataclass(frozen=True, slots=True)
class Config:
    device_id: str
    log_level: str = "info"
    source: SourceConfig = SourceConfig()
    detector: DetectorConfig = DetectorConfig()
    model: ModelConfig = ModelConfig()
    tracker: TrackerSettings = TrackerSettings()
    mqtt: MqttSettings = MqttSettings()
    stats: StatsConfig = StatsConfig()

    def mqtt_settings(self) -> MqttSettings | None:
        """The publisher's settings, or None when no broker is configured (stdout mode)."""
        return self.mqtt if self.mqtt.url else None


# Each section is its wing's own settings class, which checks its values when it is built.
_SECTIONS: dict[str, type] = {
    "source": SourceConfig,
    "detector": DetectorConfig,
    "model": ModelConfig,
    "tracker": TrackerSettings,
    "mqtt": MqttSettings,
    "stats": StatsConfig,
}
_TOP_LEVEL = ("device_id", "log_level")
_SECRETS = {"mqtt.password"}
# Fields of a section that the config fills from elsewhere: never keys of the file's table.
_FILLED_IN = {"mqtt.device_id": "device_id"}


def default_device_id(hostname: str) -> str:
    """A host name made into a topic level: other characters become '-', at most 64."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "-", hostname).lstrip("._-")[:64]
    return cleaned or "emocam"


def _describe(value: Any) -> str:
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(type(value))
    return f"{value!r} ({kind})" if kind else f"{value!r} ({type(value).__name__})"


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Check ``value`` against the type of the field's default; raises ConfigError naming ``key``."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: {_describe(value)} must be true or false")
    if isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: {_describe(value)} must be a whole number")
    if isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: {_describe(value)} must be a number")
    if isinstance(value, str):
        return value
    raise ConfigError(f"{key}: {_describe(value)} must be a string")


def _build(key: str, cls: type, values: Mapping[str, Any]) -> Any:
    """Build a section's dataclass; its own checks (ValueError) become ConfigErrors naming the key."""
    try:
        return cls(**values)
    except ValueError as exc:
        # The settings classes name the field first ("hold_seconds=-1 must be ..."), except for
        # the broker URL ("broker url 'x' has scheme ...").
        message = str(exc)
        match = re.match(r"(\w+)=", message)
        if match:
            where, message = f"{key}.{match.group(1)}", message[len(match.group(0)) :]
        else:
            where = f"{key}.url" if message.startswith("broker url") else key
        raise ConfigError(f"{where}: {message}") from exc


def _parse_section(name: str, raw: Any, filled_in: Mapping[str, Any]) -> Any:
    """One ``[name]`` table -> its settings class; ``filled_in`` holds the ``_FILLED_IN`` values."""
    cls = _SECTIONS[name]
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{name}: {_describe(raw)} must be a table ([{name}])")
    fields = {f.name: f for f in dataclasses.fields(cls) if _in_file(f"{name}.{f.name}")}
    values: dict[str, Any] = {}
    for dotted, top_key in _FILLED_IN.items():
        section, _, field_name = dotted.partition(".")
        if section == name:
            values[field_name] = filled_in[top_key]
    for key, value in raw.items():
        dotted = f"{name}.{key}"
        if dotted in _SECRETS:
            raise ConfigError(
                f"{dotted}: secrets are not read from the config file; use the systemd credential "
                f"{CREDENTIAL_NAME} or ${PASSWORD_ENV}"
            )
        if dotted in _FILLED_IN:
            raise ConfigError(f"{dotted}: not a key of [{name}]; set the top-level {_FILLED_IN[dotted]} instead")
        if key not in fields:
            raise ConfigError(f"{dotted}: unknown key; [{name}] takes {', '.join(fields)}")
        values[key] = _coerce(dotted, value, fields[key].default)
    return _build(name, cls, values)


def _in_file(dotted: str) -> bool:
    """Whether the config file may set ``dotted`` (secrets and filled-in fields it may not)."""
    return dotted not in _SECRETS and dotted not in _FILLED_IN


def parse_config(mapping: Mapping[str, Any], hostname: str | None = None) -> Config:
    """A TOML-shaped mapping -> Config. ``device_id`` defaults to ``hostname`` (this host's)."""
    top: dict[str, Any] = {}
    for key in mapping:
        if key in _TOP_LEVEL:
            top[key] = _coerce(key, mapping[key], "")
        elif key not in _SECTIONS:
            known = ", ".join([*_TOP_LEVEL, *(f"[{s}]" for s in _SECTIONS)])
            raise ConfigError(f"{key}: unknown key; the config takes {known}")
    if not top.get("device_id"):
        top["device_id"] = default_device_id(hostname if hostname is not None else socket.gethostname())
    if "log_level" in top and top["log_level"] not in LOG_LEVELS:
        raise ConfigError(f"log_level: {top['log_level']!r} is not one of {', '.join(LOG_LEVELS)}")
    if not is_valid_device_id(top["device_id"]):
        raise ConfigError(f"device_id: {top['device_id']!r} must be {DEVICE_ID_RULE}")
    sections = {name: _parse_section(name, mapping.get(name, {}), top) for name in _SECTIONS}
    return Config(**top, **sections)


def _with_password(config: Config, password: str) -> Config:
    """``config`` with the broker password from the credential or environment (its rules rechecked)."""
    return dataclasses.replace(config, mqtt=_build("mqtt", MqttSettings, {
        **{f.name: getattr(config.mqtt, f.name) for f in dataclasses.fields(MqttSettings)}, "password": password}))


# --- layers: file, environment, flags -------------------------------------------------------------


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a TOML file; a missing or malformed file is a ConfigError naming it."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(
            f"config file {path} does not exist; start from the commented default at {DEFAULT_CONFIG_FILE}"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def _set_dotted(mapping: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = mapping
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            return  # a malformed file; parse_config reports it
        node = child
    node[leaf] = value


def read_password(environ: Mapping[str, str]) -> str | None:
    """The broker password: the systemd credential first, then $EMOCAM_MQTT_PASSWORD."""
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if directory:
        path = Path(directory) / CREDENTIAL_NAME
        if path.is_file():
            try:
                secret = path.read_text(encoding="utf-8").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"credential {path} cannot be read: {exc}") from exc
            # The unit's default credential is a lone newline: empty means "none set there".
            if secret:
                return secret
    return environ.get(PASSWORD_ENV) or None


def load_config(
    path: Path | None,
    environ: Mapping[str, str],
    flags: Mapping[str, Any] | None = None,
    hostname: str | None = None,
) -> Config:
    """File (or defaults), then ``ENV_OVERRIDES``, then ``flags`` (dotted key -> value), then the password.

    The file is checked on its own first, so a bad value in it is an error even where an override
    replaces it (``realtime = "yes"`` with ``--no-realtime``): the service that runs the same file
    without the flag would meet it anyway. A relative ``[model] path`` is taken from the file's
    folder, not from the working directory.
    """
    if path is None and environ.get(CONFIG_ENV):
        path = Path(environ[CONFIG_ENV])
    mapping = read_config_file(path) if path is not None else {}
    if path is not None:
        _resolve_model_path(mapping, path.absolute().parent)
        try:
            parse_config(mapping, hostname=hostname)  # pure: reads the mapping, never changes it
        except ConfigError as exc:
            raise ConfigError(_with_origin(str(exc), {}, path)) from exc.__cause__
    origins: dict[str, str] = {}
    for env_name, dotted in ENV_OVERRIDES.items():
        if environ.get(env_name):
            _set_dotted(mapping, dotted, environ[env_name])
            origins[dotted] = f"${env_name}"
    for dotted, value in (flags or {}).items():
        if value is not None:
            _set_dotted(mapping, dotted, value)
            origins[dotted] = "the command line"
    try:
        config = parse_config(mapping, hostname=hostname)
        password = read_password(environ)
        if password is not None:
            config = _with_password(config, password)
    except ConfigError as exc:
        raise ConfigError(_with_origin(str(exc), origins, path)) from exc.__cause__
    return config


def _resolve_model_path(mapping: dict[str, Any], folder: Path) -> None:
    """A relative ``[model] path`` of a config file, made absolute against the file's ``folder``."""
    model = mapping.get("model")
    if isinstance(model, dict) and isinstance(model.get("path"), str) and model["path"]:
        model["path"] = str(folder / Path(model["path"]).expanduser())  # an absolute one stays as it is


def _with_origin(message: str, origins: Mapping[str, str], path: Path | None) -> str:
    key = message.split(":", 1)[0]
    if key in origins:
        return f"{message} (set by {origins[key]})"
    return f"{message} (in {path})" if path is not None else message


# --- printing (check-config) -----------------------------------------------------------------------


def config_to_dict(config: Config) -> dict[str, Any]:
    """The resolved config as a TOML-shaped dict, secrets replaced by a note that they are set."""
    data: dict[str, Any] = {"device_id": config.device_id, "log_level": config.log_level}
    for name in _SECTIONS:
        section = getattr(config, name)
        data[name] = {
            f.name: getattr(section, f.name) for f in dataclasses.fields(section) if _in_file(f"{name}.{f.name}")
        }
    data["mqtt"]["password"] = "<set>" if config.mqtt.password else "<not set>"
    return data


def to_json(config: Config) -> str:
    return json.dumps(config_to_dict(config), indent=2)


def to_toml(config: Config) -> str:
    """The resolved config as TOML that ``load_config`` reads back (the password as a comment)."""
    data = config_to_dict(config)
    password = data["mqtt"].pop("password")
    lines = [f"{key} = {_toml_value(data[key])}" for key in _TOP_LEVEL]
    for name in _SECTIONS:
        lines += ["", f"[{name}]"]
        lines += [f"{key} = {_toml_value(value)}" for key, value in data[name].items()]
        if name == "mqtt":
            lines.append(f"# password: {password} (systemd credential {CREDENTIAL_NAME} or ${PASSWORD_ENV})")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string
