"""systemd/install.sh run into a temporary root (DESTDIR-style), with fakes standing in for the
commands that would change this machine, so a test can prove they are printed and never run."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import emocam

REPO = Path(__file__).resolve().parents[2]
INSTALLER = REPO / "systemd" / "install.sh"
UNIT = REPO / "systemd" / "emocam.service"
# Commands that change the machine: under --root they must be printed, never executed.
SYSTEM_COMMANDS = ("apt-get", "useradd", "usermod", "userdel", "systemctl", "chown", "runuser", "pip")
# The last line of an install where systemd is not PID 1 (a chroot, a container, an image build,
# --root, SYSTEMD_OFFLINE=1): what to run on first boot.
FIRST_BOOT = "on first boot run: systemctl daemon-reload && systemctl enable --now "
# What the installer copies of a checkout to build from (stage_source), plus what it checks.
SOURCE_ITEMS = ("pyproject.toml", "setup.cfg", "setup.py", "README.md", "LICENSE", "emocam", "edge", "train", "convert")


@dataclass(frozen=True, slots=True)
class Sandbox:
    root: Path
    source: Path
    fakes_log: Path
    env: dict[str, str]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["bash", str(INSTALLER), "--root", str(self.root), "--source", str(self.source), *args],
            capture_output=True, text=True, timeout=60, env=self.env,
        )
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    def executed(self) -> str:
        return self.fakes_log.read_text() if self.fakes_log.exists() else ""


def _os_release(root: Path, codename: str) -> None:
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "os-release").write_text(f'ID=debian\nVERSION_CODENAME={codename}\nPRETTY_NAME="test {codename}"\n')


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    fakes = tmp_path / "fakebin"
    fakes.mkdir()
    log = tmp_path / "executed.log"
    for name in SYSTEM_COMMANDS:
        fake = fakes / name
        fake.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\nexit 0\n')
        fake.chmod(0o755)
    # apt-cache is a read-only query the installer really runs: pretend this is Raspberry Pi OS.
    apt_cache = fakes / "apt-cache"
    apt_cache.write_text('#!/bin/sh\n[ "$1" = show ] && [ "$2" = python3-picamera2 ]\n')
    apt_cache.chmod(0o755)
    root = tmp_path / "root"
    root.mkdir()
    _os_release(root, "bookworm")
    env = {**os.environ, "PATH": f"{fakes}{os.pathsep}{os.environ['PATH']}"}
    return Sandbox(root=root, source=REPO, fakes_log=log, env=env)


def _snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """path -> (mode, mtime_ns, sha256 or '') for everything under root."""
    snap = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        snap[str(path.relative_to(root))] = (st.st_mode, st.st_mtime_ns, digest)
    return snap


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def test_install_lays_out_files_with_the_right_modes(sandbox: Sandbox) -> None:
    result = sandbox.run()
    root = sandbox.root
    config = root / "etc/emocam/emocam.toml"
    assert config.read_bytes() == (sandbox.source / "edge" / "emocam.toml").read_bytes()
    assert _mode(config) == 0o640
    assert _mode(root / "etc/emocam") == 0o750
    assert _mode(root / "etc/emocam/models") == 0o750
    unit = root / "etc/systemd/system/emocam.service"
    assert unit.read_bytes() == UNIT.read_bytes()
    assert _mode(unit) == 0o644
    assert (root / "opt/emocam/docs/raspberry-pi.md").is_file()
    # Ownership is a system change: printed for the real root to carry out.
    out = result.stdout
    assert "+ chown root:emocam /etc/emocam/emocam.toml\n" in out
    assert "+ chown root:emocam /etc/emocam\n" in out
    assert sandbox.executed() == "", "a system command ran under --root"


def test_install_prints_the_system_steps(sandbox: Sandbox) -> None:
    out = sandbox.run().stdout
    assert "apt-get install -y --no-install-recommends python3-venv python3-picamera2\n" in out
    assert "mosquitto" not in out
    assert "+ useradd --system --user-group --groups video " in out
    assert "+ python3 -m venv --system-site-packages /opt/emocam/venv\n" in out
    # Built from a copy, so pip's build files never land, root-owned, in the user's checkout.
    assert f"building from a copy of {sandbox.source} in " in out
    pip_line = r"^\+ /opt/emocam/venv/bin/pip install --constraint /opt/emocam/constraints\.txt (\S+)$"
    staged = re.search(pip_line, out, re.M)
    assert staged and staged.group(1).endswith("/emocam-src") and not staged.group(1).startswith(str(sandbox.source))
    # One pip step: the BlazeFace models ship inside the package, nothing is installed beside it.
    assert len(re.findall(r"^\+ \S+/pip install ", out, re.M)) == 1
    # The device install never asks for the training extra (TensorFlow).
    assert "[train]" not in out and "tensorflow" not in out.lower()
    # --root is another system: nothing to enable or start here, one line says what to run there.
    assert [line for line in out.splitlines() if line.startswith("+ systemctl")] == []
    assert out.splitlines()[-1].endswith(FIRST_BOOT + "emocam")
    # The config is checked as the service user before the install is declared done.
    assert out.index("check-config --config /etc/emocam/emocam.toml") < out.index(FIRST_BOOT)


def test_unit_runs_what_was_installed(sandbox: Sandbox) -> None:
    out = sandbox.run().stdout
    unit = (sandbox.root / "etc/systemd/system/emocam.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart=")).split()
    program, config = exec_start[0].removeprefix("ExecStart="), exec_start[-1]
    venv = str(Path(program).parent.parent)
    assert f"+ python3 -m venv --system-site-packages {venv}\n" in out
    assert f"+ {venv}/bin/pip install " in out
    assert (sandbox.root / config.lstrip("/")).is_file()


def test_with_mosquitto_adds_the_broker(sandbox: Sandbox) -> None:
    out = sandbox.run("--with-mosquitto").stdout
    assert "python3-picamera2 mosquitto mosquitto-clients\n" in out
    assert 'point it at the local broker: [mqtt] url = "mqtt://localhost"' in out
    assert out.splitlines()[-1].endswith(FIRST_BOOT + "mosquitto emocam")


def test_no_picamera2_where_apt_lacks_it(sandbox: Sandbox) -> None:
    (Path(sandbox.env["PATH"].split(os.pathsep)[0]) / "apt-cache").write_text("#!/bin/sh\nexit 100\n")
    out = sandbox.run().stdout
    assert "apt-get install -y --no-install-recommends python3-venv\n" in out
    assert "python3-picamera2 is not in this system's apt sources" in out


def test_bookworm_pins_numpy_1_and_opencv_4_11(sandbox: Sandbox) -> None:
    sandbox.run()
    constraints = (sandbox.root / "opt/emocam/constraints.txt").read_text().splitlines()
    pins = [line for line in constraints if line and not line.startswith("#")]
    assert pins == ["numpy<2", "opencv-python-headless==4.11.0.86"]


def test_trixie_has_no_numpy_pin(sandbox: Sandbox) -> None:
    _os_release(sandbox.root, "trixie")
    sandbox.run()
    constraints = (sandbox.root / "opt/emocam/constraints.txt").read_text().splitlines()
    assert [line for line in constraints if line and not line.startswith("#")] == []


def test_second_run_changes_nothing(sandbox: Sandbox) -> None:
    sandbox.run()
    before = _snapshot(sandbox.root)
    out = sandbox.run().stdout
    assert _snapshot(sandbox.root) == before
    assert "/etc/systemd/system/emocam.service is up to date" in out
    assert "keeping your /etc/emocam/emocam.toml" in out


def test_users_config_is_never_overwritten_but_our_unit_is(sandbox: Sandbox) -> None:
    sandbox.run()
    config = sandbox.root / "etc/emocam/emocam.toml"
    config.write_text("# mine\n")
    config.chmod(0o600)
    unit = sandbox.root / "etc/systemd/system/emocam.service"
    unit.write_text("[Service]\nExecStart=/bin/false\n")
    sandbox.run()
    assert config.read_text() == "# mine\n"
    assert _mode(config) == 0o600
    assert unit.read_bytes() == UNIT.read_bytes()


def test_uninstall_keeps_the_config(sandbox: Sandbox) -> None:
    sandbox.run()
    (sandbox.root / "var/lib/emocam").mkdir(parents=True)
    out = sandbox.run("--uninstall").stdout
    root = sandbox.root
    assert not (root / "etc/systemd/system/emocam.service").exists()
    assert not (root / "opt/emocam").exists()
    assert (root / "etc/emocam/emocam.toml").is_file()
    assert (root / "var/lib/emocam").is_dir()
    assert "systemd is not running here: nothing to stop" in out and "+ systemctl" not in out
    assert "userdel" not in out
    assert sandbox.executed() == ""


def test_uninstall_removes_an_offline_enable(sandbox: Sandbox) -> None:
    # An image build may have enabled the unit without systemd (a link, no daemon to ask).
    sandbox.run()
    link = sandbox.root / "etc/systemd/system/multi-user.target.wants/emocam.service"
    link.parent.mkdir(parents=True)
    link.symlink_to("/etc/systemd/system/emocam.service")
    out = sandbox.run("--uninstall").stdout
    assert not link.is_symlink()
    assert "removed /etc/systemd/system/multi-user.target.wants/emocam.service" in out
    # ... and installing again after an uninstall works like the first time.
    assert sandbox.run().stdout.splitlines()[-1].endswith(FIRST_BOOT + "emocam")


def _source_copy(tmp_path: Path) -> Path:
    source = tmp_path / "checkout"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for item in SOURCE_ITEMS:
        path = REPO / item
        if path.is_symlink() or path.is_file():
            shutil.copy2(path, source / item, follow_symlinks=False)
        elif path.is_dir():
            shutil.copytree(path, source / item, symlinks=True, ignore=ignore)
    return source


def _installed_digest(out: str) -> str:
    match = re.search(r"^==> installing emocam \S+ \(source sha256 ([0-9a-f]{64})\) into /opt/emocam/venv$", out, re.M)
    assert match, out
    return match.group(1)


def _pip_steps(out: str) -> list[str]:
    return re.findall(r"^\+ \S+/pip install .*$", out, re.M)


def test_a_rerun_with_nothing_changed_does_not_rebuild(sandbox: Sandbox, tmp_path: Path) -> None:
    box = Sandbox(root=sandbox.root, source=_source_copy(tmp_path), fakes_log=sandbox.fakes_log, env=sandbox.env)
    first = box.run().stdout
    digest = _installed_digest(first)
    assert len(_pip_steps(first)) == 1
    # What a real pip run leaves (under --root nothing runs): the venv's program and the stamp.
    venv = sandbox.root / "opt/emocam/venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin/emocam").write_text("#!/bin/sh\n")
    (venv / ".emocam-install").write_text(f"source {digest}\nversion {emocam.__version__}\n")

    again = box.run().stdout
    assert _pip_steps(again) == []
    up_to_date = "in /opt/emocam/venv is up to date (same source, pins and packages): not rebuilt"
    assert f"emocam {emocam.__version__} {up_to_date}" in again
    assert again.splitlines()[-1].endswith(FIRST_BOOT + "emocam")

    # Any change to the source, even a comment, is a new build.
    init = box.source / "emocam" / "__init__.py"
    init.write_text(init.read_text() + "# changed\n")
    changed = box.run().stdout
    assert len(_pip_steps(changed)) == 1 and _installed_digest(changed) != digest

    # So are other pins (Trixie has none), with the same source.
    init.write_text(init.read_text().removesuffix("# changed\n"))
    assert "not rebuilt" in box.run().stdout
    _os_release(sandbox.root, "trixie")
    repinned = box.run().stdout
    assert len(_pip_steps(repinned)) == 1 and _installed_digest(repinned) != digest


def _in_a_booted_system(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """command in a private mount namespace whose /run says systemd is PID 1 (sd_booted)."""
    script = 'mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && exec "$@"'
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *command],
        capture_output=True, text=True, timeout=60, env=env,
    )


@pytest.fixture
def booted(sandbox: Sandbox) -> None:
    probe = _in_a_booted_system(["test", "-d", "/run/systemd/system"], sandbox.env)
    if shutil.which("unshare") is None or probe.returncode != 0:
        pytest.skip(f"needs a private mount namespace (root, unshare): {probe.stderr.strip()}")


@pytest.mark.usefixtures("booted")
@pytest.mark.parametrize(
    ("offline", "action", "steps"),
    [
        ("0", [], ["daemon-reload", "enable emocam.service", "restart emocam.service"]),
        ("1", [], []),
        ("0", ["--uninstall"], ["disable --now emocam.service", "daemon-reload"]),
        ("1", ["--uninstall"], []),
    ],
)
def test_systemctl_runs_only_where_systemd_is_pid_1(
    sandbox: Sandbox, offline: str, action: list[str], steps: list[str]
) -> None:
    env = {**sandbox.env, "SYSTEMD_OFFLINE": offline}
    result = _in_a_booted_system(["bash", str(INSTALLER), "--dry-run", *action], env)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert [line.removeprefix("+ systemctl ") for line in out.splitlines() if line.startswith("+ systemctl")] == steps
    if not action:
        last = out.splitlines()[-1]
        assert last.endswith(FIRST_BOOT + "emocam") if steps == [] else FIRST_BOOT not in out
    assert sandbox.executed() == ""


def test_purge_removes_config_state_and_user(sandbox: Sandbox) -> None:
    sandbox.run()
    (sandbox.root / "var/lib/emocam").mkdir(parents=True)
    out = sandbox.run("--uninstall", "--purge").stdout
    assert not (sandbox.root / "etc/emocam").exists()
    assert not (sandbox.root / "var/lib/emocam").exists()
    assert "+ userdel emocam\n" in out


def test_dry_run_writes_nothing(sandbox: Sandbox) -> None:
    before = _snapshot(sandbox.root)
    out = sandbox.run("--dry-run").stdout
    assert _snapshot(sandbox.root) == before
    assert "+ install -D -m 0640 " in out and f"{sandbox.root}/etc/emocam/emocam.toml\n" in out
    assert f"{sandbox.root}/etc/systemd/system/emocam.service\n" in out
    assert sandbox.executed() == ""


def test_config_from_a_wheel(sandbox: Sandbox, tmp_path: Path) -> None:
    wheel = tmp_path / "emocam-0.2.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("emocam/edge/emocam.toml", "# from the wheel\n")
    wheel_box = Sandbox(root=sandbox.root, source=wheel, fakes_log=sandbox.fakes_log, env=sandbox.env)
    out = wheel_box.run().stdout
    assert (sandbox.root / "etc/emocam/emocam.toml").read_text() == "# from the wheel\n"
    assert f"pip install --constraint /opt/emocam/constraints.txt {wheel}\n" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--bogus"], "unknown option"), (["--root"], "--root needs a directory")],
)
def test_bad_arguments_fail_clearly(args: list[str], message: str) -> None:
    result = subprocess.run(["bash", str(INSTALLER), *args], capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert message in result.stderr


def test_a_source_without_the_default_config_fails_before_any_step(sandbox: Sandbox, tmp_path: Path) -> None:
    source = tmp_path / "not-emocam"
    source.mkdir()
    (source / "pyproject.toml").write_text("[project]\nname = 'other'\n")
    box = Sandbox(root=sandbox.root, source=source, fakes_log=sandbox.fakes_log, env=sandbox.env)
    result = box.run(check=False)
    assert result.returncode != 0
    assert "edge/emocam.toml is missing" in result.stderr
    assert "+ " not in result.stdout
    assert sorted(p.name for p in sandbox.root.iterdir()) == ["etc"]  # only the test's os-release


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shellcheck_is_clean() -> None:
    result = subprocess.run(["shellcheck", str(INSTALLER)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


def test_source_defaults_to_the_checkout_holding_the_script(sandbox: Sandbox) -> None:
    result = subprocess.run(
        ["bash", str(INSTALLER), "--root", str(sandbox.root)],
        capture_output=True, text=True, timeout=60, env=sandbox.env,
    )
    assert result.returncode == 0, result.stderr
    assert f"installing emocam from {REPO} " in result.stdout
    assert (sandbox.root / "etc/emocam/emocam.toml").read_bytes() == (REPO / "edge/emocam.toml").read_bytes()
