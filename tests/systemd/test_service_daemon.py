"""The real daemon under a stand-in for systemd: a notify socket and a watchdog timeout.

systemd's side of the contract is: READY=1 once running, WATCHDOG=1 at about half of
WATCHDOG_USEC for as long as the frame loop turns (and not when it is stuck), STOPPING=1 and exit
0 on SIGTERM. The daemon is started the way the unit starts it (``emocam run --config ...``) on a
folder of real-face frames played in real time, with no broker (events go to stdout).

The stall is real too: frames of the folder are swapped for FIFOs, so the frame loop's next image
read blocks in open(2) the way a wedged camera read blocks.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE_CLIP = REPO / "edge" / "samples" / "astronaut.avi"
FPS = 5.0  # folder playback rate: frames every 0.2 s, well below the watchdog interval
FRAMES = 100  # 20 s of playback: longer than any test here needs
WATCHDOG_USEC = 2_000_000  # pings expected every 1 s
INTERVAL = WATCHDOG_USEC / 2e6
START_TIMEOUT = 60.0  # model + detector load on a busy 2-core machine

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        any(importlib.util.find_spec(m) is None for m in ("emocam.edge.service.daemon", "emocam.edge.service.cli")),
        reason="the daemon (emocam.edge.service.daemon, emocam.edge.service.cli) is not there yet",
    ),
]


@dataclass
class NotifyListener:
    """What systemd would see: every datagram on the notify socket, with its arrival time."""

    sock: socket.socket
    address: str
    received: list[tuple[float, str]] = field(default_factory=list)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float) -> tuple[float, str] | None:
        """The next message matching ``predicate`` within ``timeout`` s, keeping all seen."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                return None
            item = (time.monotonic(), data.decode())
            self.received.append(item)
            if predicate(item[1]):
                return item
        return None

    def drain(self) -> list[str]:
        """Reads what is still queued (after the process has exited); returns every message seen."""
        self.sock.setblocking(False)
        while True:
            try:
                self.received.append((time.monotonic(), self.sock.recv(4096).decode()))
            except BlockingIOError:
                return [message for _, message in self.received]

    def pings(self) -> list[float]:
        return [t for t, message in self.received if "WATCHDOG=1" in message.splitlines()]


