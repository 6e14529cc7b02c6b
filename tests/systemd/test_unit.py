"""systemd/emocam.service: systemd's own verifier and security scorer, plus the contract with the code.

``systemd-analyze verify`` exits 0 on unknown keys and bad values and only warns on stderr, so the
tests assert an empty stderr, and prove that assertion bites by injecting mistakes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from emocam.edge.errors import (
    ConfigError,
    DeliveryError,
    DetectorError,
    EmocamError,
    ModelError,
    PublishError,
    SourceError,
)

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "emocam.service"
INSTALLED_EXEC = "/opt/emocam/venv/bin/emocam"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")

needs_systemd_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")

# The exposure level measured when the unit was written was 1.6; leave a little room for
# systemd versions that score differently, but not enough to lose a whole family of settings.
MAX_EXPOSURE = 2.5


def _entries(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment, in order; keys may repeat, as in systemd."""
    entries = []
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        entries.append((section, key.strip(), value.strip()))
    return entries


def _values(section: str, key: str) -> list[str]:
    return [v for s, k, v in _entries(UNIT.read_text()) if s == section and k == key]


def _one(section: str, key: str) -> str:
    values = _values(section, key)
    assert len(values) == 1, f"[{section}] {key}= set {len(values)} times"
    return values[0]


def _testable_copy(tmp_path: Path, extra: str = "") -> Path:
    """The unit with ExecStart pointing at an executable that exists here (verify checks it)."""
    text = UNIT.read_text()
    assert f"ExecStart={INSTALLED_EXEC} " in text
    text = text.replace(f"ExecStart={INSTALLED_EXEC} ", f"ExecStart={shutil.which('true')} ")
    if extra:
        text = text.replace("[Service]\n", f"[Service]\n{extra}\n", 1)
    path = tmp_path / "emocam.service"
    path.write_text(text)
    return path


def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", str(unit)],
        capture_output=True, text=True, timeout=60, cwd=unit.parent,
    )


@needs_systemd_analyze
def test_verify_is_clean(tmp_path: Path) -> None:
    result = _verify(_testable_copy(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@needs_systemd_analyze
@pytest.mark.parametrize("mistake", ["Typo=1", "WatchdogSec=thirty", "DeviceAllow=char-video4linux rwz"])
def test_verify_catches_mistakes(tmp_path: Path, mistake: str) -> None:
    # Proof that test_verify_is_clean can fail: each of these still exits 0, but says so on stderr.
    result = _verify(_testable_copy(tmp_path, extra=mistake))
    assert result.stderr != ""


@needs_systemd_analyze
def test_security_exposure_is_low(tmp_path: Path) -> None:
    assert SYSTEMD_ANALYZE is not None
    unit = _testable_copy(tmp_path)
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    match = re.search(r"Overall exposure level for emocam\.service: (\d+(?:\.\d+)?)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE


def test_supervision_contract() -> None:
    assert _one("Service", "Type") == "notify"
    assert _one("Service", "NotifyAccess") == "main"
    assert 10 <= int(_one("Service", "WatchdogSec")) <= 120
    assert _one("Service", "Restart") == "on-failure"
    assert _one("Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    # No start limit: a missing camera (exit 4) is retried until it is there, at RestartSec= pace.
    assert _one("Unit", "StartLimitIntervalSec") == "0" and int(_one("Service", "RestartSec")) >= 10
    # What a restart cannot fix must not loop: these are the codes the CLI exits with for them.
    prevented = {int(code) for code in _one("Service", "RestartPreventExitStatus").split()}
    assert prevented == {error.exit_code for error in (ConfigError, ModelError, DetectorError, PublishError,
                                                       DeliveryError)}
    assert SourceError.exit_code not in prevented and EmocamError.exit_code not in prevented


def test_exec_start_runs_the_daemon_with_the_system_config() -> None:
    # test_install.py checks that the installer puts the venv and the config at these paths.
    exec_start = _one("Service", "ExecStart").split()
    assert exec_start == [INSTALLED_EXEC, "run", "--config", "/etc/emocam/emocam.toml"]


def test_runs_unprivileged_with_the_camera_visible() -> None:
    assert _one("Service", "User") == "emocam"
    assert _one("Service", "Group") == "emocam"
    assert _one("Service", "SupplementaryGroups") == "video"
    # PrivateDevices= would hide /dev/video*, /dev/media* and /dev/dma_heap/*.
    assert _values("Service", "PrivateDevices") == []
    assert _one("Service", "DevicePolicy") == "closed"
    assert set(_values("Service", "DeviceAllow")) == {"char-video4linux rw", "char-media rw", "char-dma_heap rw"}
    assert _one("Service", "CapabilityBoundingSet") == ""
    assert _one("Service", "NoNewPrivileges") == "yes"
    assert _one("Service", "ProtectSystem") == "strict"


def test_memory_is_bounded_with_and_without_the_memory_cgroup() -> None:
    # MemoryMax= works where the memory cgroup is on; stock Raspberry Pi kernels boot with
    # cgroup_disable=memory, where only the per-process rlimit is enforced.
    assert _one("Service", "MemoryMax") == "400M"
    assert _one("Service", "LimitDATA") == "512M"


def test_password_is_a_credential_with_a_fallback() -> None:
    assert _one("Service", "LoadCredential") == "mqtt_password:/etc/emocam/mqtt_password"
    # Same id in SetCredential= makes a missing password file non-fatal.
    assert _one("Service", "SetCredential").startswith("mqtt_password:")
    assert all("PASSWORD" not in v.upper() for v in _values("Service", "Environment"))
    assert _one("Service", "ConfigurationDirectory") == "emocam"
    assert _one("Service", "StateDirectory") == "emocam"
