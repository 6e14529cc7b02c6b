"""A fleet on one broker: N simulated cameras publish valid events, ``emocam listen`` reads them.

    python bench/fleet_load.py                                   # 1,000 cameras x 20 events, QoS 1, full speed
    python bench/fleet_load.py --listeners 2 --share fleet       # two listeners split the events
    python bench/fleet_load.py --format readable --rate 5000     # 5,000 events/s, readable lines
    python bench/fleet_load.py --broker mqtt://127.0.0.1:1883 --json

Each camera is a real MQTT connection (paho-mqtt, MQTT 5 unless ``--protocol 3.1.1``) that
publishes schema-1 events built by ``emocam.edge.mqtt.wire.event_payload`` on ``emocam/<device>/events``:
event k of a camera has ``face`` = ``seq`` = k, so every line a listener prints names the event
it relays. All cameras share one epoll loop on this thread. ``--rate 0`` (the default) is "as
fast as acknowledged": each camera keeps ``--window`` messages unacknowledged (QoS 0: unwritten).

Listeners are ``emocam listen`` processes (``--format json|readable|summary``) started on the
same broker; their stdout is read here. The report says what was sent, acknowledged by the
broker, received by the listeners (once each, or by every listener without ``--share``), lost,
the rates, the latency from ``publish()`` to the listener's line (percentiles), and each
listener's peak RSS and CPU time after start-up. ``--burst`` stops the listeners while the
fleet publishes and resumes them after the last acknowledgement: the rate at which they then
drain the broker's backlog is the listener's own throughput, whatever the generator manages.
Without ``--broker``, a stock Mosquitto (a listener line and ``allow_anonymous true``, nothing
tuned) is started on a free loopback port and its log is searched for dropped messages. Only
loopback brokers are accepted, and the whole run ends within ``--timeout`` seconds. Run it with
``nice -n 19`` on a shared machine; the numbers of a busy machine say more about the scheduler
than about the code.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emocam.edge.mqtt.settings import parse_broker_url  # noqa: E402
from emocam.edge.mqtt.wire import EmotionEvent, event_payload  # noqa: E402

LABELS = ("angry", "fear", "happy", "neutral", "sad", "surprise")
READY_TIMEOUT = 20.0  # seconds for the broker and the listeners to be ready


# ---- the broker ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StockMosquitto:
    """``mosquitto -c`` with a listener line and anonymous access: every limit at its default."""

    def __init__(self, workdir: Path, children: list[subprocess.Popen[bytes]]) -> None:
        executable = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(executable).is_file():
            raise SystemExit("mosquitto is not installed: apt-get install -y mosquitto, or give --broker")
        self.port = free_port()
        self.log = workdir / "mosquitto.log"
        config = workdir / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true", f"log_dest file {self.log}"]
        if os.geteuid() == 0:
            lines.append("user root")  # as root, mosquitto would switch to the 'mosquitto' user
        config.write_text("\n".join(lines) + "\n")
        self.process = subprocess.Popen([executable, "-c", str(config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        children.append(self.process)
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"mosquitto did not start on port {self.port}") from None
                time.sleep(0.01)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def peak_rss_mb(self) -> float | None:
        return _peak_rss_mb(self.process.pid)

    def dropped_notices(self) -> int:
        """Lines where mosquitto says it dropped messages for a client (its only report of it)."""
        if not self.log.is_file():
            return 0
        return sum("dropped" in line.lower() for line in self.log.read_text(errors="replace").splitlines())

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def require_loopback(host: str) -> None:
    """Refuse a broker that is not on this machine: a load test must never leave it."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror as exc:
        raise SystemExit(f"--broker host {host!r} does not resolve: {exc}") from None
    if not addresses or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise SystemExit(f"--broker host {host!r} is not loopback ({', '.join(sorted(addresses))}); "
                         "this generator only loads a broker on this machine")


