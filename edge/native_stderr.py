"""Route what native libraries (LiteRT, TensorFlow) write straight to file descriptor 2.

Their C++ logging bypasses Python's, so no log level reaches it. For a short call known to print
(loading a library, building an interpreter), fd 2 points at a temporary file; when the call ends,
each line written meanwhile goes to ``route``, and the lines it does not take are written to the
real stderr, in order. Output is held back while the call runs, so this is for start-up calls
only, never for a frame loop.

Python's own log lines are not native output: a log handler writing to stderr is pointed at the
real stderr for the duration, so another thread's warning (the MQTT thread's "cannot connect",
while a camera opens) is neither held back nor taken by ``route``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, Any

_STDERR_FD = 2


@contextlib.contextmanager
def routed_stderr(route: Callable[[str], bool]) -> Iterator[None]:
    """Hold fd 2 during the block; then ``route(line)`` each line (without its newline), and write
    the lines for which it returns False back to stderr. Exceptions pass through after that."""
    _flush_stderr()
    try:
        saved = os.dup(_STDERR_FD)
    except OSError:  # no stderr at all: nothing to hold back
        yield
        return
    real = os.fdopen(saved, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)
    with tempfile.TemporaryFile() as held:
        repointed = _point_stderr_handlers_at(real)
        os.dup2(held.fileno(), _STDERR_FD)
        try:
            yield
        finally:
            _flush_stderr()
            os.dup2(saved, _STDERR_FD)
            for handler, stream in repointed:
                handler.setStream(stream)
            real.close()  # flushes; closefd=False keeps ``saved`` open until here
            os.close(saved)
            held.seek(0)
            kept = b"".join(line for line in held.read().splitlines(keepends=True) if not _taken(route, line))
            while kept:
                kept = kept[os.write(_STDERR_FD, kept) :]


def _point_stderr_handlers_at(real: IO[str]) -> list[tuple[logging.StreamHandler[Any], Any]]:
    """Point every log handler that writes to fd 2 at ``real``; return them with their old streams."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    handlers = {h for lg in loggers if isinstance(lg, logging.Logger) for h in lg.handlers}
    repointed = []
    for handler in handlers:
        if isinstance(handler, logging.StreamHandler) and _writes_to_fd2(handler.stream):
            repointed.append((handler, handler.setStream(real)))
    return repointed


def _writes_to_fd2(stream: Any) -> bool:
    try:
        return bool(stream.fileno() == _STDERR_FD)
    except (AttributeError, OSError, ValueError):
        return False


def _taken(route: Callable[[str], bool], line: bytes) -> bool:
    return route(line.decode("utf-8", "replace").rstrip("\r\n"))


def _flush_stderr() -> None:
    if sys.stderr is not None:
        with contextlib.suppress(OSError, ValueError):  # a closed sys.stderr must not break the call
            sys.stderr.flush()
