"""scripts/run and scripts/test: the README's two commands, and how they fail without what they need."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO


def two_commands() -> list[str]:
    """The command lines of the first code block under the README's "The two commands"."""
    section = (REPO / "README.md").read_text().split("## The two commands", 1)[1]
    block = re.search(r"^```[a-z]*\n(.*?)^```", section, re.M | re.S)
    assert block, "no code block under 'The two commands'"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_readme_has_two_commands_and_ci_runs_the_second() -> None:
    assert two_commands() == ["scripts/run", "scripts/test"]
    ci = [line for line in (REPO / ".ci/run").read_text().splitlines() if line and not line.startswith("#")]
    # The test command first, exactly as the README gives it; then the arm64 emulation check.
    assert "scripts/test || exit $?" in ci and ci[-1] == "exec bash tests/arm64/run.sh"
    for script in ("scripts/run", "scripts/test", "scripts/check-wheel", ".ci/run"):
        assert os.access(REPO / script, os.X_OK), f"{script} is not executable"


@pytest.fixture
def checkout() -> Iterator[Path]:
    """The scripts alone in an empty checkout (no .venv), readable by any user (pytest's own
    temporary folders are not)."""
    with tempfile.TemporaryDirectory(prefix="emocam-scripts-") as folder:
        root = Path(folder) / "checkout"
        shutil.copytree(REPO / "scripts", root / "scripts")
        for path in (Path(folder), root, root / "scripts", root / "scripts" / "lib"):
            path.chmod(0o755)
        yield root


def fake_program(folder: Path, name: str, body: str) -> None:
    folder.mkdir(exist_ok=True, mode=0o755)
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


@pytest.mark.parametrize("script", ["run", "test"])
def test_no_python_3_11_is_one_clear_line(checkout: Path, script: str) -> None:
    bin_dir = checkout.parent / "bin"
    fake_program(bin_dir, "python3.9", 'case "$*" in *version_info*) exit 1;; *python_version*) echo 3.9.2;; esac')
    env = {**os.environ, "PYTHON": "python3.9", "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    if script == "test":  # the apt packages are checked first; say they are there
        fake_program(bin_dir, "dpkg-query", "echo installed")
    result = subprocess.run(
        ["bash", str(checkout / "scripts" / script)], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"scripts/{script}: error: needs Python 3.11 or newer, found python3.9 (3.9.2): on Debian 12 or "
        "Raspberry Pi OS: apt-get install python3 python3-venv (or set PYTHON=/path/to/python3.11)"
    ]


def test_missing_apt_packages_without_root_is_one_clear_line(checkout: Path) -> None:
    bin_dir = checkout.parent / "bin"
    fake_program(bin_dir, "dpkg-query", "echo not-installed")
    command = ["bash", str(checkout / "scripts" / "test")]
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("needs runuser to drop root")
        command = ["runuser", "-u", "nobody", "--", *command]
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "scripts/test: error: missing apt packages mosquitto systemd; as root, run: "
        "apt-get install -y mosquitto systemd"
    ]