def _proc_status(pid: int, key: str) -> str | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def _peak_rss_mb(pid: int) -> float | None:
    value = _proc_status(pid, "VmHWM")
    return int(value.split()[0]) / 1024 if value else None


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


# ---- the cameras ---------------------------------------------------------------------------


def make_payloads(device: str, count: int) -> list[bytes]:
    """``count`` valid events of one device: event k has face k and seq k (appeared, then changed)."""
    out = []
    for k in range(1, count + 1):
        emotion, previous = LABELS[k % len(LABELS)], LABELS[(k - 1) % len(LABELS)]
        scores = tuple(0.75 if label == emotion else 0.05 for label in LABELS)
        event = EmotionEvent("appeared" if k == 1 else "changed", k, emotion, 0.75, LABELS, scores,
                             (0.4125, 0.2208, 0.1797, 0.2396), time.time(), None if k == 1 else previous)
        payload = event_payload(event, device, "1.3.0", seq=k)
        out.append(json.dumps(payload, separators=(",", ":")).encode())
    return out


@dataclass
class Camera:
    index: int
    device: str
    client: mqtt.Client
    payloads: list[bytes]
    next: int = 0  # index of the next payload to publish
    inflight: int = 0
    connected: bool = False
    sent_at: list[float] = field(default_factory=list)


class Fleet:
    """N paho clients on one selector; publishes and counts acknowledgements."""

    def __init__(self, host: str, port: int, cameras: int, events: int, qos: int, protocol: str, run: str) -> None:
        self.host, self.port, self.qos = host, port, qos
        self.selector = selectors.DefaultSelector()
        self.cameras: list[Camera] = []
        self.acked = 0
        self.refused = 0
        self.sent = 0
        self.last_ack = 0.0
        self.ready: deque[Camera] = deque()
        self.window = 1
        version = mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311
        for i in range(cameras):
            device = f"{run}-{i:04d}"
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{device}", protocol=version)
            camera = Camera(i, device, client, make_payloads(device, events), sent_at=[0.0] * events)
            client.user_data_set(camera)
            client.on_socket_open = self._on_socket_open
            client.on_socket_close = self._on_socket_close
            client.on_socket_register_write = self._on_register_write
            client.on_socket_unregister_write = self._on_unregister_write
            client.on_connect = self._on_connect
            client.on_publish = self._on_publish
            self.cameras.append(camera)

    # selector plumbing (paho's external-loop callbacks)
    def _on_socket_open(self, client: mqtt.Client, camera: Camera, sock: Any) -> None:
        self.selector.register(sock, selectors.EVENT_READ, camera)

    def _on_socket_close(self, client: mqtt.Client, camera: Camera, sock: Any) -> None:
        self.selector.unregister(sock)

    def _on_register_write(self, client: mqtt.Client, camera: Camera, sock: Any) -> None:
        self.selector.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, camera)

    def _on_unregister_write(self, client: mqtt.Client, camera: Camera, sock: Any) -> None:
        self.selector.modify(sock, selectors.EVENT_READ, camera)

    def _on_connect(self, client: mqtt.Client, camera: Camera, flags: Any, reason: Any, props: Any) -> None:
        camera.connected = not reason.is_failure

    def _on_publish(self, client: mqtt.Client, camera: Camera, mid: int, reason: Any, props: Any) -> None:
        camera.inflight -= 1
        # MQTT 5: 0x10 "no matching subscribers" is a success code and still an accepted message.
        if reason.is_failure:
            self.refused += 1
        else:
            self.acked += 1
        self.last_ack = time.monotonic()
        if camera.next < len(camera.payloads):
            self.ready.append(camera)

    def poll(self, timeout: float) -> None:
        for key, mask in self.selector.select(timeout):
            client = key.data.client
            if mask & selectors.EVENT_READ:
                client.loop_read()
            if mask & selectors.EVENT_WRITE:
                client.loop_write()

    def misc(self) -> None:
        for camera in self.cameras:
            camera.client.loop_misc()

    def connect(self, deadline: float) -> float:
        """Connect every camera (in batches, so the broker's accept backlog never overflows)."""
        started = time.monotonic()
        for start in range(0, len(self.cameras), 100):
            for camera in self.cameras[start:start + 100]:
                camera.client.connect(self.host, self.port, keepalive=60)
            while not all(c.connected for c in self.cameras[start:start + 100]):
                if time.monotonic() > deadline:
                    raise SystemExit(f"only {sum(c.connected for c in self.cameras)} cameras connected in time")
                self.poll(0.05)
        return time.monotonic() - started

    def publish(self, camera: Camera) -> None:
        k = camera.next
        camera.next += 1
        camera.inflight += 1
        camera.sent_at[k] = time.monotonic()
        info = camera.client.publish(f"emocam/{camera.device}/events", camera.payloads[k], qos=self.qos)
        self.sent += 1
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            camera.inflight -= 1
            self.refused += 1

    def run(self, rate: float, window: int, deadline: float) -> None:
        """Publish everything: at ``rate`` events/s in all, or as fast as acknowledged."""
        total = sum(len(c.payloads) for c in self.cameras)
        order = [c for k in range(len(self.cameras[0].payloads)) for c in self.cameras] if self.cameras else []
        started, published, last_misc = time.monotonic(), 0, time.monotonic()
        if not rate:
            for camera in self.cameras:
                for _ in range(min(window, len(camera.payloads))):
                    self.publish(camera)
        while self.acked + self.refused < total and time.monotonic() < deadline:
            if rate:
                due = min(total, int((time.monotonic() - started) * rate) + 1)
                while published < due:
                    self.publish(order[published])
                    published += 1
            else:
                while self.ready:
                    camera = self.ready.popleft()
                    while camera.inflight < window and camera.next < len(camera.payloads):
                        self.publish(camera)
            self.poll(0.001 if rate else 0.05)
            if time.monotonic() - last_misc > 1.0:
                self.misc()
                last_misc = time.monotonic()

    def disconnect(self) -> None:
        for camera in self.cameras:
            camera.client.disconnect()
        for _ in range(20):
            self.poll(0.01)


