"""The picamera2 adapter under a fake Picamera2 that hands out real RGB888 and YUV420 buffers.

The fake follows picamera2's own array shapes (``Picamera2.capture_arrays``): RGB888 as H x W x 3
(B, G, R in memory), YUV420 as one (H * 3/2, stride) array, Y plane on top, U and V below, with a
stride padded past the width as libcamera does for widths that are not a multiple of 64.
"""

from __future__ import annotations

import itertools
import sys
import types
from typing import Any

import cv2
import numpy as np
import pytest

from emocam.edge.capture.live import LiveSource
from emocam.edge.capture.picamera import Picamera2Camera, luma_plane
from emocam.edge.errors import SourceError
from emocam.edge.vision.align import align_face
from emocam.edge.vision.faces import Face
from tests.edge.conftest import sample_frames


def yuv420_buffer(bgr: np.ndarray, stride: int) -> np.ndarray:
    """``bgr`` as libcamera's YUV420 (I420) with each row padded to ``stride`` bytes."""
    height, width = bgr.shape[:2]
    i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)  # (H * 3/2, W): Y, then U and V
    padded = np.full((height * 3 // 2, stride), 77, np.uint8)  # padding bytes are junk, never 0
    padded[:height, :width] = i420[:height]
    # U and V rows are half as wide: lay them out as I420 does, two chroma rows per buffer row.
    chroma = i420[height:].reshape(-1, width // 2)
    for row in range(0, chroma.shape[0], 2):
        padded[height + row // 2, : width // 2] = chroma[row]
        padded[height + row // 2, stride // 2: stride // 2 + width // 2] = chroma[row + 1]
    return padded


class FakePicamera2:
    """The part of picamera2.Picamera2 the adapter uses, over a list of BGR frames."""

    instances: list[FakePicamera2] = []
    stride = 0  # set by the test: the YUV420 row stride in bytes

    def __init__(self, camera_num: int = 0) -> None:
        self.camera_num = camera_num
        self.frames = itertools.cycle(FakePicamera2.source)  # a camera never runs out
        self.config: dict[str, Any] = {}
        self.started = self.closed = False
        FakePicamera2.instances.append(self)

    source: list[np.ndarray] = []

    @staticmethod
    def global_camera_info() -> list[dict[str, Any]]:
        return [{"Model": "imx708", "Num": 0}]

    def create_video_configuration(self, **kwargs: Any) -> dict[str, Any]:
        return kwargs

    def configure(self, config: dict[str, Any]) -> None:
        self.config = config

    def camera_configuration(self) -> dict[str, Any]:
        return self.config

    def start(self) -> None:
        self.started = True

    def capture_arrays(self, names: list[str]) -> tuple[list[np.ndarray], dict[str, Any]]:
        assert names == ["main", "lores"]
        bgr = next(self.frames)
        return [bgr.copy(), yuv420_buffer(bgr, self.stride)], {"SensorTimestamp": 0}

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_picamera2(monkeypatch: pytest.MonkeyPatch) -> type[FakePicamera2]:
    picamera2 = types.ModuleType("picamera2")
    picamera2.Picamera2 = FakePicamera2  # type: ignore[attr-defined]
    libcamera = types.ModuleType("libcamera")
    libcamera.ColorSpace = types.SimpleNamespace(Sycc=lambda: "sYCC")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", picamera2)
    monkeypatch.setitem(sys.modules, "libcamera", libcamera)
    FakePicamera2.instances = []
    return FakePicamera2


@pytest.mark.parametrize(("width", "height", "stride"), [(640, 480, 640), (500, 376, 512)])
def test_the_adapter_hands_out_bgr_and_the_isps_own_luma(
    fake_picamera2: type[FakePicamera2], width: int, height: int, stride: int
) -> None:
    frames = [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in sample_frames()[:3]]
    fake_picamera2.source, fake_picamera2.stride = frames, stride
    camera = Picamera2Camera(width, height, fps=30.0)
    camera.open()
    config = fake_picamera2.instances[0].config
    assert config["main"] == {"format": "RGB888", "size": (width, height)}
    assert config["lores"] == {"format": "YUV420", "size": (width, height)}
    assert config["colour_space"] == "sYCC"  # full-range luma, as JPEG and FER-2013 have
    picture = camera.grab()
    camera.close()
    assert fake_picamera2.instances[0].closed
    assert np.array_equal(picture.image, frames[0])
    expected_y = cv2.cvtColor(frames[0], cv2.COLOR_BGR2YUV_I420)[:height]
    assert picture.gray is not None and picture.gray.shape == (height, width)
    assert np.array_equal(picture.gray, expected_y)  # the padding (77s) is cut off


def test_live_frames_carry_the_luma_and_alignment_uses_it(fake_picamera2: type[FakePicamera2]) -> None:
    frames = sample_frames()[:2]
    fake_picamera2.source, fake_picamera2.stride = frames, frames[0].shape[1]
    with LiveSource(Picamera2Camera(frames[0].shape[1], frames[0].shape[0], fps=30.0)) as source:
        frame = source.read()
    assert frame is not None and frame.gray is not None
    face = Face((250.0, 150.0, 140.0, 140.0), 0.9, ((290.0, 200.0), (350.0, 200.0)))
    # The crop from the luma plane is the crop from the grey the source handed over, exactly.
    assert np.array_equal(align_face(frame.gray, face), align_face(frame.gray.copy(), face))
    # And it is within rounding of the CPU's BGR -> grey, so the model sees the same face.
    difference = np.abs(align_face(frame.gray, face).astype(int) - align_face(frame.image, face).astype(int))
    assert difference.max() <= 2


def test_a_yuv420_buffer_of_the_wrong_shape_is_a_source_error() -> None:
    with pytest.raises(SourceError, match=r"YUV420 buffer is \(480, 640\), expected \(720, >= 640\)"):
        luma_plane(np.zeros((480, 640), np.uint8), (640, 480))
