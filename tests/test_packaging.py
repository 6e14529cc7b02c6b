"""The package as a user meets it: one version, three commands, a wheel that works on its own."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import emocam
from emocam.convert.cli import build_parser as convert_parser
from tests.conftest import REPO

BIN = Path(sys.executable).parent
COMMANDS = ("emocam", "emocam-train", "emocam-convert")
DEVICE_DATA = (  # inside the source tree; the wheel has each under emocam/
    "edge/emocam.toml",
    "edge/models/emocam-fer6.tflite",
    "edge/models/emocam-fer6.json",
    "edge/samples/astronaut.avi",
    "edge/vision/detectors/models/face_detection_short_range.tflite",
    "edge/vision/detectors/models/face_detection_full_range.tflite",
    "edge/vision/detectors/models/LICENSE",
    "edge/vision/detectors/models/README.md",
)

# The bundled model's float weights, for emocam-train fit --init-from bundled: in the package,
# beside the training code that alone reads them.
TRAINING_DATA = ("train/bundled/emocam-fer6.json", "train/bundled/emocam-fer6.weights.npz")


def command(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """An installed console script, as a user runs it."""
    script = BIN / name
    if not script.is_file():
        pytest.skip(f"{script} is not installed: pip install -e '.[dev]'")
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=120, cwd=REPO)


def test_the_version_lives_in_emocam_only() -> None:
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    assert setup["metadata"]["version"] == "attr: emocam.__version__"
    with (REPO / "pyproject.toml").open("rb") as file:
        assert "version" not in tomllib.load(file).get("project", {})


@pytest.mark.parametrize("name", COMMANDS)
def test_each_command_prints_the_version(name: str) -> None:
    result = command(name, "--version")
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{name} {emocam.__version__}\n", "")


@pytest.mark.parametrize("name", COMMANDS)
def test_help_goes_to_stdout(name: str) -> None:
    result = command(name, "--help")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith(f"usage: {name} ") and "--version" in result.stdout


def test_emocam_train_refuses_an_unknown_command_on_stderr() -> None:
    result = command("emocam-train", "fitt")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("usage: emocam-train ") and "error: unknown command 'fitt'" in result.stderr


def test_emocam_convert_names_the_model_version_with_its_own_flag() -> None:
    assert convert_parser().parse_args(["runs/x", "--model-version", "1.2.3"]).model_version == "1.2.3"


@pytest.mark.tensorflow
def test_tensorflow_starts_without_its_banner() -> None:
    pytest.importorskip("tensorflow", reason="the train extra")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    code = (
        "import os, sys\n"
        "from emocam.train.tf_startup import quiet_tensorflow_startup\n"
        "quiet_tensorflow_startup()\n"
        "import keras, tensorflow\n"  # keras imports tensorflow first: the hook must catch that too
        "os.write(2, b'still here\\n')\n"
        "print(os.environ['TF_CPP_MIN_LOG_LEVEL'], tensorflow.__name__, type(tensorflow.__loader__).__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=env, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", "tensorflow", "_DroppingBanner"]
    assert "oneDNN custom operations" not in result.stderr
    assert "absl::InitializeLog" not in result.stderr
    assert result.stderr.endswith("still here\n")


# --- the wheel ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An sdist and a wheel built from it, offline (no isolation), from a copy of the tree."""
    pytest.importorskip("build", reason="the dev extra")
    root = tmp_path_factory.mktemp("packaging")
    source = root / "src"
    source.mkdir()
    for item in ("pyproject.toml", "setup.cfg", "README.md"):
        shutil.copy2(REPO / item, source / item)
    for package in ("emocam", "edge", "train", "convert"):  # emocam/* are links to the other three
        shutil.copytree(REPO / package, source / package, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    out = root / "dist"
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Package would be ignored" not in result.stdout + result.stderr
    return out


@pytest.mark.slow
def test_the_wheel_and_sdist_hold_the_device_data_and_no_tensorflow(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = Parser().parsestr(archive.read(f"emocam-{emocam.__version__}.dist-info/METADATA").decode())
    assert {f"emocam/{name}" for name in (*DEVICE_DATA, *TRAINING_DATA)} <= names
    assert not [name for name in names if "__pycache__" in name]
    # One import name: nothing called edge, train, convert or tests at the top of site-packages.
    assert {name.split("/")[0] for name in names} == {"emocam", f"emocam-{emocam.__version__}.dist-info"}
    assert {"emocam/train/fit.py", "emocam/convert/cli.py", "emocam/edge/service/cli.py"} <= names
    base = [req for req in metadata.get_all("Requires-Dist") or [] if "extra ==" not in req]
    assert base and not [req for req in base if req.lower().startswith(("tensorflow", "keras", "face-detection"))]
    with tarfile.open(sdist) as archive:
        stem = f"emocam-{emocam.__version__}/"
        assert {f"{stem}emocam/{name}" for name in (*DEVICE_DATA, *TRAINING_DATA)} <= set(archive.getnames())
    # 10.8 MB in v2.0.0: the int8 ensemble (4.1 MB compressed), its first member's float16 weights
    # for --init-from bundled (5.1 MB, which a Pi installs and never opens), the face detectors
    # (1.2 MB) and the sample clip (0.3 MB); a larger bundled model takes more
    assert wheel.stat().st_size < 11_500_000, "the wheel grew: check what package data it picked up"


@pytest.mark.slow
def test_the_installed_wheel_runs_the_sample_on_its_own_files(dist: Path, tmp_path: Path) -> None:
    """The wheel in a fresh venv; its dependencies come from this environment, read-only (offline)."""
    (wheel,) = dist.glob("*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-index", "--no-deps", str(wheel)],
        check=True, timeout=300,
    )
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.check_output([str(python), "-c", purelib], text=True).strip())
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz_test_dependencies.pth").write_text("".join(f"{path}\n" for path in sorted(ours)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMOCAM_", "PYTHON"))}
    where = subprocess.run([str(python), "-c", "import emocam.edge; print(emocam.edge.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr
    sample = site / "emocam" / "edge" / "samples" / "astronaut.avi"
    result = subprocess.run(
        [str(venv / "bin" / "emocam"), "run", "--source", str(sample), "--no-realtime"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["type"] for line in result.stdout.splitlines()] == ["appeared", "left"]
    assert f"BlazeFace short-range model {site}/emocam/edge/vision/detectors/models/" in result.stderr
