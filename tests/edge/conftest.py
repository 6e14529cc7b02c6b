"""What the edge tests share: a real MQTT broker and a recording subscriber, the CLI run as a
subprocess (``emocam listen`` in the background too), a fake clock, the sample clip's frames and
a real face photo.

``mqtt_broker`` (one per session) serves tests that only publish and subscribe; ``own_broker``
(one per test) may be stopped and started again, and keeps retained messages and persistent
sessions across a restart, so a subscriber never misses what was published while it was away.
Mosquitto is used where installed (``.ci/run`` installs it); amqtt is the fallback (MQTT 3.1.1
only, no persistence: the restart tests skip there); with neither, broker tests skip and say why.
``EMOCAM_TEST_BROKER=amqtt`` forces the fallback, to test it where mosquitto is installed.
Tests that start their own publisher should use ``broker.protocols[-1]`` as the MQTT protocol.
"""

from __future__ import annotations

import getpass
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from emocam.edge.capture.factory import SAMPLE_CLIP
from emocam.edge.mqtt.wire import EmotionEvent, event_payload
from emocam.edge.payloads import Event, parse_event

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 5.0
CLI_TIMEOUT = 60.0


def free_port() -> int:
    """A loopback TCP port nobody listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it holds; AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def event_bytes(device: str, seq: int | None, face: int = 1) -> bytes:
    """A valid event of ``device`` as published (``appeared``), numbered ``seq``."""
    labels = ("angry", "fear", "happy", "neutral", "sad", "surprise")
    scores = (0.05, 0.05, 0.75, 0.05, 0.05, 0.05)
    event = EmotionEvent("appeared", face, "happy", 0.75, labels, scores, (0.4, 0.2, 0.2, 0.25), 1_800_000_000.0)
    return json.dumps(event_payload(event, device, "1.0", seq=seq), separators=(",", ":")).encode()


def assert_exact_event(payload: object, labels: tuple[str, ...] | None = None) -> Event:
    """What emocam emits: a valid event payload with no field outside the documented ones."""
    event = parse_event(payload, labels)
    assert not event.extra, f"undocumented event fields {sorted(event.extra)}"
    return event


# --- the CLI as a subprocess, time and frames for in-process tests ------------------------------


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment minus what steers emocam (EMOCAM_*, systemd's notify and watchdog), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMOCAM_", "NOTIFY_SOCKET", "WATCHDOG_"))}
    return {**env, **(extra or {})}


def emocam(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = CLI_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """``python -m emocam.edge ARGS`` from the repository root, in a clean environment plus ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=timeout,
        env=clean_env(env), cwd=REPO,
    )


