"""``emocam collect``: the user's own faces, saved as the classifier sees them, for fine-tuning.

The device's own pipeline (source -> detector -> alignment) runs, and each face's aligned crop,
the 48x48 grey image the classifier would be given, is written as a PNG into ``OUT/<label>/``.
Training reads such a folder as it reads FER-2013 (``emocam-train fit --data OUT``), so a model
fine-tuned on it sees the user's faces exactly as the Pi will. Files stay on this machine; nothing
is published.

A face is skipped, and counted by reason, when its crop would teach the model the wrong thing:
too small (an upscaled smudge), blurred (motion or focus), or not aligned (no eye landmarks, as
with the Haar detector). Existing files are never overwritten: each run names its files after
its start time.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from emocam.edge.capture.frames import Frame, FrameSource
from emocam.edge.errors import ConfigError
from emocam.edge.field_checks import check_range, check_whole
from emocam.edge.service.daemon import Pipeline, face_crops
from emocam.edge.vision.faces import Face

log = logging.getLogger(__name__)

# Variance of the Laplacian of a 48x48 crop. FER-2013's training faces: 1st percentile 373,
# median 2,024 (2,000 sampled); the same face blurred with a Gaussian of sigma 3 px: 10.
SHARPNESS_DEFAULT = 100.0


@dataclass(frozen=True, slots=True)
class CollectSettings:
    label: str  # one of the model's labels: the folder the faces go to
    out: Path  # OUT/<label>/*.png
    every: float = 0.5  # seconds (of the source's own time) between frames taken
    max_faces: int = 200  # stop after saving this many
    min_face: int = 48  # pixels: a narrower face box is upscaled into the crop, and looks it
    min_sharpness: float = SHARPNESS_DEFAULT  # variance of the crop's Laplacian

    def __post_init__(self) -> None:
        check_range("every", self.every, 0)
        check_whole("max_faces", self.max_faces, 1)
        check_whole("min_face", self.min_face, 1)
        check_range("min_sharpness", self.min_sharpness, 0)


@dataclass(slots=True)
class CollectReport:
    folder: Path
    saved: int = 0
    frames: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def __str__(self) -> str:
        skipped = ", ".join(f"{count} {why}" for why, count in sorted(self.skipped.items()))
        return (f"saved {self.saved} face{'s' if self.saved != 1 else ''} to {self.folder} from {self.frames} "
                f"frames" + (f"; skipped {skipped}" if skipped else ""))


def sharpness(crop: np.ndarray) -> float:
    return float(cv2.Laplacian(crop, cv2.CV_64F).var())


def why_not_keep(face: Face, crop: np.ndarray, settings: CollectSettings) -> str | None:
    """The reason a face's crop should not become training data, or None to keep it."""
    if not face.has_eyes:
        return "not aligned (no eye landmarks)"
    if face.box[2] < settings.min_face:
        return f"smaller than {settings.min_face} px"
    if sharpness(crop) < settings.min_sharpness:
        return "blurred"
    return None


class Collector:
    """Runs the pipeline over a source and writes the faces worth keeping."""

    def __init__(self, pipeline: Pipeline, source: FrameSource, settings: CollectSettings) -> None:
        labels = pipeline.classifier.labels
        if settings.label not in labels:
            raise ConfigError(f"--label {settings.label!r} is not one of the model's labels: {', '.join(labels)}")
        self._pipeline, self._source, self._settings = pipeline, source, settings
        self._folder = settings.out.expanduser() / settings.label
        self._stem = "face-" + datetime.now(tz=UTC).strftime("%Y%m%dT%H%M%S")
        self.report = CollectReport(self._folder)

    def run(self) -> CollectReport:
        try:
            self._folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--out {self._settings.out}: cannot create {self._folder} ({exc.strerror})") from exc
        next_time: float | None = None
        with self._source as source:
            while self.report.saved < self._settings.max_faces:
                frame = source.read()
                if frame is None:
                    break
                if next_time is not None and frame.timestamp < next_time:
                    continue
                next_time = frame.timestamp + self._settings.every
                self.report.frames += 1
                self._take(frame)
        log.info("%s", self.report)
        return self.report

    def _take(self, frame: Frame) -> None:
        faces = self._pipeline.detector.detect(frame.image)
        for face, crop in zip(faces, face_crops(frame, faces, self._pipeline.classifier.info.preprocessing),
                              strict=True):
            reason = why_not_keep(face, crop, self._settings)
            if reason is not None:
                self.report.skipped[reason] += 1
                continue
            self._save(crop)
            if self.report.saved >= self._settings.max_faces:
                return

    def _save(self, crop: np.ndarray) -> None:
        while True:
            path = self._folder / f"{self._stem}-{self.report.saved + 1:04d}.png"
            if not path.exists():
                break
            self._stem += "b"  # a second run in the same second: never overwrite a user's face
        if not cv2.imwrite(str(path), crop):
            raise ConfigError(f"--out {self._settings.out}: cannot write {path}; check that it is writable and the "
                              "disk not full")
        self.report.saved += 1
        log.debug("saved %s", path)
