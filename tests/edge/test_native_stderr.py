"""emocam.edge.native_stderr: what C++ writes to file descriptor 2 is routed, the rest kept in order."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from emocam.edge.native_stderr import routed_stderr
from tests.edge.conftest import REPO


def test_routed_lines_are_taken_and_the_rest_written_back_in_order(capfd: pytest.CaptureFixture[str]) -> None:
    taken: list[str] = []

    def route(line: str) -> bool:
        if line.startswith("INFO: "):
            taken.append(line)
            return True
        return False

    with routed_stderr(route):
        os.write(2, b"INFO: Created a delegate.\nkept one\n")
        os.write(2, b"INFO: second\nkept two, no newline")
        assert capfd.readouterr().err == ""  # held back while the block runs
    assert taken == ["INFO: Created a delegate.", "INFO: second"]
    assert capfd.readouterr().err == "kept one\nkept two, no newline"


def test_lines_are_written_back_when_the_block_raises(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(RuntimeError, match="boom"), routed_stderr(lambda line: False):
        os.write(2, b"why it failed\n")
        raise RuntimeError("boom")
    assert capfd.readouterr().err == "why it failed\n"
    os.write(2, b"after\n")  # fd 2 is the real stderr again
    assert capfd.readouterr().err == "after\n"


# Another thread logs while the main thread holds fd 2: the MQTT thread's "cannot connect" warning
# while a video file opens. The route (OpenCV's takes every line to the debug log) must not get it.
_LOG_WHILE_HELD = """
import logging, sys, threading
from emocam.edge.native_stderr import routed_stderr
from tests.edge.conftest import REPO
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
taken = []
with routed_stderr(lambda line: taken.append(line) or True):
    worker = threading.Thread(target=lambda: logging.getLogger("other").warning("from another thread"))
    worker.start()
    worker.join()
    import os
    os.write(2, b"native line\\n")
logging.getLogger("main").info("taken %s", taken)
"""


def test_another_threads_log_line_reaches_stderr_and_not_the_route() -> None:
    result = subprocess.run([sys.executable, "-c", _LOG_WHILE_HELD], capture_output=True, text=True, timeout=60,
                            cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == ["WARNING other: from another thread", "INFO main: taken ['native line']"]