@pytest.fixture
def listener() -> Iterator[NotifyListener]:
    # A short directory: AF_UNIX paths are limited to 108 bytes, and pytest's tmp_path can be long.
    directory = tempfile.mkdtemp(prefix="emocam-notify-")
    address = os.path.join(directory, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    yield NotifyListener(sock, address)
    sock.close()
    os.unlink(address)
    os.rmdir(directory)


@pytest.fixture(scope="module")
def frame_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real-face frame of the packaged sample clip, as a JPEG."""
    import cv2

    capture = cv2.VideoCapture(str(SAMPLE_CLIP))
    ok, image = capture.read()
    capture.release()
    assert ok, f"cannot read {SAMPLE_CLIP}"
    path = tmp_path_factory.mktemp("frame") / "astronaut.jpg"
    cv2.imwrite(str(path), image)
    return path


@pytest.fixture
def frames(tmp_path: Path, frame_image: Path) -> Path:
    """A folder of FRAMES images (links to one photo: cheap, and each is a real file)."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(FRAMES):
        (folder / f"frame{i:04d}.jpg").symlink_to(frame_image)
    return folder


@pytest.fixture
def daemon_env(listener: NotifyListener) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMOCAM_", "WATCHDOG_", "NOTIFY_", "CREDENTIALS_"))}
    env.update(NOTIFY_SOCKET=listener.address, WATCHDOG_USEC=str(WATCHDOG_USEC), PYTHONUNBUFFERED="1")
    return env


BASE_CONFIG = f"[source]\nfps = {FPS}\n"


def _start(tmp_path: Path, source: Path, env: dict[str, str], *extra: str) -> subprocess.Popen[bytes]:
    config = tmp_path / "emocam.toml"
    config.write_text(BASE_CONFIG)
    # The console script's entry point, as /opt/emocam/venv/bin/emocam runs it.
    command = [sys.executable, "-c", "import sys; from emocam.edge.service.cli import main; sys.exit(main())"]
    args = ["run", "--config", str(config), "--source", str(source), "--device-id", "systemd-test", *extra]
    # stdout (events) and stderr (log) to files: a full pipe would stall the loop by itself.
    with open(tmp_path / "stdout", "wb") as out, open(tmp_path / "stderr", "wb") as err:
        return subprocess.Popen(command + args, cwd=REPO, env=env, stdout=out, stderr=err)


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise


def _log(tmp_path: Path) -> str:
    return (tmp_path / "stderr").read_text(errors="replace")[-3000:]


def test_ready_then_paced_pings_then_stopping_on_sigterm(
    tmp_path: Path, frames: Path, listener: NotifyListener, daemon_env: dict[str, str]
) -> None:
    process = _start(tmp_path, frames, daemon_env)
    try:
        ready = listener.wait_for(lambda m: "READY=1" in m.splitlines(), START_TIMEOUT)
        assert ready is not None, f"no READY=1; got {listener.received}\n{_log(tmp_path)}"
        for _ in range(3):
            assert listener.wait_for(lambda m: m == "WATCHDOG=1", 4 * INTERVAL), (
                f"pings stopped; got {listener.received}\n{_log(tmp_path)}"
            )
        assert process.poll() is None, _log(tmp_path)
    finally:
        code = _stop(process)
    assert code == 0, _log(tmp_path)
    listener.drain()
    pings = [t for t in listener.pings() if t > ready[0]]
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    # Paced at half the timeout, not per frame (frames are 0.2 s apart), and never so late that
    # systemd would have killed the service.
    assert all(INTERVAL * 0.9 <= gap < 2 * INTERVAL for gap in gaps), gaps
    assert "STOPPING=1" in [m for t, m in listener.received if t >= ready[0]], listener.received


def _unblock_fifos(fifos: list[Path], done: threading.Event) -> None:
    """Opens each FIFO that has a reader waiting, and closes it: the reader gets EOF."""
    while not done.is_set():
        for fifo in fifos:
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: nobody is reading this one (yet)
                continue
            os.close(fd)
        time.sleep(0.02)


def test_a_stalled_frame_loop_stops_the_pings(
    tmp_path: Path, frames: Path, listener: NotifyListener, daemon_env: dict[str, str]
) -> None:
    process = _start(tmp_path, frames, daemon_env)
    fifos: list[Path] = []
    done = threading.Event()
    unblocker = threading.Thread(target=_unblock_fifos, args=(fifos, done), daemon=True)
    try:
        ready = listener.wait_for(lambda m: "READY=1" in m.splitlines(), START_TIMEOUT)
        assert ready is not None, f"no READY=1; got {listener.received}\n{_log(tmp_path)}"
        assert listener.wait_for(lambda m: m == "WATCHDOG=1", 4 * INTERVAL), _log(tmp_path)

        # Every frame from a second ahead of the playback position on becomes a FIFO: whichever
        # of them the loop reads next, its open(2) blocks until a writer turns up.
        ahead = int((time.monotonic() - ready[0] + 1.0) * FPS) + 1
        for path in sorted(frames.iterdir())[ahead:]:
            path.unlink()
            os.mkfifo(path)
            fifos.append(path)
        stalled_from = time.monotonic()

        # systemd would kill the service after WATCHDOG_USEC without a ping: see a gap that long.
        deadline = stalled_from + 10 + 3 * INTERVAL
        last_ping = max(listener.pings())
        while time.monotonic() < deadline and time.monotonic() - last_ping < 3 * INTERVAL:
            listener.wait_for(lambda m: m == "WATCHDOG=1", 0.2)
            last_ping = max(listener.pings())
        assert time.monotonic() - last_ping >= 3 * INTERVAL, (
            f"the pings went on while the frame loop was blocked: {listener.received}\n{_log(tmp_path)}"
        )
        assert process.poll() is None, "the daemon exited instead of hanging"

        # Unblock it: the loop must come back to life (pings resume, or the late frames are skipped
        # to the end of the folder) and still shut down cleanly.
        unblocker.start()
        resumed = listener.wait_for(lambda m: m in ("WATCHDOG=1", "STOPPING=1"), 10 + 4 * INTERVAL)
        assert resumed is not None, f"no sign of life after the stall\n{_log(tmp_path)}"
    finally:
        code = _stop(process)
        done.set()
        if unblocker.is_alive():
            unblocker.join(timeout=5)
    assert code == 0, _log(tmp_path)
    assert "STOPPING=1" in listener.drain(), listener.received


def test_sighup_reload_rejects_bad_config_and_model_then_takes_a_good_one(
    tmp_path: Path, frames: Path, listener: NotifyListener, daemon_env: dict[str, str]
) -> None:
    """systemctl reload = SIGHUP: RELOADING=1, then READY=1 with what happened; never an exit."""
    models = tmp_path / "models"
    models.mkdir()
    bundled = REPO / "edge" / "models" / "emocam-fer6"
    shutil.copy(bundled.with_suffix(".tflite"), models / "good.tflite")
    shutil.copy(bundled.with_suffix(".json"), models / "good.json")
    # A copy cut short: its sha256 no longer matches the sidecar.
    (models / "corrupt.tflite").write_bytes(bundled.with_suffix(".tflite").read_bytes()[:-100])
    shutil.copy(bundled.with_suffix(".json"), models / "corrupt.json")
    config = tmp_path / "emocam.toml"

    def reload(text: str) -> str:
        config.write_text(text)
        process.send_signal(signal.SIGHUP)
        reloading = listener.wait_for(lambda m: m.startswith("RELOADING=1\nMONOTONIC_USEC="), 20)
        assert reloading is not None, f"no RELOADING=1; got {listener.received}\n{_log(tmp_path)}"
        done = listener.wait_for(lambda m: "READY=1" in m.splitlines(), 60)
        assert done is not None, f"no READY=1 after the reload; got {listener.received}\n{_log(tmp_path)}"
        assert process.poll() is None, _log(tmp_path)
        return done[1]

    process = _start(tmp_path, frames, daemon_env)
    try:
        assert listener.wait_for(lambda m: "READY=1" in m.splitlines(), START_TIMEOUT), _log(tmp_path)
        assert "STATUS=reload rejected" in reload(BASE_CONFIG + "bogus_key = 1\n")
        assert "STATUS=reload rejected" in reload(BASE_CONFIG + f'[model]\npath = "{models / "corrupt.tflite"}"\n')
        assert "STATUS=reloaded" in reload(BASE_CONFIG + f'[model]\npath = "{models / "good.tflite"}"\n')
        # Still supervised after all that: the loop goes on pinging.
        assert listener.wait_for(lambda m: m == "WATCHDOG=1", 4 * INTERVAL), _log(tmp_path)
    finally:
        code = _stop(process)
    assert code == 0, _log(tmp_path)
    log = (tmp_path / "stderr").read_text(errors="replace")
    assert "bogus_key" in log and "corrupt.tflite" in log


def test_end_of_input_sends_stopping_and_exits_0(
    tmp_path: Path, listener: NotifyListener, daemon_env: dict[str, str]
) -> None:
    process = _start(tmp_path, SAMPLE_CLIP, daemon_env, "--no-realtime")
    try:
        code = process.wait(timeout=START_TIMEOUT + 30)
    finally:
        _stop(process)
    assert code == 0, _log(tmp_path)
    messages = listener.drain()
    ready = next(i for i, m in enumerate(messages) if "READY=1" in m.splitlines())
    assert "STOPPING=1" in messages[ready:], messages


def _emocam(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_installers_config_check_accepts_the_default_config() -> None:
    # install.sh runs exactly this (as the service user) before it (re)starts the service.
    result = _emocam("check-config", "--config", str(REPO / "edge" / "emocam.toml"))
    assert result.returncode == 0, result.stderr


def test_a_missing_config_exits_with_a_code_the_unit_does_not_restart(tmp_path: Path) -> None:
    unit = (REPO / "systemd" / "emocam.service").read_text()
    prevented = next(line for line in unit.splitlines() if line.startswith("RestartPreventExitStatus="))
    result = _emocam("run", "--config", str(tmp_path / "absent.toml"))
    assert str(result.returncode) in prevented.partition("=")[2].split(), result.stderr
    assert "absent.toml" in result.stderr
