"""The frame loop in-process: real model, real detector, real sample frames, scripted sources.

Sources are scripted by the test (frames, errors, stalls), time is a fake clock, so the failure
paths run fast and exactly. The real-broker cases use the session's mosquitto and MqttPublisher;
the CLI and signals, as a user meets them, are in test_cli.py.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import shutil
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emocam.edge.capture.factory import SAMPLE_CLIP
from emocam.edge.capture.files import VideoFileSource
from emocam.edge.capture.frames import Frame
from emocam.edge.errors import ConfigError, DeliveryError, EmocamError, SourceError
from emocam.edge.mqtt.publisher import MqttPublisher
from emocam.edge.mqtt.settings import MqttSettings
from emocam.edge.service.config import Config, parse_config
from emocam.edge.service.daemon import Daemon, Pipeline, build_pipeline, build_publisher
from emocam.edge.service.sdnotify import SystemdNotifier
from emocam.edge.vision.faces import Face, FaceDetector
from emocam.edge.vision.model_info import BUNDLED_MODEL, load_model_info
from tests.edge.conftest import FakeClock, assert_exact_event, free_port, sample_frames, wait_until

PLACEHOLDER = load_model_info(BUNDLED_MODEL).version == "0.0-placeholder"
FAST_TRACKER = {"hold_seconds": 0.2, "smoothing_seconds": 0.1, "lost_after_seconds": 0.3}
END = object()


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return sample_frames()


@pytest.fixture(scope="module")
def face_image(frames: list[np.ndarray]) -> np.ndarray:
    return frames[10]


@pytest.fixture(scope="module")
def empty_image(frames: list[np.ndarray]) -> np.ndarray:
    return frames[0]


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    """Built once: the real classifier and detector are stateless between frames."""
    return build_pipeline(parse_config({"tracker": FAST_TRACKER}, hostname="test"))


class RecordingPublisher:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.states: list[dict[str, Any]] = []
        self.stats: list[dict[str, Any]] = []
        self.started = False
        self.closed: str | None = None

    def start(self) -> None:
        self.started = True

    def publish_event(self, payload: dict[str, Any]) -> None:
        self.events.append(payload)

    def publish_state(self, payload: dict[str, Any]) -> None:
        self.states.append(payload)

    def publish_stats(self, payload: dict[str, Any]) -> None:
        self.stats.append(payload)

    def close(self, reason: str = "stopped") -> None:
        self.closed = reason


class RecordingNotifier:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def ready(self, status: str | None = None) -> None:
        self.calls.append("ready")

    def status(self, text: str) -> None:
        self.calls.append("status")

    def reloading(self, now: float | None = None) -> None:
        self.calls.append("reloading")

    def stopping(self) -> None:
        self.calls.append("stopping")

    def ping_watchdog(self, now: float) -> bool:
        return False


class ScriptedSource:
    """A live source that plays what the test queues: frames, SourceErrors, callables, END.

    A callable is run when reached (to request a reload, or block to stall the loop) and the next
    item is read. ``advance`` moves the fake clock per read, like time passing between frames.
    """

    name = "scripted camera"
    live = True

    def __init__(
        self, clock: FakeClock | None = None, advance: float = 0.0, failing_opens: tuple[int, ...] = ()
    ) -> None:
        self.items: queue.Queue[Any] = queue.Queue()
        self.clock = clock
        self.advance = advance
        self.failing_opens = failing_opens  # which open() calls fail, counting from 0
        self.open_times: list[float] = []
        self.closes = 0
        self.dropped = 0
        self.skipped = 0
        self._index = 0

    def add(self, image: np.ndarray, start: float, count: int, fps: float = 10.0) -> float:
        """Queue ``count`` copies of ``image`` at ``fps`` from media time ``start``; returns the next time."""
        for i in range(count):
            self.items.put((image, start + i / fps))
        return start + count / fps

    def open(self) -> None:
        self.open_times.append(self.clock.now if self.clock else 0.0)
        if len(self.open_times) - 1 in self.failing_opens:
            raise SourceError("scripted camera is unplugged")

    def read(self) -> Frame | None:
        while True:
            item = self.items.get(timeout=30)
            if self.clock is not None:
                self.clock.now += self.advance
            if isinstance(item, SourceError):
                raise item
            if item is END:
                return None
            if callable(item):
                item()
                continue
            image, ts = item
            self._index += 1
            return Frame(image, ts, self._index - 1)

    def close(self) -> None:
        self.closes += 1

    def __enter__(self) -> ScriptedSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_daemon(
    pipeline: Pipeline, source: Any, publisher: Any = None, clock: FakeClock | None = None, **kwargs: Any
) -> tuple[Daemon, Any]:
    publisher = publisher or RecordingPublisher()
    daemon = Daemon(
        pipeline, publisher, source, clock=clock or FakeClock(), wall_clock=lambda: 1_800_000_000.0, **kwargs
    )
    return daemon, publisher


def test_sample_clip_gives_valid_appeared_then_left_events(pipeline: Pipeline) -> None:
    clock = FakeClock()
    source = VideoFileSource(SAMPLE_CLIP, realtime=False, clock=clock)
    daemon, publisher = make_daemon(pipeline, source, clock=clock)
    assert daemon.run() == 0
    assert [e["type"] for e in publisher.events] == ["appeared", "left"]
    assert [e["seq"] for e in publisher.events] == [1, 2]  # numbered from start, for consumers' gap counts
    for event in publisher.events:
        assert_exact_event(event, pipeline.classifier.labels)
        assert event["face"] == 1 and event["device"] == "test" and event["model"] == pipeline.classifier.info.version
    # The face sits left of centre, in the middle band of the frame.
    box = publisher.events[0]["box"]
    assert 0.3 < box["x"] < 0.6 and 0.3 < box["y"] < 0.6 and 0.1 < box["w"] < 0.3
    assert [s["count"] for s in publisher.states] == [1, 0]  # state on each change, empty at the end
    final = publisher.stats[-1]
    assert (final["frames"], final["frame_errors"], final["dropped_frames"]) == (18, 0, 0)
    assert set(final["latency_ms"]) == {"capture", "detect", "align", "classify", "publish"}
    assert all(v is not None and v >= 0 for v in final["latency_ms"].values())
    assert publisher.closed == "stopped"


def test_events_from_a_file_say_where_in_it_they_happened(pipeline: Pipeline, face_image: np.ndarray,
                                                          empty_image: np.ndarray) -> None:
    # As fast as possible, every event has the same wall-clock ts; media_s places it in the clip.
    clock = FakeClock()
    daemon, publisher = make_daemon(pipeline, VideoFileSource(SAMPLE_CLIP, realtime=False, clock=clock), clock=clock)
    assert daemon.run() == 0
    appeared, left = publisher.events
    assert appeared["ts"] == left["ts"]
    # The clip runs at 5 fps, the face is in frames 2..15 (0.4 s .. 3.0 s); FAST_TRACKER holds 0.2 s
    # before a face appears and lets it go 0.3 s after it was last seen.
    assert (appeared["media_s"], left["media_s"]) == (0.6, 3.4)
    # A camera's timestamps are monotonic capture times: no media_s.
    camera = ScriptedSource()
    camera.add(empty_image, camera.add(face_image, 500.0, 5), 5)
    camera.items.put(END)
    daemon, publisher = make_daemon(pipeline, camera)
    assert daemon.run() == 0
    assert [e["type"] for e in publisher.events] == ["appeared", "left"]
    assert not any("media_s" in e for e in publisher.events)


@pytest.mark.skipif(PLACEHOLDER, reason="the bundled model is the untrained placeholder; needs the trained one")
def test_the_smiling_astronaut_reads_as_happy(pipeline: Pipeline) -> None:
    clock = FakeClock()
    daemon, publisher = make_daemon(pipeline, VideoFileSource(SAMPLE_CLIP, realtime=False, clock=clock), clock=clock)
    daemon.run()
    assert publisher.events[0]["emotion"] == "happy"
    assert publisher.events[0]["scores"]["happy"] == max(publisher.events[0]["scores"].values())


class FlakyDetector:
    """The real detector, except that it blows up on the ``bad``-th call."""

    name = "flaky"

    def __init__(self, inner: FaceDetector, bad: int, error: Exception | None = None) -> None:
        self.inner, self.bad, self.calls = inner, bad, 0
        self.error = error or RuntimeError("detector exploded")

    def detect(self, image: np.ndarray) -> list[Face]:
        self.calls += 1
        if self.calls == self.bad:
            raise self.error
        return self.inner.detect(image)


def test_a_failing_frame_is_logged_counted_and_skipped(pipeline: Pipeline, caplog: pytest.LogCaptureFixture) -> None:
    # The default tracker (lost after 1.5 s) bridges the 0.4 s gap the skipped frame leaves.
    flaky = Pipeline(parse_config({}, hostname="test"), pipeline.classifier, FlakyDetector(pipeline.detector, bad=6))
    clock = FakeClock()
    daemon, publisher = make_daemon(flaky, VideoFileSource(SAMPLE_CLIP, realtime=False, clock=clock), clock=clock)
    with caplog.at_level(logging.WARNING):
        assert daemon.run() == 0
    assert "frame 5 failed and was skipped (RuntimeError: detector exploded)" in caplog.text
    assert daemon.counters.errors == 1 and daemon.counters.frames == 17
    assert [e["type"] for e in publisher.events] == ["appeared", "left"]


def test_running_out_of_memory_stops_the_daemon_instead_of_skipping_frames(pipeline: Pipeline) -> None:
    # Under the unit's LimitDATA= every later frame would fail too: a service that skips them all
    # looks alive and does nothing. It stops with exit 1, which Restart=on-failure restarts.
    starved = Pipeline(parse_config({}, hostname="test"), pipeline.classifier,
                       FlakyDetector(pipeline.detector, bad=6, error=MemoryError()))
    clock = FakeClock()
    daemon, publisher = make_daemon(starved, VideoFileSource(SAMPLE_CLIP, realtime=False, clock=clock), clock=clock)
    with pytest.raises(EmocamError, match="^out of memory while processing frame 5; stopping so that systemd") as info:
        daemon.run()
    assert info.value.exit_code == 1
    assert publisher.closed is not None  # shut down as on any stop: the broker hears "stopped"
    assert daemon.counters.errors == 0 and daemon.counters.frames == 5


def test_a_failing_live_source_is_reopened_with_backoff(pipeline: Pipeline, empty_image: np.ndarray) -> None:
    clock = FakeClock(start=0.0)
    # The first open works; after the failure, two reopen attempts fail before one succeeds.
    source = ScriptedSource(clock, failing_opens=(1, 2))
    notifier = RecordingNotifier()
    source.add(empty_image, 0.0, 3)
    source.items.put(SourceError("scripted camera stopped delivering frames"))
    source.add(empty_image, 1.0, 2)
    source.items.put(END)
    daemon, publisher = make_daemon(pipeline, source, clock=clock, notifier=notifier)
    assert daemon.run() == 0
    # Opened at 0, failed at 0: reopen attempts 1 s, then 2 s, then 4 s apart.
    assert source.open_times == [0.0, 1.0, 3.0, 7.0]
    assert daemon.counters.reopens == 3 and daemon.counters.frames == 5
    assert source.closes == 2  # closed after the failure, and at the end
    assert publisher.closed == "stopped"  # the publisher lived through it all
    assert "status" in notifier.calls


def test_a_camera_missing_at_start_up_is_a_source_error(pipeline: Pipeline) -> None:
    source = ScriptedSource(failing_opens=(0,))
    daemon, publisher = make_daemon(pipeline, source)
    with pytest.raises(SourceError, match="unplugged"):
        daemon.run()
    assert publisher.started and publisher.closed == "offline"  # not a clean "stopped"


def test_watchdog_pings_come_from_the_loop_and_stop_when_it_stalls(
    pipeline: Pipeline, empty_image: np.ndarray, tmp_path: Path
) -> None:
    address = tmp_path / "notify"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(address))
    receiver.settimeout(0.3)
    clock = FakeClock(start=0.0)
    source = ScriptedSource(clock, advance=1.0)
    source.add(empty_image, 0.0, 4)
    stalled, release = threading.Event(), threading.Event()

    def hang() -> None:  # a camera read that never returns (until the test lets it)
        stalled.set()
        release.wait(10)

    source.items.put(hang)
    source.items.put(END)
    notifier = SystemdNotifier(str(address), watchdog_usec=1_000_000)  # ping every 0.5 s of clock
    daemon, _ = make_daemon(pipeline, source, clock=clock, notifier=notifier)
    thread = threading.Thread(target=daemon.run)

    def drain() -> list[bytes]:
        got = []
        while True:
            try:
                got.append(receiver.recv(4096))
            except TimeoutError:
                return got

    try:
        thread.start()
        assert stalled.wait(10)
        before = drain()
        during = drain()  # 0.3 s of a stalled loop
    finally:
        release.set()
        thread.join(10)
    after = drain()
    receiver.close()
    assert before[0].startswith(b"READY=1")
    assert before[1:] == [b"WATCHDOG=1"] * 5  # one per loop iteration: 4 frames and the stalled read
    assert during == []
    assert b"STOPPING=1" in after


def test_reload_keeps_the_running_model_on_bad_input_and_swaps_in_a_good_one(
    pipeline: Pipeline,
    face_image: np.ndarray,
    empty_image: np.ndarray,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = tmp_path / "good" / "model.tflite"
    corrupt = tmp_path / "corrupt" / "model.tflite"
    for path in (good, corrupt):
        path.parent.mkdir()
        sidecar = json.loads(BUNDLED_MODEL.with_suffix(".json").read_text())
        sidecar["version"] = "1.1-test"
        path.with_suffix(".json").write_text(json.dumps(sidecar))
    shutil.copy(BUNDLED_MODEL, good)
    corrupt.write_bytes(BUNDLED_MODEL.read_bytes()[:1000])  # a copy cut short

    def config_with(**model: Any) -> Config:
        return parse_config({"tracker": FAST_TRACKER, "model": model}, hostname="test")

    def bad_file() -> Config:
        raise ConfigError("mqtt.qos: 3 is not one of 0, 1, 2")

    answers: list[Callable[[], Config]] = [
        lambda: config_with(path=str(corrupt)),
        bad_file,
        lambda: config_with(path=str(good)),
    ]
    clock = FakeClock()
    source = ScriptedSource(clock)
    notifier = RecordingNotifier()
    daemon, publisher = make_daemon(
        pipeline, source, clock=clock, notifier=notifier, reload_config=lambda: answers.pop(0)()
    )
    seen: list[Pipeline] = []
    t = source.add(face_image, 0.0, 5)
    for _ in range(2):
        source.items.put(daemon.request_reload)
        t = source.add(face_image, t, 2)
        source.items.put(lambda: seen.append(daemon.pipeline))
    source.items.put(daemon.request_reload)
    t = source.add(face_image, t, 2)
    t = source.add(empty_image, t, 5)
    source.items.put(END)
    with caplog.at_level(logging.INFO):
        daemon.run()

    assert seen == [pipeline, pipeline]  # both bad reloads left the running pipeline in place
    assert f"reload rejected, keeping the running config and model v{pipeline.classifier.info.version}" in caplog.text
    assert str(corrupt) in caplog.text and "sha256" in caplog.text
    assert "mqtt.qos: 3 is not one of 0, 1, 2" in caplog.text
    assert daemon.pipeline.classifier.model_path == good
    # The face that appeared under the old model leaves under the new one: same track, no flush.
    assert [(e["type"], e["face"], e["model"], e["seq"]) for e in publisher.events] == [
        ("appeared", 1, pipeline.classifier.info.version, 1), ("left", 1, "1.1-test", 2),  # a reload keeps counting
    ]
    # Every reload, accepted or not, is bracketed: RELOADING=1 ... READY=1.
    assert notifier.calls.count("reloading") == 3 and notifier.calls.count("ready") == 1 + 3


def test_reload_says_broker_and_source_changes_need_a_restart(
    pipeline: Pipeline, empty_image: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    changed = parse_config(
        {
            "tracker": FAST_TRACKER,
            "mqtt": {"url": "mqtt://elsewhere"},
            "source": {"name": "1"},
            "stats": {"interval": 5},
        },
        hostname="test",
    )
    clock = FakeClock()
    source = ScriptedSource(clock)
    daemon, _ = make_daemon(pipeline, source, clock=clock, reload_config=lambda: changed)
    source.add(empty_image, 0.0, 1)
    source.items.put(daemon.request_reload)
    source.add(empty_image, 0.1, 1)
    source.items.put(END)
    with caplog.at_level(logging.WARNING):
        daemon.run()
    assert "changes to [mqtt], [source] take effect only after a restart" in caplog.text
    running = daemon.pipeline.config
    assert running.mqtt.url == "" and running.source.name == "auto"  # kept
    assert running.stats.interval == 5  # applied


# --- with a real broker ------------------------------------------------------------------------------


def mqtt_config(broker: Any, device: str, **mqtt: Any) -> Config:
    return parse_config(
        {"device_id": device, "tracker": FAST_TRACKER, "stats": {"interval": 3600},
         "mqtt": {"url": broker.url, "protocol": broker.protocols[-1], "ha_discovery": False, **mqtt}},
        hostname="test",
    )


def run_in_thread(daemon: Daemon) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            daemon.run()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    return thread, errors


def events_of(messages: list[Any]) -> list[dict[str, Any]]:
    """Event payloads in arrival order, each once: QoS 1 is at-least-once, and a broker that stops
    before our subscriber's acknowledgement arrives delivers the message again after the restart."""
    payloads = dict.fromkeys(m.payload for m in messages if m.topic.endswith("/events"))
    return [json.loads(payload) for payload in payloads]


