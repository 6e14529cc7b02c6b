"""The notify protocol against real AF_UNIX datagram sockets, with time passed in."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from emocam.edge.service.sdnotify import SystemdNotifier


def _receive(sock: socket.socket) -> list[str]:
    """Every datagram waiting on ``sock``, decoded."""
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            return messages


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """A filesystem notify socket, as systemd creates /run/systemd/notify."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    yield str(path), sock
    sock.close()


def test_ready_status_stopping_reach_the_socket(notify_socket: tuple[str, socket.socket]) -> None:
    address, sock = notify_socket
    with SystemdNotifier.from_env({"NOTIFY_SOCKET": address}) as notifier:
        assert notifier.enabled
        notifier.ready()
        notifier.status("3 faces, 14.8 fps")
        notifier.ready(status="running")
        notifier.stopping()
    assert _receive(sock) == ["READY=1", "STATUS=3 faces, 14.8 fps", "READY=1\nSTATUS=running", "STOPPING=1"]


def test_abstract_namespace_socket() -> None:
    name = f"emocam-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.setblocking(False)
    try:
        with SystemdNotifier.from_env({"NOTIFY_SOCKET": "@" + name}) as notifier:
            notifier.ready()
        assert _receive(sock) == ["READY=1"]
    finally:
        sock.close()


def test_reloading_carries_monotonic_usec(notify_socket: tuple[str, socket.socket]) -> None:
    address, sock = notify_socket
    with SystemdNotifier.from_env({"NOTIFY_SOCKET": address}) as notifier:
        notifier.reloading(now=12.5)
    assert _receive(sock) == ["RELOADING=1\nMONOTONIC_USEC=12500000"]


def test_watchdog_pings_at_half_the_timeout(notify_socket: tuple[str, socket.socket]) -> None:
    address, sock = notify_socket
    env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    with SystemdNotifier.from_env(env) as notifier:
        assert notifier.watchdog_interval == pytest.approx(15.0)
        # The first call pings at once: systemd arms the watchdog at READY=1, just before the loop.
        sent = [notifier.ping_watchdog(t) for t in (100.0, 100.1, 110.0, 114.9, 115.0, 116.0, 129.9, 130.0)]
        assert not notifier.watchdog_due(131.0)
        assert notifier.watchdog_due(145.0)
    assert sent == [True, False, False, False, True, False, False, True]
    assert _receive(sock) == ["WATCHDOG=1"] * 3


def test_watchdog_of_another_process_is_not_ours(notify_socket: tuple[str, socket.socket]) -> None:
    address, sock = notify_socket
    env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}
    notifier = SystemdNotifier.from_env(env, pid=4242)
    assert notifier.enabled and notifier.watchdog_interval is None
    assert not notifier.watchdog_due(0.0)
    assert not notifier.ping_watchdog(0.0)
    assert _receive(sock) == []


@pytest.mark.parametrize("usec", ["", "0", "-5", "thirty"])
def test_bad_or_missing_watchdog_usec_disables_the_watchdog(usec: str) -> None:
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": "/nonexistent/notify", "WATCHDOG_USEC": usec})
    assert notifier.watchdog_interval is None


def test_noop_without_notify_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    # Even a watchdog variable alone must not make it try to send anything.
    def no_sockets(*args: object, **kwargs: object) -> None:
        raise AssertionError("opened a socket without NOTIFY_SOCKET")

    monkeypatch.setattr(socket, "socket", no_sockets)
    notifier = SystemdNotifier.from_env({"WATCHDOG_USEC": "1000000"})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    notifier.ready()
    notifier.status("x")
    notifier.reloading(now=1.0)
    notifier.stopping()
    assert not notifier.ping_watchdog(5.0)
    notifier.close()


def test_unsupported_address_is_ignored() -> None:
    assert not SystemdNotifier.from_env({"NOTIFY_SOCKET": "vsock:2:1234"}).enabled


def test_send_failures_are_logged_once_and_never_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Nothing listens there: sendto fails with ENOENT on every call.
    env = {"NOTIFY_SOCKET": str(tmp_path / "gone"), "WATCHDOG_USEC": "2000000"}
    notifier = SystemdNotifier.from_env(env)
    with caplog.at_level(logging.DEBUG, logger="emocam.edge.service.sdnotify"):
        notifier.ready()
        assert not notifier.ping_watchdog(0.0)
        notifier.stopping()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert str(tmp_path / "gone") in warnings[0].getMessage()
    # A failed ping still resets the pacing, so a dead socket is not retried on every frame.
    assert not notifier.watchdog_due(0.5)
    notifier.close()
