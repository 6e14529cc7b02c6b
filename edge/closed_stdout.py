"""Standard output that is closed, before or while emocam writes to it (``>&-``, ``| head -n 1``).

Shared by ``emocam run`` (events as JSON lines) and ``emocam listen``: a reader that stopped
reading chose to, so both stop cleanly with exit 0, the way ``yes | head`` does.
"""

from __future__ import annotations

import os
import sys


def stdout_usable() -> bool:
    """False when file descriptor 1 is closed (``emocam run >&-``): Python then sets stdout to None."""
    if sys.stdout is None:
        return False
    try:
        os.fstat(sys.stdout.fileno())
    except OSError:
        return False  # a stream object over a closed descriptor
    except (AttributeError, ValueError):
        pass  # not a real file (a test capturing stdout): writes go to it
    return True


def discard_stdout() -> None:
    """Point file descriptor 1 at /dev/null, as Python's docs advise after a BrokenPipeError: what
    is still buffered, and the flush at exit, then go nowhere instead of failing again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (a test capturing stdout): nothing to redirect
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)
