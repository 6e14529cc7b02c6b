"""Frame sources: the bundled clip, image folders, the newest-frame hand-off, choosing a source."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from emocam.edge.capture.factory import SAMPLE_CLIP, first_v4l2_camera, make_source
from emocam.edge.capture.files import ImageFolderSource, VideoFileSource
from emocam.edge.capture.frames import Backoff, Frame, Picture
from emocam.edge.capture.live import LatestFrame, LiveSource, OpenCVCamera
from emocam.edge.capture.settings import SourceConfig
from emocam.edge.errors import SourceError
from tests.edge.conftest import FakeClock, sample_frames, wait_until


def read_all(source: VideoFileSource | ImageFolderSource) -> list[Frame]:
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    return frames


def test_sample_clip_plays_as_fast_as_possible_with_its_own_timestamps() -> None:
    clock = FakeClock()
    with VideoFileSource(SAMPLE_CLIP, realtime=False, clock=clock) as source:
        frames = read_all(source)
    assert len(frames) == 18
    assert all(f.image.shape == (480, 640, 3) and f.image.dtype == np.uint8 for f in frames)
    assert [f.index for f in frames] == list(range(18))
    assert [f.timestamp for f in frames] == pytest.approx([i * 0.2 for i in range(18)])
    assert clock.sleeps == []  # --no-realtime never waits
    assert source.dropped == 0 and source.skipped == 0


def test_sample_clip_in_realtime_waits_for_each_frame_like_a_camera() -> None:
    clock = FakeClock()
    with VideoFileSource(SAMPLE_CLIP, realtime=True, clock=clock) as source:
        frames = read_all(source)
    assert len(frames) == 18
    assert sum(clock.sleeps) == pytest.approx(17 * 0.2)


def test_realtime_file_skips_frames_a_slow_loop_cannot_keep_up_with() -> None:
    clock = FakeClock()
    with VideoFileSource(SAMPLE_CLIP, realtime=True, clock=clock) as source:
        first = source.read()
        clock.now += 1.1  # the loop spent 1.1 s on the first frame: 5.5 frames of the clip
        second = source.read()
    assert first is not None and second is not None
    # Frames due more than one period (0.2 s) ago are skipped; the one due 0.1 s ago is kept.
    assert second.timestamp == pytest.approx(1.0)
    assert source.dropped == 4


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    frames = sample_frames()
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, image in enumerate(frames[:6]):
        cv2.imwrite(str(folder / f"frame{i:03d}.jpg"), image)
    (folder / "frame002.jpg").write_bytes(b"\xff\xd8 not really a jpeg")  # corrupt, mid-sequence
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_image_folder_plays_in_name_order_and_skips_a_corrupt_image(
    image_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    with (
        caplog.at_level(logging.WARNING),
        ImageFolderSource(image_folder, fps=10, realtime=False, clock=clock) as source,
    ):
        frames = read_all(source)
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    # Timestamps follow the file position, so the skipped image leaves a gap instead of a shift.
    assert [f.timestamp for f in frames] == pytest.approx([0.0, 0.1, 0.3, 0.4, 0.5])
    assert source.skipped == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [f"image folder {image_folder}: skipped 1 of 6 images that cannot be decoded: frame002.jpg"]


def junk_images(folder: Path, count: int) -> None:
    folder.mkdir(exist_ok=True)
    for i in range(count):
        (folder / f"bad{i}.jpg").write_bytes(b"\xff\xd8 not really a jpeg")


def test_image_folder_names_the_first_few_skipped_images_and_counts_them_in_one_warning(
    image_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    junk_images(image_folder, 4)  # bad0..bad3.jpg sort before frame000.jpg
    with caplog.at_level(logging.WARNING), ImageFolderSource(image_folder, 10, False, FakeClock()) as source:
        frames = read_all(source)
    assert len(frames) == 5 and source.skipped == 5
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        f"image folder {image_folder}: skipped 5 of 10 images that cannot be decoded: bad0.jpg, bad1.jpg, "
        "bad2.jpg and 2 more"
    ]


def test_image_folder_stopped_early_still_reports_what_it_skipped(
    image_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    junk_images(image_folder, 2)
    with caplog.at_level(logging.WARNING), ImageFolderSource(image_folder, 10, False, FakeClock()) as source:
        assert source.read() is not None  # bad0, bad1 skipped, then frame000
    assert [r.getMessage() for r in caplog.records] == [
        f"image folder {image_folder}: skipped 2 of 3 images that cannot be decoded: bad0.jpg, bad1.jpg"
    ]


def test_image_folder_where_no_image_decodes_is_a_source_error_naming_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "junk"
    junk_images(folder, 7)
    with caplog.at_level(logging.WARNING), ImageFolderSource(folder, 10, False, FakeClock()) as source:
        with pytest.raises(SourceError) as caught:
            source.read()
    assert str(caught.value).startswith(
        f"image folder {folder}: none of its 7 images can be decoded (bad0.jpg, bad1.jpg, bad2.jpg and 4 more); "
    )
    assert caplog.records == []  # the error says it all: no warning besides it


def test_image_folder_without_images_is_a_source_error(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(SourceError, match="holds no images"):
        ImageFolderSource(tmp_path, fps=10, realtime=False, clock=FakeClock()).open()


def test_an_mjpeg_avi_decodes_exactly_as_its_jpeg_frames_do() -> None:
    # OpenCV's own MJPEG reader hands out libjpeg-turbo's decode of each frame, the same pixels
    # cv2.imdecode gives, on x86 and on Arm; FFmpeg's differs here by up to 26 levels.
    data = SAMPLE_CLIP.read_bytes()
    start = data.index(b"\xff\xd8\xff")
    first_jpeg = np.frombuffer(data[start:data.index(b"\xff\xd9", start) + 2], np.uint8)
    with VideoFileSource(SAMPLE_CLIP, realtime=False, clock=FakeClock()) as source:
        frames = [source.read() for _ in range(3)]
    assert all(frame is not None for frame in frames)
    assert np.array_equal(frames[0].image, cv2.imdecode(first_jpeg, cv2.IMREAD_COLOR))
    assert [frame.timestamp for frame in frames] == pytest.approx([0.0, 0.2, 0.4])  # 5 fps, from 0


def test_corrupt_video_file_is_a_source_error(tmp_path: Path) -> None:
    clip = tmp_path / "broken.avi"
    clip.write_bytes(SAMPLE_CLIP.read_bytes()[:200])
    with pytest.raises(SourceError, match="broken.avi"):
        VideoFileSource(clip, realtime=False, clock=FakeClock()).open()


# --- the newest-frame hand-off --------------------------------------------------------------------


def frame(index: int) -> Frame:
    return Frame(np.zeros((4, 4, 3), np.uint8), float(index), index)


def test_latest_frame_keeps_only_the_newest_and_counts_the_rest() -> None:
    slot = LatestFrame()
    for i in range(3):
        slot.put(frame(i))
    taken = slot.take(timeout=0)
    assert taken is not None and taken.index == 2
    assert slot.dropped == 2
    assert slot.take(timeout=0) is None  # a frame is handed out once, never again


def test_latest_frame_hands_out_a_waiting_frame_before_the_error() -> None:
    slot = LatestFrame()
    slot.put(frame(7))
    slot.fail(SourceError("camera unplugged"))
    taken = slot.take(timeout=0)
    assert taken is not None and taken.index == 7
    with pytest.raises(SourceError, match="unplugged"):
        slot.take(timeout=0)


class FakeGrabber:
    """A camera producing numbered frames as fast as asked; fails after ``fail_after`` frames."""

    description = "fake camera"

    def __init__(self, fail_after: int | None = None) -> None:
        self.fail_after = fail_after
        self.count = 0
        self.opened = 0
        self.closed = 0

    def open(self) -> None:
        self.opened += 1

    def grab(self) -> Picture:
        if self.fail_after is not None and self.count >= self.fail_after:
            raise SourceError("fake camera unplugged")
        time.sleep(0.002)
        self.count += 1
        return Picture(np.full((4, 4, 3), self.count % 256, np.uint8))

    def close(self) -> None:
        self.closed += 1


def test_live_source_hands_the_loop_the_newest_frame_and_counts_drops() -> None:
    grabber = FakeGrabber()
    with LiveSource(grabber) as source:
        first = source.read()
        # A slow frame loop: the capture thread keeps going meanwhile. Waiting on the count, not a
        # fixed sleep, keeps this true on a loaded machine where that thread is scheduled late.
        wait_until(lambda: grabber.count > first.index + 6, what="the capture thread to grab more frames")
        grabbed_before = grabber.count
        second = source.read()
    assert first is not None and second is not None
    # Not the frame after ``first`` (a queue would give that) but the newest one: at most the one
    # frame in flight between grab() and the hand-off is newer than what was counted before.
    assert second.index >= grabbed_before - 2 > first.index + 1
    assert source.dropped >= second.index - first.index - 1 > 0
    assert grabber.closed == 1


def test_live_source_reports_a_failing_camera_as_source_error_and_can_reopen() -> None:
    grabber = FakeGrabber(fail_after=3)
    source = LiveSource(grabber, frame_timeout=2.0)
    source.open()
    with pytest.raises(SourceError, match="unplugged"):
        for _ in range(10):
            source.read()
    source.close()
    grabber.fail_after = None
    with source:
        assert source.read() is not None
    assert (grabber.opened, grabber.closed) == (2, 2)


def test_live_source_that_goes_silent_times_out() -> None:
    gate = threading.Event()

    class Silent(FakeGrabber):
        def grab(self) -> Picture:
            gate.wait(5)
            raise SourceError("released")

    source = LiveSource(Silent(), frame_timeout=0.05)
    with source, pytest.raises(SourceError, match="no frame for 0.05 s"):
        try:
            source.read()
        finally:
            gate.set()


def test_backoff_doubles_up_to_thirty_seconds_and_resets() -> None:
    backoff = Backoff()
    assert [backoff.next_delay() for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    backoff.reset()
    assert backoff.next_delay() == 1


# --- choosing a source ----------------------------------------------------------------------------


def test_make_source_understands_every_documented_form(image_folder: Path) -> None:
    clock = FakeClock()

    def build(name: str) -> object:
        return make_source(SourceConfig(name=name), clock)

    assert build("0").name == "V4L2 camera 0"  # type: ignore[attr-defined]
    assert build("/dev/video3").name == "V4L2 camera 3"  # type: ignore[attr-defined]
    stream = build("rtsp://admin:hunter2@cam.local/stream")
    assert isinstance(stream, LiveSource) and "hunter2" not in stream.name
    assert isinstance(build(str(image_folder)), ImageFolderSource)
    assert isinstance(build(str(SAMPLE_CLIP)), VideoFileSource)
    picam = build("picamera2")
    assert isinstance(picam, LiveSource) and picam.name == "picamera2 camera 0"
    with pytest.raises(SourceError, match="no/such/clip.avi.*rtsp:// or http:// URL"):
        build("no/such/clip.avi")


def test_opencv_camera_that_does_not_exist_is_a_clear_source_error() -> None:
    with pytest.raises(SourceError, match="cannot open V4L2 camera 63"):
        OpenCVCamera(63, 640, 480, 30).open()


def test_auto_without_any_camera_plays_the_sample_only_when_given_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import emocam.edge.capture.factory

    # This machine has neither picamera2 nor /dev/video*; pin that down so the test means it.
    monkeypatch.setattr(emocam.edge.capture.factory, "first_v4l2_camera", lambda: first_v4l2_camera(tmp_path))
    with caplog.at_level(logging.WARNING):
        source = make_source(SourceConfig(name="auto", realtime=False), FakeClock(), sample=SAMPLE_CLIP)
    assert isinstance(source, VideoFileSource) and source.path == SAMPLE_CLIP
    assert "no camera found (picamera2: " in caplog.text
    assert "Connect a camera, or pass --source" in caplog.text
    # The service and every run with a config file: no sample, a clear SourceError (exit 4).
    with pytest.raises(SourceError, match=r"^no camera found \(picamera2: .*\); connect a camera .*video group"):
        make_source(SourceConfig(name="auto"), FakeClock())


def test_first_v4l2_camera_skips_nodes_that_are_not_capture_devices(tmp_path: Path) -> None:
    assert first_v4l2_camera(tmp_path) is None
    (tmp_path / "video12").write_text("")  # not a device: OpenCV cannot open it
    assert first_v4l2_camera(tmp_path) is None