def has_event(kind: str, face: int) -> Callable[[list[Any]], bool]:
    return lambda seen: any(e["type"] == kind and e["face"] == face for e in events_of(seen))


@pytest.mark.broker
def test_broker_down_at_start_then_up_delivers_the_events(
    own_broker: Any, subscribe: Any, unique_id: str, pipeline: Pipeline, face_image: np.ndarray,
    empty_image: np.ndarray,
) -> None:
    subscriber = subscribe(own_broker, [f"emocam/{unique_id}/#"], persistent=True)
    own_broker.stop()
    config = mqtt_config(own_broker, unique_id)
    publisher = build_publisher(config, pipeline.classifier.labels, pipeline.classifier.info.version)
    source = ScriptedSource()
    daemon, _ = make_daemon(dataclasses.replace(pipeline, config=config), source, publisher=publisher)
    thread, errors = run_in_thread(daemon)
    try:
        t = source.add(face_image, 0.0, 5)  # appeared: queued, no broker yet
        own_broker.start()
        seen = subscriber.collect(has_event("appeared", 1), timeout=20)
        source.add(empty_image, t, 5)
        source.items.put(END)
        thread.join(20)
        seen += subscriber.collect(lambda s: any(m.payload == b"stopped" for m in s), timeout=10)
    finally:
        source.items.put(END)
        thread.join(10)
    assert not errors
    for event in events_of(seen):
        assert_exact_event(event, pipeline.classifier.labels)
    assert [e["type"] for e in events_of(seen)] == ["appeared", "left"]


