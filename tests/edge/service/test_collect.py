"""emocam collect: the user's faces saved exactly as the classifier sees them, and only good ones."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from emocam.edge.capture.factory import SAMPLE_CLIP
from emocam.edge.capture.files import VideoFileSource
from emocam.edge.capture.frames import SystemClock
from emocam.edge.errors import ConfigError
from emocam.edge.service.collect import Collector, CollectSettings, why_not_keep
from emocam.edge.service.config import parse_config
from emocam.edge.service.daemon import Pipeline, build_pipeline, face_crops
from emocam.edge.vision.faces import Face
from tests.edge.conftest import emocam


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return build_pipeline(parse_config({}, hostname="test"))


def sample() -> VideoFileSource:
    return VideoFileSource(SAMPLE_CLIP, realtime=False, clock=SystemClock())


def test_collected_faces_are_what_the_daemon_classifies(pipeline: Pipeline, tmp_path: Path) -> None:
    report = Collector(pipeline, sample(), CollectSettings("happy", tmp_path, every=0.0)).run()
    saved = sorted((tmp_path / "happy").glob("*.png"))
    assert report.saved == len(saved) >= 10 and report.frames == 18
    # The daemon's way, frame by frame: detector, then face_crops (what Daemon._process calls).
    crops = []
    prep, keep = pipeline.classifier.info.preprocessing, CollectSettings("happy", tmp_path)
    with sample() as source:
        while (frame := source.read()) is not None:
            faces = pipeline.detector.detect(frame.image)
            pairs = zip(faces, face_crops(frame, faces, prep), strict=True)
            crops += [crop for face, crop in pairs if why_not_keep(face, crop, keep) is None]
    read_back = [cv2.imread(str(path), cv2.IMREAD_UNCHANGED) for path in saved]
    assert all(image.shape == (48, 48) and image.dtype == np.uint8 for image in read_back)
    assert len(read_back) == len(crops) and all(np.array_equal(a, b) for a, b in zip(read_back, crops, strict=True))
    classify = pipeline.classifier.probabilities
    assert np.array_equal(classify(read_back), classify(crops))  # the PNG loses nothing


def test_every_and_max_bound_what_is_taken(pipeline: Pipeline, tmp_path: Path) -> None:
    report = Collector(pipeline, sample(), CollectSettings("sad", tmp_path, every=1.0)).run()
    assert report.frames == 4  # 3.4 s of clip at 5 fps, one frame a second: 0, 1, 2, 3 s
    report = Collector(pipeline, sample(), CollectSettings("sad", tmp_path / "b", every=0.0, max_faces=3)).run()
    assert report.saved == 3 and len(list((tmp_path / "b" / "sad").iterdir())) == 3


def test_a_second_run_adds_files_and_never_overwrites(pipeline: Pipeline, tmp_path: Path) -> None:
    settings = CollectSettings("happy", tmp_path, every=0.0, max_faces=4)
    Collector(pipeline, sample(), settings).run()
    first = {path: path.read_bytes() for path in (tmp_path / "happy").iterdir()}
    Collector(pipeline, sample(), settings).run()  # most likely within the same second
    assert len(list((tmp_path / "happy").iterdir())) == 8
    assert all(path.read_bytes() == data for path, data in first.items())


def test_small_blurred_and_unaligned_faces_are_skipped(pipeline: Pipeline, tmp_path: Path) -> None:
    with sample() as source:
        while (frame := source.read()) is not None and not (faces := pipeline.detector.detect(frame.image)):
            pass  # the astronaut comes into view after the first frame
    assert frame is not None
    face = faces[0]
    crop = face_crops(frame, [face], pipeline.classifier.info.preprocessing)[0]
    settings = CollectSettings("happy", tmp_path)
    assert why_not_keep(face, crop, settings) is None
    assert why_not_keep(Face(face.box, face.score), crop, settings) == "not aligned (no eye landmarks)"
    assert why_not_keep(face, crop, CollectSettings("happy", tmp_path, min_face=500)) == "smaller than 500 px"
    assert why_not_keep(face, cv2.GaussianBlur(crop, (0, 0), 3), settings) == "blurred"


def test_the_report_counts_what_was_skipped(pipeline: Pipeline, tmp_path: Path) -> None:
    report = Collector(pipeline, sample(), CollectSettings("happy", tmp_path, every=0.0, min_face=10_000)).run()
    assert report.saved == 0 and report.skipped["smaller than 10000 px"] >= 10
    assert str(report).startswith(f"saved 0 faces to {tmp_path / 'happy'} from 18 frames; skipped ")


def test_a_label_the_model_does_not_have_is_refused(pipeline: Pipeline, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--label 'disgust' is not one of the model's labels: angry, fear, happy"):
        Collector(pipeline, sample(), CollectSettings("disgust", tmp_path))
    assert not (tmp_path / "disgust").exists()


def test_the_command_saves_prints_and_exits_by_what_it_saved(tmp_path: Path) -> None:
    result = emocam("collect", "--label", "happy", "--out", str(tmp_path), "--source", str(SAMPLE_CLIP), "--max", "5")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(f"saved 5 faces to {tmp_path / 'happy'} from ")
    folder = tmp_path / "empty"
    folder.mkdir()
    cv2.imwrite(str(folder / "wall.png"), np.full((480, 640, 3), 128, np.uint8))  # no face at all
    result = emocam("collect", "--label", "happy", "--out", str(tmp_path), "--source", str(folder))
    assert result.returncode == 4 and result.stdout.startswith("saved 0 faces to ")


@pytest.mark.parametrize(("args", "message"), [
    (("--label", "disgust"), "--label 'disgust' is not one of the model's labels"),
    (("--label", "happy", "--every", "-1"), "--every=-1.0 must be in >= 0"),
    (("--label", "happy", "--max", "0"), "--max=0 must be in >= 1"),
])
def test_bad_arguments_are_one_line_exit_2(args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    result = emocam("collect", "--out", str(tmp_path), "--source", str(SAMPLE_CLIP), *args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("ERROR emocam: " + message)


def test_a_camera_that_does_not_open_says_the_service_may_hold_it(tmp_path: Path) -> None:
    result = emocam("collect", "--label", "happy", "--out", str(tmp_path), "--source", "/dev/video99")
    assert result.returncode == 4, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ERROR emocam: cannot open V4L2 camera 99")
    assert "sudo systemctl stop emocam" in last and "Traceback" not in result.stderr
    # a file is nothing the service holds: no such hint
    result = emocam("collect", "--label", "happy", "--out", str(tmp_path), "--source", str(tmp_path / "no.mp4"))
    assert result.returncode == 4 and "systemctl" not in result.stderr