# ---- the listeners -------------------------------------------------------------------------


@dataclass
class Listener:
    """One ``emocam listen`` process; its stdout lines are matched to events on a thread."""

    process: subprocess.Popen[bytes]
    stderr_path: Path
    received: list[list[float]]  # [camera][event] -> arrival time (0 = not yet)
    count: int = 0
    duplicates: int = 0
    unknown: int = 0
    summary_events: int = 0
    last_line_at: float = 0.0
    peak_rss_mb: float | None = None
    cpu_s: float | None = None
    cpu_at_start: float = 0.0  # CPU seconds spent starting up, subtracted from cpu_s
    thread: threading.Thread | None = None

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def start_listener(url: str, fmt: str, share: str | None, run: str, cameras: int, events: int,
                   workdir: Path, number: int, children: list[subprocess.Popen[bytes]]) -> Listener:
    args = [sys.executable, "-m", "edge", "listen", "--broker", url]
    if fmt == "json":
        args.append("--json")
    elif fmt == "summary":
        args += ["--summary", "1", "--json"]  # rows every second, so the drain below sees progress
    if share:
        args += ["--share", share]
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMOCAM_")}
    stderr_path = workdir / f"listen-{number}.err"
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr_path.open("wb"), cwd=REPO, env=env)
    children.append(process)
    listener = Listener(process, stderr_path, [[0.0] * events for _ in range(cameras)])
    listener.thread = threading.Thread(target=_read_lines, args=(listener, fmt, run), daemon=True)
    listener.thread.start()
    return listener


