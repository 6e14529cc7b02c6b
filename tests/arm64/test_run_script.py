"""tests/arm64/run.sh without running the emulation (that is CI's step after pytest): its arguments,
its skip where it cannot work, and shellcheck."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent / "run.sh"


def _run(*args: str, unprivileged: bool = False) -> subprocess.CompletedProcess[str]:
    command = ["bash", str(SCRIPT), *args]
    if unprivileged and os.geteuid() == 0:
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    env = {**os.environ, "ARM64_CACHE": "/nonexistent/emocam-arm64"}
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, cwd="/")


def test_without_root_it_skips_with_one_line() -> None:
    result = _run(unprivileged=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("arm64 vs x86: skipped: ")
    assert not Path("/nonexistent/emocam-arm64").exists()


@pytest.mark.parametrize(("args", "message"), [(["a", "b"], "usage: "), (["/no/such/clip.mp4"], "no such clip")])
def test_bad_arguments_exit_2(args: list[str], message: str) -> None:
    result = _run(*args)
    assert result.returncode == 2
    assert message in result.stderr


def test_help_describes_the_check() -> None:
    result = _run("--help")
    assert result.returncode == 0
    assert "arm64 vs x86:" in result.stdout and "ARM64_CPU" in result.stdout


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shellcheck_is_clean() -> None:
    result = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


def _mounts_below(directory: Path) -> list[str]:
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [point for point in points if point == str(directory) or point.startswith(f"{directory}/")]


def test_a_half_built_root_with_live_mounts_is_removed(tmp_path: Path) -> None:
    # What an interrupted debootstrap leaves: proc mounted in the root, and a mount inside a mount.
    if os.geteuid() != 0:
        pytest.skip("mounting needs root")
    root = tmp_path / "root-0123.tmp"
    (root / "proc").mkdir(parents=True)
    (root / "var" / "cache").mkdir(parents=True)
    try:
        subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True, capture_output=True)
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(root / "var")], check=True, capture_output=True)
    except subprocess.CalledProcessError as error:
        subprocess.run(["umount", "-R", str(root)], capture_output=True)
        pytest.skip(f"cannot mount here: {error.stderr.decode().strip()}")
    (root / "var" / "inner").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(root / "var" / "inner")], check=True)
    try:
        result = subprocess.run(
            ["bash", "-c", 'source "$1" && remove_tree "$2"', "_", str(SCRIPT), str(root)],
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert not root.exists()
        assert _mounts_below(root) == []
    finally:
        for point in sorted(_mounts_below(root), reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True)