class FakeClock:
    """Monotonic time that only moves when slept on (or pushed by the test)."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def sample_frames() -> list[np.ndarray]:
    """Every frame of the bundled sample clip (18 at 640x480; the face is in frames 2..15)."""
    capture = cv2.VideoCapture(str(SAMPLE_CLIP))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    capture.release()
    return frames


def _find_broker() -> tuple[str, str] | None:
    """(kind, executable) of the broker to use, or None. EMOCAM_TEST_BROKER=amqtt forces the fallback."""
    wanted = os.environ.get("EMOCAM_TEST_BROKER", "")
    mosquitto = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).is_file()), None
    )
    if mosquitto and wanted != "amqtt":
        return "mosquitto", mosquitto
    amqtt = shutil.which("amqtt")
    if amqtt:
        return "amqtt", amqtt
    return None


class Broker:
    """A broker process on a free loopback port that tests can stop and start again."""

    host = "127.0.0.1"

    def __init__(
        self, workdir: Path, kind: str, executable: str, persistent: bool = False, anonymous: bool = True,
        config: Sequence[str] = (),
    ) -> None:
        """``config``: more mosquitto.conf lines (a password_file and acl_file, say)."""
        self.workdir = workdir
        self.kind = kind
        self.executable = executable
        self.persistent = persistent
        self.anonymous = anonymous
        self.config = tuple(config)
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def protocols(self) -> tuple[str, ...]:
        return ("3.1.1", "5") if self.kind == "mosquitto" else ("3.1.1",)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _write_config(self) -> list[str]:
        if self.kind == "mosquitto":
            lines = [
                f"listener {self.port} {self.host}",
                # Without a password file, 'false' refuses every client: a broker that says no.
                f"allow_anonymous {'true' if self.anonymous else 'false'}",
                f"user {getpass.getuser()}",  # run as root, mosquitto would switch to 'mosquitto'
                f"log_dest file {self.workdir / 'mosquitto.log'}",
            ]
            if self.persistent:
                # Sessions and retained messages survive stop()/start(); QoS 0 too, for QoS 0 tests.
                lines += ["persistence true", f"persistence_location {self.workdir}/", "queue_qos0_messages true"]
            lines += self.config
            config = self.workdir / "mosquitto.conf"
            config.write_text("\n".join(lines) + "\n")
            return [self.executable, "-c", str(config)]
        config = self.workdir / "amqtt.yaml"
        config.write_text(f"listeners:\n  default:\n    type: tcp\n    bind: {self.host}:{self.port}\n")
        return [self.executable, "-c", str(config)]

    def start(self) -> None:
        if self.running:
            return
        log_file = (self.workdir / "broker.out").open("ab")
        self._process = subprocess.Popen(self._write_config(), stdout=log_file, stderr=subprocess.STDOUT)
        log_file.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                output = (self.workdir / "broker.out").read_text(errors="replace")
                raise RuntimeError(f"{self.kind} exited with {self._process.returncode}: {output[-2000:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.005)
        self.stop()
        raise RuntimeError(f"{self.kind} did not accept connections on port {self.port} within {START_TIMEOUT} s")

    def stop(self) -> None:
        """Stop the broker (SIGTERM: mosquitto saves retained messages and sessions first)."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None