def _read_lines(listener: Listener, fmt: str, run: str) -> None:
    assert listener.process.stdout is not None
    prefix = run + "-"
    for raw in listener.process.stdout:
        now = time.monotonic()
        line = raw.decode("utf-8", "replace").rstrip("\n")
        try:
            if fmt == "json":
                data = json.loads(line)
                device, face = data["device"], data["face"]
            elif fmt == "readable":  # date time  device  face N  emotion 0.xx  what
                parts = line.split("  ")
                device, face = parts[1], int(parts[2].split()[1])
            else:
                row = json.loads(line)
                if str(row.get("device", "")).startswith(prefix):
                    listener.summary_events += row["events"]
                    listener.last_line_at = now  # within a window (1 s) of the events it counts
                continue
        except (ValueError, KeyError, IndexError):
            listener.unknown += 1
            continue
        if not device.startswith(prefix):
            listener.unknown += 1
            continue
        slot = listener.received[int(device[len(prefix):])]
        if slot[face - 1]:
            listener.duplicates += 1
        else:
            slot[face - 1] = now
            listener.count += 1


def wait_subscribed(listeners: list[Listener], deadline: float) -> None:
    for listener in listeners:
        while "subscribed to" not in listener.stderr:
            if listener.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"a listener did not subscribe (exit {listener.process.poll()}):\n{listener.stderr}")
            time.sleep(0.02)
        listener.cpu_at_start = _cpu_seconds(listener.process.pid) or 0.0


def stop_listener(listener: Listener) -> None:
    listener.peak_rss_mb = _peak_rss_mb(listener.process.pid)
    cpu = _cpu_seconds(listener.process.pid)
    listener.cpu_s = None if cpu is None else cpu - listener.cpu_at_start
    if listener.process.poll() is None:
        listener.process.send_signal(signal.SIGINT)
        try:
            listener.process.wait(10)
        except subprocess.TimeoutExpired:
            listener.process.kill()
            listener.process.wait()
    if listener.thread is not None:
        listener.thread.join(5)