@pytest.mark.broker
def test_broker_restart_mid_run_resumes_events_and_counts_losses(
    own_broker: Any, subscribe: Any, unique_id: str, pipeline: Pipeline, face_image: np.ndarray,
    empty_image: np.ndarray,
) -> None:
    subscriber = subscribe(own_broker, [f"emocam/{unique_id}/#"], persistent=True)
    config = mqtt_config(own_broker, unique_id, max_queued=1)
    publisher = build_publisher(config, pipeline.classifier.labels, pipeline.classifier.info.version)
    assert isinstance(publisher, MqttPublisher)
    source = ScriptedSource()
    daemon, _ = make_daemon(dataclasses.replace(pipeline, config=config), source, publisher=publisher)
    thread, errors = run_in_thread(daemon)
    try:
        t = source.add(face_image, 0.0, 5)
        seen = subscriber.collect(has_event("appeared", 1), timeout=20)
        own_broker.stop()
        wait_until(lambda: not publisher.stats().connected, what="the disconnect")
        # While the broker is away: face 1 leaves, face 2 appears. The queue holds one event, so
        # the older one (left 1) is dropped and counted.
        t = source.add(empty_image, t, 5)
        t = source.add(face_image, t, 5)
        wait_until(lambda: publisher.stats().dropped >= 1, what="a dropped event")
        own_broker.start()
        seen += subscriber.collect(has_event("appeared", 2), timeout=20)
        source.add(empty_image, t, 5)
        source.items.put(END)
        thread.join(20)
        seen += subscriber.collect(lambda s: any(m.payload == b"stopped" for m in s), timeout=10)
    finally:
        source.items.put(END)
        thread.join(10)
    assert not errors and not thread.is_alive()
    assert [(e["type"], e["face"]) for e in events_of(seen)] == [("appeared", 1), ("appeared", 2), ("left", 2)]
    stats = [json.loads(m.payload) for m in seen if m.topic.endswith("/stats")]
    assert stats and stats[-1]["mqtt"]["dropped"] >= 1 and stats[-1]["mqtt"]["reconnects"] >= 1


