"""emocam.edge.native_stderr: what C++ writes to file descriptor 2 is routed, the rest kept in order."""

from __future__ import annotations

import os

import pytest

from emocam.edge.native_stderr import routed_stderr


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
