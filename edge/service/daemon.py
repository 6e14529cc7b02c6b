"""The frame loop: source -> faces -> aligned crops -> one classifier call -> tracker -> publisher.

``Daemon`` gets every part ready-built (``build_pipeline``, ``build_publisher`` and
``emocam.edge.capture.factory.make_source`` do that for the CLI; tests pass fakes), so it holds no configuration
logic of its own. Time comes from an injected clock, so tests never sleep.

What the loop survives, and how:
- A bad frame: the per-frame guard (the only ``except Exception``) logs it rate-limited, counts it
  and goes on with the next frame.
- A source that cannot be opened at start-up: SourceError (exit 4), so a camera missing from the
  start shows up in systemd's restart limit instead of a silent retry loop.
- A live source that fails or vanishes later: it is closed and reopened with exponential backoff
  (1 s .. 30 s). The loop keeps running meanwhile (watchdog pings, stats), and the MQTT session is
  untouched. A frame loop that hangs (a driver call that never returns) stops the watchdog pings
  instead, and systemd restarts the service.
- SIGHUP (``request_reload``): the config file and the model are read again and a new classifier
  and detector are built first; if anything fails the running ones stay and one line says why.
  Broker, device id and source settings need a restart; a reload that changes them says so.
- SIGTERM/SIGINT (``request_stop``) and the end of a file: the camera is released, the tracker
  flushed (``left`` events), and the publisher closes with ``stopped``.
- Events the broker never got: a camera logs how many on its way out and exits 0 (systemd would
  only restart it into the same outage). A file's events are the whole point of the run, so at
  the end of a file the publisher waits up to ``flush_timeout`` for the broker, and what it still
  lacks then is a DeliveryError (exit 7) with the count, also when a signal stops the file early.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from emocam.edge.capture.frames import Backoff, Clock, Frame, FrameSource
from emocam.edge.errors import DeliveryError, EmocamError, SourceError
from emocam.edge.log_limit import LogLimiter
from emocam.edge.mqtt.publishing import Delivery, Flushable, Publisher, StdoutPublisher
from emocam.edge.mqtt.wire import EmotionEvent, event_payload, state_payload
from emocam.edge.service.config import Config
from emocam.edge.service.sdnotify import SystemdNotifier
from emocam.edge.service.stats import Counters, StageTimer, stats_payload
from emocam.edge.tracking.tracker import FaceTracker
from emocam.edge.vision.align import align_face
from emocam.edge.vision.classifier import EmotionClassifier
from emocam.edge.vision.detectors import make_detector
from emocam.edge.vision.faces import Face, FaceDetector
from emocam.edge.vision.preprocess import Preprocessing

log = logging.getLogger(__name__)

IDLE_STEP = 0.5  # longest sleep while waiting to reopen a source: keeps pings and signals prompt
END_OF_INPUT = "end of input"  # the stop reason when a file or folder has no more frames


@dataclass(frozen=True, slots=True)
class Pipeline:
    """The parts a reload replaces together; built completely before it is swapped in."""

    config: Config
    classifier: EmotionClassifier
    detector: FaceDetector


def face_crops(frame: Frame, faces: list[Face], prep: Preprocessing) -> list[np.ndarray]:
    """The classifier's input for each face: aligned, from the camera's luma when it gave one.

    The one place that says how a frame's faces become crops: the daemon and ``emocam collect``
    both call it, so a collected face is exactly what the classifier would have seen.
    """
    gray = frame.gray if frame.gray is not None else frame.image
    return [align_face(gray, face, prep) for face in faces]


def build_pipeline(config: Config) -> Pipeline:
    """Load the model (ModelError, exit 3) and build the detector (DetectorError, exit 5)."""
    classifier = EmotionClassifier(config.model.resolved_path, num_threads=config.model.num_threads)
    det = config.detector
    detector = make_detector(det.name, min_score=det.min_score, num_threads=det.num_threads, model=det.model)
    return Pipeline(config, classifier, detector)


def build_publisher(config: Config, labels: tuple[str, ...], model_version: str) -> Publisher:
    """MQTT when a broker is configured, else JSON lines on stdout. Never connects here."""
    settings = config.mqtt_settings()
    if settings is None:
        return StdoutPublisher()
    from emocam.edge.mqtt.publisher import MqttPublisher  # paho is needed only with a broker

    return MqttPublisher(settings, labels=labels, model_version=model_version)


def _restart_only_changes(old: Config, new: Config) -> list[str]:
    """Settings a reload cannot apply in place (they would drop the MQTT session or the camera)."""
    changed = []
    if old.device_id != new.device_id:
        changed.append("device_id")
    if old.mqtt != new.mqtt:
        changed.append("[mqtt]")
    if old.source != new.source:
        changed.append("[source]")
    return changed


class Daemon:
    """Runs the loop until stopped or a file ends. ``run`` returns the exit code (0) or raises."""

    def __init__(
        self,
        pipeline: Pipeline,
        publisher: Publisher,
        source: FrameSource,
        *,
        notifier: SystemdNotifier | None = None,
        clock: Clock,
        reload_config: Callable[[], Config] | None = None,
        build: Callable[[Config], Pipeline] = build_pipeline,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._pipeline = pipeline
        self._publisher = publisher
        self._source = source
        self._notifier = notifier or SystemdNotifier(None)
        self._clock = clock
        self._reload_config = reload_config
        self._build = build
        self._wall = wall_clock
        self._tracker = FaceTracker(pipeline.config.tracker, pipeline.classifier.labels)
        self._stop_reason: str | None = None
        self._hurry: str | None = None  # a stop request while stopping: do not wait for the broker
        self._reload_requested = False
        self._source_open = False
        self._reopen_at = 0.0
        self._backoff = Backoff()
        self._timer = StageTimer()
        self._frame_log = LogLimiter(log)
        self._source_log = LogLimiter(log, interval=60.0)
        self._started = clock.monotonic()
        self._last_stats = self._started
        self._frames_at_stats = 0
        self._frames = 0
        self._events_sent = 0  # the seq of the last event published: 1, 2, 3... since start
        self._errors = 0
        self._reopens = 0
        self._media_time = 0.0  # the tracker's clock: the last frame's timestamp

    # --- control (safe to call from a signal handler: they only set flags) ---

    def request_stop(self, reason: str = "stop requested") -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
        else:
            self._hurry = reason  # a second Ctrl-C: give up waiting for the broker

    def request_reload(self) -> None:
        self._reload_requested = True

    @property
    def pipeline(self) -> Pipeline:
        return self._pipeline

    @property
    def counters(self) -> Counters:
        return Counters(self._frames, self._source.dropped, self._source.skipped, self._errors, self._reopens)

    # --- the loop ---

    def run(self) -> int:
        """Start publishing, open the source, loop until stopped or the input ends.

        A source that cannot be opened at start-up raises SourceError (exit 4): a camera that is
        missing from the start is a setup problem that systemd's restart limit should surface. Once
        running, a live source that fails is reopened with backoff instead. A file whose events did
        not all reach the broker raises DeliveryError (exit 7) once everything is closed.
        """
        self._publisher.start()
        try:
            self._source.open()
            self._source_open = True
            self._notifier.ready(f"running on {self._source.name}")
            self._loop()
        finally:
            delivery = self._shutdown()
        if delivery.undelivered and not self._source.live:
            if self._hurry is not None:
                raise DeliveryError(f"{delivery}; stopped waiting for the broker on {self._hurry}")
            if self._stop_reason == END_OF_INPUT:
                raise DeliveryError(f"{delivery}; waited {delivery.waited:g} s for the broker after the end of "
                                    f"{self._source.name}")
            raise DeliveryError(f"{delivery}; {self._source.name} was stopped by {self._stop_reason}")
        return 0

    def _loop(self) -> None:
        while self._stop_reason is None:
            now = self._clock.monotonic()
            self._notifier.ping_watchdog(now)
            if self._reload_requested:
                self._reload(now)
            if not self._source_open:
                self._wait_for_source(now)
                continue
            started = time.perf_counter()
            try:
                frame = self._source.read()
            except SourceError as exc:
                self._source_failed(now, exc)
                continue
            if frame is None:
                log.info("end of %s after %d frames", self._source.name, self._frames)
                self.request_stop(END_OF_INPUT)
                break
            self._timer.add("capture", time.perf_counter() - started)
            self._backoff.reset()
            self._guarded(frame, now)
            self._maybe_stats(self._clock.monotonic())

    def _guarded(self, frame: Frame, now: float) -> None:
        try:
            self._process(frame)
        except MemoryError as exc:
            # Not a bad frame: every next frame would fail the same way, and skipping them keeps
            # the service "running" while it does nothing. Exit 1, and systemd restarts it afresh.
            raise EmocamError(f"out of memory while processing frame {frame.index}; stopping so that "
                              "systemd restarts emocam (see LimitDATA= and MemoryMax= in the unit)") from exc
        except Exception as exc:  # the per-frame guard: one bad frame must not stop the camera
            self._errors += 1
            self._frame_log.warning(
                now, "frame %d failed and was skipped (%s: %s)", frame.index, type(exc).__name__, exc, exc_info=True
            )

    def _process(self, frame: Frame) -> None:
        pipeline = self._pipeline
        image = frame.image
        t0 = time.perf_counter()
        faces: list[Face] = pipeline.detector.detect(image)
        t1 = time.perf_counter()
        crops = face_crops(frame, faces, pipeline.classifier.info.preprocessing)
        t2 = time.perf_counter()
        if crops:
            scores = pipeline.classifier.probabilities(crops)
        else:
            scores = np.zeros((0, len(pipeline.classifier.labels)), dtype=np.float32)
        t3 = time.perf_counter()
        self._media_time = frame.timestamp
        events = self._tracker.update(
            frame.timestamp, faces, scores, (image.shape[1], image.shape[0]), wall_time=self._wall()
        )
        self._publish(events, frame.timestamp)
        t4 = time.perf_counter()
        self._frames += 1
        self._timer.add("detect", t1 - t0)
        if crops:
            self._timer.add("align", t2 - t1)
            self._timer.add("classify", t3 - t2)
        self._timer.add("publish", t4 - t3)

    def _publish(self, events: list[EmotionEvent], media_time: float) -> None:
        """Publish ``events`` of the frame at ``media_time`` (the source's timestamp), then the state."""
        if not events:
            return
        device = self._pipeline.config.device_id
        version = self._pipeline.classifier.info.version
        # A file's timestamps are its own media time, from 0: where in the file the event happened
        # (a container may start a hair below 0). A camera's are monotonic capture times, which mean
        # nothing to a consumer.
        media_s = None if self._source.live else max(0.0, media_time)
        for event in events:
            log.debug("event %s face %d %s %.2f", event.type, event.face, event.emotion, event.confidence)
            self._events_sent += 1  # numbers every event since start, so consumers can count gaps
            payload = event_payload(event, device, version, seq=self._events_sent, media_s=media_s)
            self._publisher.publish_event(payload)
        # The tracker's state changes exactly when it emits events.
        self._publisher.publish_state(state_payload(self._tracker.tracks, device, version, self._wall()))

    # --- the source: open, fail, reopen ---

    def _source_failed(self, now: float, exc: SourceError) -> None:
        if not self._source.live:
            raise exc
        if self._source_open:
            self._source.close()
            self._source_open = False
        delay = self._backoff.next_delay()
        self._reopen_at = now + delay
        self._source_log.warning(now, "%s; reopening in %.0f s", exc, delay)
        self._notifier.status(f"camera unavailable, retrying in {delay:.0f} s: {exc}")

    def _wait_for_source(self, now: float) -> None:
        if now < self._reopen_at:
            self._clock.sleep(min(self._reopen_at - now, IDLE_STEP))
            self._maybe_stats(self._clock.monotonic())
            return
        self._reopens += 1
        try:
            self._source.open()
        except SourceError as exc:
            self._source_failed(now, exc)
            return
        self._source_open = True
        log.info("reopened %s", self._source.name)
        self._notifier.status(f"running on {self._source.name}")

    # --- reload ---

    def _reload(self, now: float) -> None:
        self._reload_requested = False
        if self._reload_config is None:
            log.warning("reload requested, but this daemon was started without a config loader")
            return
        self._notifier.reloading(now)
        log.info("reloading the config and the model")
        old = self._pipeline
        try:
            config = self._reload_config()
            pipeline = self._build(config)
        except EmocamError as exc:
            log.error("reload rejected, keeping the running config and model v%s: %s", old.classifier.info.version, exc)
            self._notifier.ready(f"reload rejected: {exc}")
            return
        needs_restart = _restart_only_changes(old.config, config)
        if needs_restart:
            log.warning(
                "reload: changes to %s take effect only after a restart (`systemctl restart emocam`); "
                "keeping the current ones", ", ".join(needs_restart),
            )
        if pipeline.classifier.labels != old.classifier.labels or config.tracker != old.config.tracker:
            # Different labels or rules: the tracks are ended and start again under the new ones.
            self._publish(self._tracker.flush(self._media_time, wall_time=self._wall()), self._media_time)
            self._tracker = FaceTracker(config.tracker, pipeline.classifier.labels)
        if config.log_level != old.config.log_level:
            logging.getLogger().setLevel(config.log_level.upper())
        self._pipeline = Pipeline(_keep_restart_only(old.config, config), pipeline.classifier, pipeline.detector)
        log.info(
            "reloaded: model %s v%s, detector %s", pipeline.classifier.model_path, pipeline.classifier.info.version,
            pipeline.detector.name,
        )
        self._notifier.ready(f"reloaded model v{pipeline.classifier.info.version}")

    # --- stats and shutdown ---

    def _maybe_stats(self, now: float) -> None:
        interval = self._pipeline.config.stats.interval
        if now - self._last_stats >= interval:
            self._publish_stats(now)

    def _publish_stats(self, now: float) -> None:
        elapsed = max(now - self._last_stats, 1e-9)
        fps = (self._frames - self._frames_at_stats) / elapsed
        payload = stats_payload(
            device=self._pipeline.config.device_id,
            model_version=self._pipeline.classifier.info.version,
            wall_time=self._wall(),
            uptime=now - self._started,
            fps=fps,
            faces=len(self._tracker.tracks),
            counters=self.counters,
            latency_ms=self._timer.medians_ms(),
            source=self._source.name,
            source_ok=self._source_open,
        )
        self._publisher.publish_stats(payload)
        self._notifier.status(
            f"{fps:.1f} fps, {payload['faces']} face(s), {payload['dropped_frames']} dropped"
            + ("" if self._source_open else ", camera unavailable")
        )
        log.debug("stats %s", payload)
        self._timer.reset()
        self._last_stats = now
        self._frames_at_stats = self._frames

    def _shutdown(self) -> Delivery:
        """Release the source, end the tracks, flush and close the publisher; what did not arrive."""
        reason = self._stop_reason or "error"
        self._notifier.stopping()
        log.info("stopping (%s) after %d frames", reason, self._frames)
        if self._source_open:
            self._source.close()  # release the camera first: it is what another process may want
            self._source_open = False
        clean = self._stop_reason is not None
        delivery = Delivery()
        try:
            self._publish(self._tracker.flush(self._media_time, wall_time=self._wall()), self._media_time)
            self._publish_stats(self._clock.monotonic())
        finally:
            if isinstance(self._publisher, Flushable):  # stdout cannot lose an event
                end_of_file = self._stop_reason == END_OF_INPUT and not self._source.live
                delivery = self._publisher.flush(wait_for_broker=end_of_file, give_up=lambda: self._hurry is not None)
            # "stopped" says we left on purpose; after an error the broker-side meaning is "offline".
            self._publisher.close("stopped" if clean else "offline")
        if delivery.undelivered and (self._source.live or not clean):
            log.warning("%s; they are lost", delivery)
        return delivery


def _keep_restart_only(old: Config, new: Config) -> Config:
    """``new`` with the settings that need a restart put back to the running ones."""
    return replace(new, device_id=old.device_id, mqtt=old.mqtt, source=old.source)
