"""The systemd notify protocol (READY, STATUS, WATCHDOG, RELOADING, STOPPING), standard library only.

The protocol is one datagram of ``KEY=value`` lines sent to the AF_UNIX socket named by
``$NOTIFY_SOCKET``; a leading ``@`` names the abstract namespace. Outside systemd the variable is
unset and every method is a no-op, so the daemon calls the notifier unconditionally.

Watchdog pings are paced by the caller's clock: ``ping_watchdog(now)`` is cheap enough to call on
every frame and sends ``WATCHDOG=1`` only when half of ``WATCHDOG_USEC`` has passed since the last
one. Calling it from the frame loop (and nowhere else) is what makes a hung camera trip systemd's
watchdog. Send failures are logged once and never raised: supervision must not kill the frame loop.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping
from types import TracebackType

logger = logging.getLogger(__name__)

# sd_watchdog_enabled(3) recommends pinging at half the timeout, so one late ping is survivable.
WATCHDOG_FRACTION = 0.5


class SystemdNotifier:
    """Sends service state to systemd; does nothing when there is no notify socket.

    Build it with :meth:`from_env` in the entry point. The socket is opened on the first message and
    closed by :meth:`close` (or by leaving the ``with`` block). Not thread-safe, on purpose: it
    belongs to the frame loop's thread, and a ping from any other thread would defeat the watchdog.
    """

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        """``address`` is ``$NOTIFY_SOCKET`` as systemd sets it; ``watchdog_usec`` is the timeout."""
        self._address = _socket_address(address) if address else None
        self._watchdog_interval = (
            watchdog_usec * WATCHDOG_FRACTION / 1_000_000
            if self._address is not None and watchdog_usec is not None and watchdog_usec > 0
            else None
        )
        self._last_ping: float | None = None
        self._socket: socket.socket | None = None
        self._send_failed_logged = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str], pid: int | None = None) -> SystemdNotifier:
        """Reads ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` from ``environ``.

        ``pid`` is this process's id (default ``os.getpid()``); the watchdog is only ours when
        ``WATCHDOG_PID`` is unset or equal to it, as ``sd_watchdog_enabled()`` decides.
        """
        address = environ.get("NOTIFY_SOCKET") or None
        watchdog_usec = _parse_watchdog(environ, os.getpid() if pid is None else pid)
        notifier = cls(address, watchdog_usec)
        if notifier.enabled:
            logger.info(
                "systemd notify socket %s, watchdog %s",
                address,
                f"every {notifier.watchdog_interval:.1f} s" if notifier.watchdog_interval else "off",
            )
        return notifier

    @property
    def enabled(self) -> bool:
        """True when systemd is listening (a usable ``NOTIFY_SOCKET`` was given)."""
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between pings (half the watchdog timeout), or None when there is no watchdog."""
        return self._watchdog_interval

    def ready(self, status: str | None = None) -> None:
        """Start-up (or a reload) is complete: the service is doing its job."""
        self._send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> None:
        """A one-line, human-readable state shown by ``systemctl status``."""
        self._send(f"STATUS={text}")

    def reloading(self, now: float | None = None) -> None:
        """A reload has begun; call :meth:`ready` when it is done (or rejected and the old one kept).

        ``MONOTONIC_USEC`` is what ``Type=notify-reload`` (systemd 253+) requires; older systemd
        ignores it. ``now`` is ``time.monotonic()`` (CLOCK_MONOTONIC, systemd's clock).
        """
        usec = int((time.monotonic() if now is None else now) * 1_000_000)
        self._send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> None:
        """Shutdown has begun; systemd stops expecting watchdog pings."""
        self._send("STOPPING=1")

    def watchdog_due(self, now: float) -> bool:
        """True when a watchdog is active and a ping is due at monotonic time ``now`` (seconds)."""
        if self._watchdog_interval is None:
            return False
        return self._last_ping is None or now - self._last_ping >= self._watchdog_interval

    def ping_watchdog(self, now: float) -> bool:
        """Sends ``WATCHDOG=1`` if one is due at ``now``; returns whether it sent one.

        Call it once per frame-loop iteration with ``time.monotonic()``.
        """
        if not self.watchdog_due(now):
            return False
        # The ping counts as done even if sending failed: retrying every frame would only
        # spam a broken socket, and systemd will act on the missing pings anyway.
        self._last_ping = now
        return self._send("WATCHDOG=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> SystemdNotifier:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, *lines: str) -> bool:
        if self._address is None:
            return False
        message = "\n".join(lines).encode()
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.sendto(message, self._address)
        except OSError as exc:
            # Once, at WARNING: a broken notify socket repeats on every frame.
            if not self._send_failed_logged:
                self._send_failed_logged = True
                logger.warning("cannot notify systemd at %s: %s (further failures logged at DEBUG)", self._address, exc)
            else:
                logger.debug("cannot notify systemd: %s", exc)
            return False
        return True


def _socket_address(value: str) -> str | None:
    """``$NOTIFY_SOCKET`` as a ``sendto`` address: a path, or ``\\0name`` for the abstract namespace."""
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    # systemd 254+ may also hand out vsock: addresses (VMs); a camera daemon never runs that way.
    logger.warning("ignoring unsupported NOTIFY_SOCKET %r (want a path or @abstract name)", value)
    return None


def _parse_watchdog(environ: Mapping[str, str], pid: int) -> int | None:
    raw_usec = environ.get("WATCHDOG_USEC")
    if not raw_usec:
        return None
    raw_pid = environ.get("WATCHDOG_PID")
    if raw_pid:
        try:
            if int(raw_pid) != pid:
                # The watchdog belongs to another process (we were forked or exec'd from it).
                return None
        except ValueError:
            logger.warning("ignoring watchdog: bad WATCHDOG_PID %r", raw_pid)
            return None
    try:
        usec = int(raw_usec)
    except ValueError:
        logger.warning("ignoring watchdog: bad WATCHDOG_USEC %r", raw_usec)
        return None
    if usec <= 0:
        logger.warning("ignoring watchdog: bad WATCHDOG_USEC %r", raw_usec)
        return None
    return usec
