"""``emocam``: the composition root. Builds the parts, wires the signals, maps errors to exit codes.

    emocam run [--config FILE] [--source SRC] [--broker URL] [--device-id ID] [--no-realtime]
    emocam check-config [--config FILE] [--json]
    emocam listen [--config FILE] [--broker URL] [--device ID ...] [--json] [--summary SECONDS] [--share GROUP]
    emocam remove-discovery [--config FILE] [--broker URL] [--device-id ID]

Exit codes: 0 clean stop (also SIGTERM, SIGINT, end of a file, the reader of stdout gone), 2 bad
config, 3 missing or corrupt model, 4 source, 5 detector, 6 publisher, 7 a file's events not all
delivered to the broker (see edge/errors.py).
Start-up order matters: the model is loaded and checked before the camera is opened, and the
publisher never waits for the broker.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from emocam import __version__
from emocam.edge.closed_stdout import discard_stdout, stdout_usable
from emocam.edge.errors import ConfigError, EmocamError, SourceError
from emocam.edge.mqtt.publishing import Payload, Publisher, StdoutPublisher
from emocam.edge.mqtt.settings import MqttSettings
from emocam.edge.service.config import CONFIG_ENV, ENV_OVERRIDES, Config, load_config, to_json, to_toml

log = logging.getLogger("emocam")

_LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"  # journald adds the timestamps


def build_parser() -> argparse.ArgumentParser:
    env = ", ".join(ENV_OVERRIDES)
    parser = argparse.ArgumentParser(
        prog="emocam",
        description="Facial-emotion events from a camera, over MQTT or as JSON lines on stdout.",
        epilog=f"Environment overrides: {env}, EMOCAM_CONFIG; broker password: the systemd "
        "credential mqtt_password or EMOCAM_MQTT_PASSWORD.",
    )
    parser.add_argument("--version", action="version", version=f"emocam {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the camera -> emotion events daemon")
    run.add_argument("--config", type=Path, metavar="FILE", help="TOML config file (default: built-in defaults)")
    run.add_argument(
        "--source", metavar="SRC",
        help="auto (default), picamera2, a V4L2 index or /dev/videoN, a video file, a folder of images, "
        "or an rtsp:// or http:// URL",
    )
    run.add_argument(
        "--broker", metavar="URL", help="mqtt://[user@]host[:port] or mqtts://...; none: JSON lines on stdout"
    )
    run.add_argument("--device-id", metavar="ID", help="topic level and device field (default: the host name)")
    run.add_argument(
        "--no-realtime", action="store_true",
        help="process a file as fast as possible instead of at its own frame rate",
    )

    check = commands.add_parser("check-config", help="validate the config and model, print the resolved config")
    check.add_argument("--config", type=Path, metavar="FILE", help="TOML config file (default: built-in defaults)")
    check.add_argument("--json", action="store_true", help="print JSON instead of TOML")

    listen = commands.add_parser(
        "listen", help="print the emotion events of one camera, several, or all",
        description="Subscribe to emocam's MQTT topics and print the events as they arrive.",
    )
    listen.add_argument("--config", type=Path, metavar="FILE",
                        help="take the broker, TLS and topic prefix from this config")
    listen.add_argument("--broker", metavar="URL",
                        help="mqtt://[user@]host[:port] or mqtts://... (default: the config's, else mqtt://localhost)")
    listen.add_argument("--device", action="append", default=[], metavar="ID",
                        help="a device id; repeat for several (default: all)")
    listen.add_argument("--json", action="store_true", help="raw event JSON, one per line (summaries as JSON too)")
    listen.add_argument("--summary", type=float, default=0.0, metavar="SECONDS",
                        help="instead of events, print per device and window the count and share of each emotion")
    listen.add_argument("--share", metavar="GROUP",
                        help="join this MQTT 5 shared-subscription group: the listeners of a group split the events, "
                        "each event to one of them")

    collect = commands.add_parser(
        "collect", help="save the faces a source shows, as the classifier sees them, for fine-tuning",
        description="Run the device's source, detector and alignment and save each face's 48x48 grey crop "
        "into OUT/LABEL/ as PNG. Files stay here; nothing is published. Train on the folder with "
        "emocam-train fit --data OUT.",
    )
    collect.add_argument("--label", required=True, metavar="LABEL",
                         help="the emotion these faces show: one of the model's labels")
    collect.add_argument("--out", required=True, type=Path, metavar="OUT", help="the folder; faces go to OUT/LABEL/")
    collect.add_argument("--source", metavar="SRC",
                         help="auto (default: a camera), picamera2, a V4L2 index, a video file or a folder of images")
    collect.add_argument("--every", type=float, default=0.5, metavar="SECONDS",
                         help="take a frame this often, in the source's own time (default 0.5)")
    collect.add_argument("--max", type=int, default=200, metavar="N", dest="max_faces",
                         help="stop after saving N faces (default 200)")
    collect.add_argument("--config", type=Path, metavar="FILE",
                         help="TOML config file: its detector, model and camera settings")

    remove = commands.add_parser(
        "remove-discovery", help="delete this camera's Home Assistant entities from the broker",
        description="Clear the retained Home Assistant discovery configs, which deletes the entities. "
        "Set [mqtt] ha_discovery = false too, or the daemon publishes them again when it connects.",
    )
    remove.add_argument("--config", type=Path, metavar="FILE", help="TOML config file (default: built-in defaults)")
    remove.add_argument("--broker", metavar="URL",
                        help="mqtt://[user@]host[:port] or mqtts://... (default: the config's)")
    remove.add_argument("--device-id", metavar="ID", help="the camera whose entities go (default: the config's)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=_LOG_FORMAT)
    try:
        if args.command == "check-config":
            return _check_config(args)
        if args.command == "listen":
            return _listen(args)
        if args.command == "remove-discovery":
            return _remove_discovery(args)
        if args.command == "collect":
            return _collect(args)
        return _run(args)
    except EmocamError as exc:
        log.error("%s", exc)
        return exc.exit_code
    except KeyboardInterrupt:
        return 0  # Ctrl-C before the signal handlers were in place


def _collect(args: argparse.Namespace) -> int:
    from emocam.edge.capture.factory import make_source
    from emocam.edge.capture.frames import SystemClock
    from emocam.edge.capture.live import STREAM_SCHEMES, LiveSource
    from emocam.edge.service.collect import Collector, CollectSettings
    from emocam.edge.service.daemon import build_pipeline

    try:
        settings = CollectSettings(label=args.label, out=args.out, every=args.every, max_faces=args.max_faces)
    except ValueError as exc:  # "every=-1.0 must be ...": name the flag, not the field
        field_name, _, rest = str(exc).partition("=")
        flag = {"max_faces": "max"}.get(field_name, field_name).replace("_", "-")
        raise ConfigError(f"--{flag}={rest}") from exc
    # A file is read as fast as possible: collecting is not watching.
    config = _load(args, {"source.name": args.source, "source.realtime": False})
    pipeline = build_pipeline(config)
    source = None
    try:
        source = make_source(config.source, SystemClock())
        report = Collector(pipeline, source, settings).run()
    except SourceError as exc:
        name = config.source.name
        camera = isinstance(source, LiveSource) if source is not None else name == "auto"
        if not camera or name.startswith(STREAM_SCHEMES):
            raise  # a file, folder or stream: nothing the service holds
        # One process opens a camera at a time; on a Pi that is usually the service itself.
        raise SourceError(f"{exc}. If the emocam service is running, it holds the camera: "
                          "`sudo systemctl stop emocam`, collect, then `sudo systemctl start emocam`") from exc
    print(report)
    return 0 if report.saved else 4


def _is_demo(args: argparse.Namespace) -> bool:
    """The interactive demo: ``emocam run`` with no config file, no source given, not under systemd.

    Only then does ``source = auto`` fall back to the bundled sample when there is no camera.
    systemd sets $INVOCATION_ID for every unit it starts.
    """
    chosen = args.config or os.environ.get(CONFIG_ENV) or args.source or os.environ.get("EMOCAM_SOURCE")
    return not chosen and "INVOCATION_ID" not in os.environ


def _load(args: argparse.Namespace, flags: dict[str, Any]) -> Config:
    config = load_config(args.config, os.environ, flags)
    logging.getLogger().setLevel(config.log_level.upper())
    return config


def _check_config(args: argparse.Namespace) -> int:
    from emocam.edge.vision.classifier import EmotionClassifier

    config = _load(args, {})
    if config.mqtt.url:
        config.mqtt.check_tls_files()  # what the publisher checks at start-up (exit 6)
    # What `run` loads: the sidecar, the sha256, and a TFLite file the runtime can parse and that
    # matches its sidecar (exit 3 otherwise), so the installer's check catches a broken model.
    info = EmotionClassifier(config.model.resolved_path, num_threads=config.model.num_threads).info
    try:
        sys.stdout.write(to_json(config) + "\n" if args.json else to_toml(config))
        sys.stdout.flush()  # here, not at exit, where a closed pipe could no longer be handled
    except BrokenPipeError:
        discard_stdout()  # `check-config | head -n 3`: the reader had what it wanted
    log.info("config OK; model %s v%s (%s)", config.model.resolved_path, info.version, ", ".join(info.labels))
    return 0


def _broker_settings(args: argparse.Namespace, flags: dict[str, Any], default_url: str | None) -> MqttSettings:
    """The [mqtt] settings of the config plus flags; ``default_url`` when neither names a broker."""
    config = _load(args, {**flags, "mqtt.url": args.broker})
    settings = config.mqtt_settings()
    if settings is None and default_url:
        settings = _load(args, {**flags, "mqtt.url": default_url}).mqtt_settings()
    if settings is None:
        raise ConfigError("no broker: give --broker mqtt://host or set [mqtt] url in the config")
    return settings


def _listen(args: argparse.Namespace) -> int:
    from emocam.edge.mqtt.listen import Listener

    listener = Listener(_broker_settings(args, {}, "mqtt://localhost"), args.device, args.json, args.summary,
                        share=args.share)

    def stop(signum: int, frame: FrameType | None) -> None:
        listener.stop.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    return listener.run()


def _remove_discovery(args: argparse.Namespace) -> int:
    from emocam.edge.mqtt.discovery import remove_discovery

    settings = _broker_settings(args, {"device_id": args.device_id}, None)
    for topic in remove_discovery(settings):
        log.info("cleared %s", topic)
    log.info(
        "Home Assistant entities of %s removed; set [mqtt] ha_discovery = false to keep them away", settings.device_id
    )
    return 0


class _UntilStdoutCloses:
    """The stdout publisher of `run`, ending the run once the reader of the pipe has gone.

    `emocam run | head -n 1`: after head has its line, the next write fails with BrokenPipeError.
    The reader chose to stop, so this is a clean stop like the end of a file: the daemon stops,
    flushes, and exits 0 (what `yes | head` consumers expect; 141, death by SIGPIPE, would fail a
    `set -o pipefail` script over a normal pipeline). Nothing more is written after that.
    """

    def __init__(self, publisher: Publisher, on_closed: Callable[[], None]) -> None:
        self._publisher = publisher
        self._on_closed = on_closed
        self._closed = False

    def _guard(self, call: Callable[[], None]) -> None:
        if self._closed:
            return
        try:
            call()
        except BrokenPipeError:
            self._closed = True
            self._on_closed()

    def start(self) -> None:
        self._guard(self._publisher.start)

    def publish_event(self, payload: Payload) -> None:
        self._guard(lambda: self._publisher.publish_event(payload))

    def publish_state(self, payload: Payload) -> None:
        self._guard(lambda: self._publisher.publish_state(payload))

    def publish_stats(self, payload: Payload) -> None:
        self._guard(lambda: self._publisher.publish_stats(payload))

    def close(self, reason: str = "stopped") -> None:
        if self._closed:
            log.info("publisher closed (%s; standard output was closed by its reader)", reason)
            return
        self._guard(lambda: self._publisher.close(reason))


class _Signals:
    """Holds signal requests until the daemon exists, then forwards them."""

    def __init__(self) -> None:
        self.daemon: Any = None
        self.stop: str | None = None

    def on_stop(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.daemon is not None:
            self.daemon.request_stop(name)
        else:
            raise KeyboardInterrupt  # still starting up: nothing to flush, just leave

    def on_reload(self, signum: int, frame: FrameType | None) -> None:
        if self.daemon is not None:
            self.daemon.request_reload()
        else:
            log.warning("SIGHUP during start-up ignored: the config is being read now")


def _run(args: argparse.Namespace) -> int:
    signals = _Signals()
    signal.signal(signal.SIGTERM, signals.on_stop)
    signal.signal(signal.SIGINT, signals.on_stop)
    signal.signal(signal.SIGHUP, signals.on_reload)

    # Heavy imports (OpenCV, LiteRT) only for the command that needs them.
    from emocam.edge.capture.factory import SAMPLE_CLIP, make_source
    from emocam.edge.capture.frames import SystemClock
    from emocam.edge.service.daemon import Daemon, build_pipeline, build_publisher
    from emocam.edge.service.sdnotify import SystemdNotifier

    flags = {
        "source.name": args.source,
        "mqtt.url": args.broker,
        "device_id": args.device_id,
        "source.realtime": False if args.no_realtime else None,
    }
    config = _load(args, flags)
    if config.mqtt_settings() is None and not stdout_usable():
        raise ConfigError(
            "no broker is set ([mqtt] url is empty), so events go to standard output, but standard output "
            "is closed; set [mqtt] url or --broker, or run emocam with a standard output"
        )
    log.info("emocam %s starting as device %s", __version__, config.device_id)
    pipeline = build_pipeline(config)  # the model is checked before any camera is touched
    info = pipeline.classifier.info
    publisher = build_publisher(config, pipeline.classifier.labels, info.version)
    if isinstance(publisher, StdoutPublisher):

        def stdout_closed() -> None:
            log.info("standard output was closed by its reader; stopping")
            discard_stdout()
            signals.daemon.request_stop("standard output closed")

        publisher = _UntilStdoutCloses(publisher, stdout_closed)
    clock = SystemClock()
    source = make_source(config.source, clock, sample=SAMPLE_CLIP if _is_demo(args) else None)
    with SystemdNotifier.from_env(os.environ) as notifier:
        daemon = Daemon(
            pipeline, publisher, source, notifier=notifier, clock=clock,
            reload_config=lambda: _load(args, flags),
        )
        signals.daemon = daemon
        try:
            return daemon.run()
        finally:
            # Shut down already: a stop request arriving while the interpreter exits would otherwise
            # meet the default handler (Python restores it at finalization) and turn a clean exit 0
            # into death by SIGTERM.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