# ---- the run -------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def raise_open_files(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise SystemExit(f"{needed} open files needed, the hard limit is {hard}: raise it (ulimit -Hn)")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def measure(args: argparse.Namespace, children: list[subprocess.Popen[bytes]]) -> dict[str, Any]:
    """One run; every process it starts is put in ``children``, for the hard time limit to end."""
    deadline = time.monotonic() + args.timeout
    run = f"fl{uuid.uuid4().hex[:6]}"
    raise_open_files(args.cameras + 256)  # the broker, started from here, inherits the limit too
    workdir = Path(tempfile.mkdtemp(prefix="fleet-load-"))
    broker: StockMosquitto | None = None
    listeners: list[Listener] = []
    fleet: Fleet | None = None
    try:
        if args.broker:
            address = parse_broker_url(args.broker)
            require_loopback(address.host)
            host, port, url = address.host, address.port, args.broker
        else:
            broker = StockMosquitto(workdir, children)
            host, port, url = "127.0.0.1", broker.port, broker.url
        listeners = [start_listener(url, args.format, args.share, run, args.cameras, args.events, workdir, n,
                                    children) for n in range(args.listeners)]
        wait_subscribed(listeners, min(deadline, time.monotonic() + READY_TIMEOUT))
        fleet = Fleet(host, port, args.cameras, args.events, args.qos, args.protocol, run)
        connect_s = fleet.connect(deadline)
        if args.burst:  # the listeners sleep while the fleet publishes: the broker holds everything
            for listener in listeners:
                listener.process.send_signal(signal.SIGSTOP)
        cpu_before = time.process_time()
        started = time.monotonic()
        fleet.run(args.rate, args.window, deadline)
        send_s = (fleet.last_ack or time.monotonic()) - started
        generator_cpu = time.process_time() - cpu_before
        resumed = time.monotonic()
        if args.burst:
            for listener in listeners:
                listener.process.send_signal(signal.SIGCONT)

        # Drain: until every acknowledged event arrived, or nothing new came for --drain seconds.
        def arrived() -> int:
            return sum(listener.summary_events if args.format == "summary" else listener.count
                       for listener in listeners)

        want = fleet.acked * (1 if args.share else len(listeners))
        seen, quiet_since = arrived(), time.monotonic()
        while listeners and seen < want and time.monotonic() < deadline and time.monotonic() - quiet_since < args.drain:
            time.sleep(0.05)
            if arrived() != seen:
                seen, quiet_since = arrived(), time.monotonic()
        for listener in listeners:
            stop_listener(listener)
        fleet.disconnect()
        return report(args, fleet, listeners, broker, connect_s, send_s, resumed if args.burst else started,
                      generator_cpu)
    finally:
        for listener in listeners:
            if listener.process.poll() is None:
                listener.process.kill()
                listener.process.wait()
        if broker is not None:
            broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def report(args: argparse.Namespace, fleet: Fleet, listeners: list[Listener], broker: StockMosquitto | None,
           connect_s: float, send_s: float, started: float, generator_cpu: float) -> dict[str, Any]:
    total = args.cameras * args.events
    latencies: list[float] = []
    last_arrival = 0.0
    union = 0
    per_listener = []
    for c, camera in enumerate(fleet.cameras):
        for k in range(args.events):
            times = [listener.received[c][k] for listener in listeners if listener.received[c][k]]
            if times:
                union += 1
                first = min(times)
                latencies.append((first - camera.sent_at[k]) * 1000)
                last_arrival = max(last_arrival, max(times))
    for listener in listeners:
        received = listener.summary_events if args.format == "summary" else listener.count
        stderr = listener.stderr
        per_listener.append({
            "received": received,
            "duplicates": listener.duplicates,
            "unmatched_lines": listener.unknown,
            "peak_rss_mb": round(listener.peak_rss_mb, 1) if listener.peak_rss_mb else None,
            "cpu_s": round(listener.cpu_s, 2) if listener.cpu_s is not None else None,
            "cpu_us_per_event": round(listener.cpu_s / received * 1e6, 1) if listener.cpu_s and received else None,
            "warnings": [line for line in stderr.splitlines() if line.startswith(("WARNING", "ERROR"))][:5],
            "exit_code": listener.process.returncode,
        })
    if args.format == "summary":
        received = sum(p["received"] for p in per_listener)
        lost = fleet.acked * (1 if args.share else len(listeners)) - received
    elif args.share or len(listeners) <= 1:
        received, lost = union, fleet.acked - union
    else:
        received = min((p["received"] for p in per_listener), default=0)
        lost = fleet.acked - received  # every listener must have had every event
    if args.format == "summary":  # no arrival per event: the last row with a count in it
        last_arrival = max((listener.last_line_at for listener in listeners), default=0.0)
    window_s = (last_arrival - started) if last_arrival else None  # from the first publish (--burst: the resume)
    return {
        "command": " ".join(sys.argv),
        "cameras": args.cameras,
        "events_per_camera": args.events,
        "qos": args.qos,
        "protocol": args.protocol,
        "rate": args.rate or "as fast as acknowledged",
        "burst": args.burst,
        "format": args.format,
        "listeners": args.listeners,
        "share": args.share,
        "connect_s": round(connect_s, 2),
        "total": total,
        "sent": fleet.sent,
        "acked": fleet.acked,
        "refused": fleet.refused,
        "received": received if listeners else None,
        "lost": lost if listeners else None,
        "duplicates": sum(p["duplicates"] for p in per_listener),
        "send_s": round(send_s, 2),
        "acked_per_s": round(fleet.acked / send_s) if send_s > 0 else None,
        "received_per_s": round(received / window_s) if window_s and listeners else None,
        "latency_ms": {
            "p50": _round(percentile(latencies, 50)),
            "p90": _round(percentile(latencies, 90)),
            "p99": _round(percentile(latencies, 99)),
            "max": _round(max(latencies) if latencies else None),
        },
        "generator_cpu_s": round(generator_cpu, 2),
        "per_listener": per_listener,
        "broker_dropped_notices": broker.dropped_notices() if broker else None,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def print_report(r: dict[str, Any]) -> None:
    lat = r["latency_ms"]
    print(f"{r['cameras']} cameras x {r['events_per_camera']} events, QoS {r['qos']}, MQTT {r['protocol']}, "
          f"rate {r['rate']}, {r['listeners']} listener(s) --format {r['format']}"
          + (" --burst (listeners stopped while publishing; received/s = drain rate)" if r["burst"] else "")
          + (f" --share {r['share']}" if r["share"] else ""))
    print(f"connected in {r['connect_s']} s; sent {r['sent']}, acked {r['acked']}, refused {r['refused']} "
          f"in {r['send_s']} s ({r['acked_per_s']} acked/s)")
    if r["received"] is not None:
        print(f"received {r['received']}, lost {r['lost']}, duplicates {r['duplicates']}; "
              f"{r['received_per_s']} received/s; latency ms p50 {lat['p50']} p90 {lat['p90']} "
              f"p99 {lat['p99']} max {lat['max']}")
    for n, p in enumerate(r["per_listener"]):
        print(f"listener {n}: received {p['received']}, peak RSS {p['peak_rss_mb']} MB, CPU {p['cpu_s']} s "
              f"({p['cpu_us_per_event']} µs/event), exit {p['exit_code']}")
        for warning in p["warnings"]:
            print(f"  {warning}")
    print(f"generator CPU {r['generator_cpu_s']} s; broker 'dropped' log lines: {r['broker_dropped_notices']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cameras", type=int, default=1000, help="simulated cameras, one MQTT connection each")
    parser.add_argument("--events", type=int, default=20, help="events per camera")
    parser.add_argument("--qos", type=int, choices=(0, 1), default=1)
    parser.add_argument("--protocol", choices=("5", "3.1.1"), default="5", help="the cameras' MQTT version")
    parser.add_argument("--rate", type=float, default=0.0, help="events per second in all; 0: as fast as acknowledged")
    parser.add_argument("--window", type=int, default=1, help="unacknowledged messages per camera at full speed")
    parser.add_argument("--listeners", type=int, default=1, help="emocam listen processes (0: none, only publish)")
    parser.add_argument("--share", metavar="GROUP", help="the listeners join this shared-subscription group")
    parser.add_argument("--format", choices=("json", "readable", "summary"), default="json",
                        help="what the listeners print: --json, readable lines, or --summary --json")
    parser.add_argument("--burst", action="store_true",
                        help="stop the listeners (SIGSTOP) while the fleet publishes, then measure how fast they "
                        "drain what the broker held for them: the listener's own throughput")
    parser.add_argument("--broker", metavar="URL", help="a loopback broker to use (default: start a stock mosquitto)")
    parser.add_argument("--drain", type=float, default=10.0, help="seconds without a new line before giving up")
    parser.add_argument("--timeout", type=float, default=180.0, help="the whole run ends within this many seconds")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if args.cameras < 1 or args.events < 1 or args.window < 1 or args.listeners < 0:
        parser.error("--cameras, --events and --window must be >= 1, --listeners >= 0")
    children: list[subprocess.Popen[bytes]] = []

    def give_up() -> None:  # a hard bound, whatever hangs: end what was started, then exit
        for child in children:
            if child.poll() is None:
                child.kill()
        print(f"fleet_load: gave up after {args.timeout + 30:.0f} s", file=sys.stderr)
        os._exit(124)

    timer = threading.Timer(args.timeout + 30, give_up)
    timer.daemon = True
    timer.start()
    result = measure(args, children)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_report(result)
    return 0 if result["lost"] in (0, None) else 1


if __name__ == "__main__":
    sys.exit(main())
