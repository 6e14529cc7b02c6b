"""Rate-limited warnings for things that can repeat on every frame (a bad frame, a corrupt image).

A camera at 30 fps that fails every frame would otherwise write 30 lines a second to the journal.
The first occurrence is logged at once; after that at most one line per interval, saying how many
were suppressed in between. Time is passed in, so tests need no sleeping.
"""

from __future__ import annotations

import logging


class LogLimiter:
    """Lets one message through per ``interval`` seconds and counts the ones it held back."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self._logger = logger
        self._interval = interval
        self._last: float | None = None
        self._suppressed = 0

    def warning(self, now: float, message: str, *args: object, exc_info: bool = False) -> bool:
        """Log ``message % args`` at WARNING unless one was logged less than ``interval`` ago."""
        if self._last is not None and now - self._last < self._interval:
            self._suppressed += 1
            self._logger.debug(message, *args)
            return False
        if self._suppressed:
            message = f"{message} (and {self._suppressed} more in the last {now - self._last:.0f} s)"  # type: ignore[operator]
        self._logger.warning(message, *args, exc_info=exc_info)
        self._last = now
        self._suppressed = 0
        return True