# --- events that never reach the broker ----------------------------------------------------------


def publisher_for(url: str, device: str, pipeline: Pipeline, **settings: Any) -> MqttPublisher:
    return MqttPublisher(MqttSettings(url=url, device_id=device, ha_discovery=False, **settings),
                         pipeline.classifier.labels, pipeline.classifier.info.version)


def test_a_file_whose_events_never_reach_the_broker_is_an_error_with_the_count(
    pipeline: Pipeline, unique_id: str
) -> None:
    port = free_port()  # nothing listens there
    publisher = publisher_for(f"mqtt://127.0.0.1:{port}", unique_id, pipeline, flush_timeout=0.5)
    clock = FakeClock()
    daemon, _ = make_daemon(pipeline, VideoFileSource(SAMPLE_CLIP, realtime=False, clock=clock), publisher=publisher,
                            clock=clock)
    with pytest.raises(DeliveryError) as error:
        daemon.run()
    assert str(error.value) == (f"2 events not delivered to 127.0.0.1:{port}: connection refused; waited 0.5 s "
                                f"for the broker after the end of video file {SAMPLE_CLIP}")
    assert error.value.exit_code == 7


def test_a_second_stop_request_ends_the_wait_for_the_broker(
    pipeline: Pipeline, unique_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    publisher = publisher_for(f"mqtt://127.0.0.1:{port}", unique_id, pipeline, flush_timeout=60)
    clock = FakeClock()
    daemon, _ = make_daemon(pipeline, VideoFileSource(SAMPLE_CLIP, realtime=False, clock=clock), publisher=publisher,
                            clock=clock)
    caplog.set_level(logging.INFO, logger="emocam.edge.mqtt.publisher")
    thread, errors = run_in_thread(daemon)
    wait_until(lambda: "waiting up to 60 s for MQTT broker" in caplog.text, what="the wait at the end of the file")
    daemon.request_stop("SIGINT")  # Ctrl-C: the user would rather not wait
    thread.join(5)
    assert not thread.is_alive()
    (error,) = errors
    assert isinstance(error, DeliveryError)
    assert str(error) == (f"2 events not delivered to 127.0.0.1:{port}: connection refused; stopped waiting for "
                          "the broker on SIGINT")


def test_a_camera_stopped_with_undelivered_events_logs_the_count_and_exits_0(
    pipeline: Pipeline, face_image: np.ndarray, empty_image: np.ndarray, unique_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    publisher = publisher_for(f"mqtt://127.0.0.1:{port}", unique_id, pipeline, flush_timeout=30)
    camera = ScriptedSource()
    camera.add(empty_image, camera.add(face_image, 500.0, 5), 5)  # appeared, left
    camera.items.put(lambda: wait_until(lambda: "connection refused" in caplog.text, what="a failed attempt"))
    camera.items.put(END)
    daemon, _ = make_daemon(pipeline, camera, publisher=publisher)
    with caplog.at_level(logging.INFO):
        assert daemon.run() == 0  # a camera's stop: no 30 s wait for the broker, and exit 0
    assert f"2 events not delivered to 127.0.0.1:{port}: connection refused; they are lost" in caplog.text
    assert "waiting up to" not in caplog.text


@pytest.mark.broker
def test_the_end_of_a_file_waits_for_a_broker_that_comes_late(
    own_broker: Any, subscribe: Any, unique_id: str, pipeline: Pipeline
) -> None:
    subscriber = subscribe(own_broker, [f"emocam/{unique_id}/#"], persistent=True)
    own_broker.stop()
    publisher = publisher_for(own_broker.url, unique_id, pipeline, protocol=own_broker.protocols[-1],
                              flush_timeout=30)
    clock = FakeClock()
    source = VideoFileSource(SAMPLE_CLIP, realtime=False, clock=clock)
    late = threading.Timer(1.0, own_broker.start)  # the clip takes well under a second as fast as possible
    late.start()
    try:
        daemon, _ = make_daemon(pipeline, source, publisher=publisher, clock=clock)
        assert daemon.run() == 0
    finally:
        late.join()
    seen = subscriber.collect(lambda s: any(m.payload == b"stopped" for m in s), timeout=10)
    assert [e["type"] for e in events_of(seen)] == ["appeared", "left"]
    assert publisher.stats().published >= 4  # online, two events, the state...

