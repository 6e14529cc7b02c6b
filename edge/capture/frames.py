"""What every frame source shares: the Frame value, the FrameSource protocol, the clock, reopen back-off.

Every source is a context manager and is always closed. ``read`` returns None only at the end of a
file or folder; a live source that stops delivering raises SourceError, and the daemon reopens it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import TracebackType
from typing import NamedTuple, Protocol, Self

import numpy as np


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame on its way through the pipeline."""

    image: np.ndarray  # H x W x 3, BGR, uint8 (what OpenCV and the face detector take)
    timestamp: float  # seconds: monotonic capture time (live) or media time (files)
    index: int  # frames delivered by this source so far, counting from 0
    # H x W uint8 luma, when the source has it (picamera2's YUV420 stream): the classifier's grey,
    # taken as the sensor pipeline made it instead of from BGR, so it is the same on every CPU.
    gray: np.ndarray | None = None


class Picture(NamedTuple):
    """What a camera hands over for one frame: BGR, and its luma plane when the camera gives one."""

    image: np.ndarray
    gray: np.ndarray | None = None


class Clock(Protocol):
    """Time as the pipeline sees it; tests pass a fake so nothing sleeps for real."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class FrameSource(Protocol):
    """Where frames come from. ``open``/``close`` may be called again to reopen after a failure."""

    name: str
    live: bool  # True: a camera or stream (reopened on failure); False: a file that ends

    @property
    def dropped(self) -> int: ...  # frames replaced before the loop took them, or skipped to keep time

    @property
    def skipped(self) -> int: ...  # unreadable frames or images, logged and passed over

    def open(self) -> None: ...

    def read(self) -> Frame | None: ...  # the newest frame; None at the end of a file or folder

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class SourceBase:
    """Context-manager plumbing and counters shared by the concrete sources."""

    name: str = "source"
    live: bool = False

    def __init__(self) -> None:
        self._dropped = 0
        self._skipped = 0

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def skipped(self) -> int:
        return self._skipped

    def open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Backoff:
    """Exponential delays between reopen attempts: 1, 2, 4 ... capped at 30 s; reset on success."""

    def __init__(self, initial: float = 1.0, maximum: float = 30.0, factor: float = 2.0) -> None:
        self._initial = initial
        self._maximum = maximum
        self._factor = factor
        self._next = initial

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * self._factor, self._maximum)
        return delay

    def reset(self) -> None:
        self._next = self._initial