def _make_broker(tmp_path_factory: pytest.TempPathFactory, persistent: bool, anonymous: bool = True) -> Broker:
    found = _find_broker()
    if found is None:
        pytest.skip("no MQTT broker: install mosquitto (apt-get install -y mosquitto) or amqtt (pip install amqtt)")
    kind, executable = found
    if kind != "mosquitto" and (persistent or not anonymous):
        pytest.skip(f"needs mosquitto (persistence, refusing clients); only {kind} is installed")
    return Broker(tmp_path_factory.mktemp(kind), kind, executable, persistent, anonymous)


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One running broker for the session. Do not stop it; use ``own_broker`` for that."""
    broker = _make_broker(tmp_path_factory, persistent=False)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A running broker for one test, which it may stop and start (state survives a restart)."""
    broker = _make_broker(tmp_path_factory, persistent=True)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def refusing_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A running broker that refuses every client (CONNACK 'not authorized')."""
    broker = _make_broker(tmp_path_factory, persistent=False, anonymous=False)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def unique_id() -> str:
    """A fresh id for topic prefixes, device ids and client ids, so tests never see each other."""
    return f"t{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    payload: bytes
    retain: bool

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8")


class Subscriber:
    """A paho client (MQTT 3.1.1, which every broker speaks) that records every message.

    ``persistent`` keeps its session on the broker (clean_session off, QoS 1), so messages
    published while it is disconnected, e.g. during a broker restart, reach it afterwards.
    """

    def __init__(self, broker: Broker, topics: list[str], persistent: bool = False) -> None:
        self.messages: queue.Queue[Received] = queue.Queue()
        self._topics = topics
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"sub-{uuid.uuid4().hex[:10]}",
            protocol=mqtt.MQTTv311,
            clean_session=not persistent,
        )
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(START_TIMEOUT):
            raise RuntimeError(f"subscriber got no SUBACK for {topics} within {START_TIMEOUT} s")

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        client.subscribe([(topic, 1) for topic in self._topics])

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        # amqtt 0.12 hands new subscribers retained messages of other topics too: keep ours only.
        if any(mqtt.topic_matches_sub(pattern, message.topic) for pattern in self._topics):
            self.messages.put(Received(message.topic, bytes(message.payload), bool(message.retain)))

    def get(self, timeout: float = 5.0) -> Received:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message on {self._topics} within {timeout} s") from None

    def collect(self, until: Callable[[list[Received]], bool], timeout: float = 5.0) -> list[Received]:
        """Messages in arrival order, until ``until(messages)`` holds; AssertionError on timeout."""
        seen: list[Received] = []
        deadline = time.monotonic() + timeout
        while not until(seen):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                got = [(m.topic, m.payload) for m in seen]
                raise AssertionError(f"gave up after {timeout} s on {self._topics}; got {got}")
            try:
                seen.append(self.messages.get(timeout=remaining))
            except queue.Empty:
                continue
        return seen

    def quiet(self, seconds: float) -> list[Received]:
        """Everything that arrives within ``seconds`` (to check that nothing more comes)."""
        seen: list[Received] = []
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                seen.append(self.messages.get(timeout=remaining))
            except queue.Empty:
                break
        return seen

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscribe() -> Iterator[Callable[..., Subscriber]]:
    """``subscribe(broker, [topics], persistent=False)`` -> a connected, subscribed Subscriber."""
    made: list[Subscriber] = []

    def make(broker: Broker, topics: list[str], persistent: bool = False) -> Subscriber:
        subscriber = Subscriber(broker, topics, persistent)
        made.append(subscriber)
        return subscriber

    yield make
    for subscriber in made:
        subscriber.close()


# --- emocam listen in the background --------------------------------------------------------


class Listen:
    """``emocam listen ARGS`` in the background; stdout lines collected on a thread."""

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.stderr_path = tmp_path / f"listen-{time.monotonic_ns()}.err"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edge", "listen", *args], stdout=subprocess.PIPE,
            stderr=self.stderr_path.open("w"), text=True, env=clean_env(env), cwd=REPO,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def wait_for_stderr(self, text: str, count: int = 1) -> None:
        wait_until(lambda: self.stderr.count(text) >= count or self.process.poll() is not None,
                   timeout=CLI_TIMEOUT, what=f"{text!r} from listen")
        assert self.process.poll() is None, f"listen exited with {self.process.returncode}:\n{self.stderr}"

    def wait_for_lines(self, count: int) -> list[str]:
        wait_until(lambda: len(self.lines) >= count, timeout=CLI_TIMEOUT,
                   what=f"{count} lines from listen, have {self.lines}")
        return list(self.lines)

    def interrupt(self) -> int:
        """Ctrl-C: the exit code, after checking the exit was clean."""
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(CLI_TIMEOUT)
        self._reader.join(CLI_TIMEOUT)
        assert "Traceback" not in self.stderr, self.stderr
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(CLI_TIMEOUT)


@pytest.fixture
def listen(tmp_path: Path) -> Iterator[Callable[..., Listen]]:
    """``listen(*ARGS, env=None)`` -> ``emocam listen ARGS`` running; killed after the test."""
    started: list[Listen] = []

    def make(*args: str, env: dict[str, str] | None = None) -> Listen:
        process = Listen(tmp_path, *args, env=env)
        started.append(process)
        return process

    yield make
    for process in started:
        process.kill()


# --- real face photos ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def astronaut():
    """scikit-image's public-domain portrait of Eileen Collins, as an OpenCV BGR frame."""
    data = pytest.importorskip("skimage.data", reason="scikit-image (dev extra) ships the astronaut photo")
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="module")
def blazeface():
    from emocam.edge.vision.detectors.blazeface import BlazeFaceDetector

    return BlazeFaceDetector()
