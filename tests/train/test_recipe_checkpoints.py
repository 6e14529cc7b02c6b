"""train/recipe_checkpoints.sh: the recipe's runs kept in git, and restored on a fresh machine."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

RESUMABLE = ("state.json", "last.keras", "best.keras", "config.json", "labels.json", "history.csv")


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The script and the member definitions it reads, alone in an empty checkout: it works
    relative to its own folder."""
    (tmp_path / "train").mkdir()
    for script in ("recipe_checkpoints.sh", "recipe_members.sh"):
        shutil.copy2(REPO / "train" / script, tmp_path / "train")
    return tmp_path


def make_run(folder: Path, epoch: int) -> None:
    """A run directory as fit writes it, plus a file that is not part of resuming it."""
    folder.mkdir(parents=True)
    for name in RESUMABLE:
        (folder / name).write_text(f"{name} at epoch {epoch}\n")
    (folder / "state.json").write_text(json.dumps({"epoch": epoch}))
    (folder / "train.log").write_text("not part of a resumable run\n")


def script(checkout: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "train/recipe_checkpoints.sh", *args], cwd=checkout, capture_output=True, text=True)


def test_restore_brings_back_a_kept_run_that_runs_lacks_or_is_behind(checkout: Path) -> None:
    make_run(checkout / "checkpoints/m1-bf16", epoch=40)
    make_run(checkout / "runs/m2-resnet", epoch=7)
    make_run(checkout / "checkpoints/m2-resnet", epoch=5)

    result = script(checkout, "restore")

    assert result.returncode == 0, result.stderr
    assert "restored runs/m1-bf16 at epoch 40 from checkpoints/m1-bf16 (runs/ had epoch 0)" in result.stdout
    assert (checkout / "runs/m1-bf16/last.keras").read_text() == "last.keras at epoch 40\n"
    assert json.loads((checkout / "runs/m1-bf16/state.json").read_text()) == {"epoch": 40}
    assert not (checkout / "runs/m1-bf16/train.log").exists()
    # runs/ is further on for member 2: the older kept copy must not overwrite it.
    assert "m2-resnet" not in result.stdout
    assert json.loads((checkout / "runs/m2-resnet/state.json").read_text()) == {"epoch": 7}
    assert not list(checkout.rglob("*.tmp"))


def test_keep_copies_each_run_for_git_and_restore_then_finds_nothing_to_do(checkout: Path) -> None:
    make_run(checkout / "runs/m1-bf16", epoch=12)
    make_run(checkout / "checkpoints/m1-bf16", epoch=3)
    (checkout / "checkpoints/m1-bf16/train.log").unlink()

    kept = script(checkout, "keep")

    assert kept.returncode == 0, kept.stderr
    assert "kept runs/m1-bf16 at epoch 12 in checkpoints/m1-bf16" in kept.stdout
    assert sorted(p.name for p in (checkout / "checkpoints/m1-bf16").iterdir()) == sorted(RESUMABLE)
    assert (checkout / "checkpoints/m1-bf16/best.keras").read_text() == "best.keras at epoch 12\n"
    restored = script(checkout, "restore")
    assert restored.returncode == 0 and restored.stdout == ""


def test_anything_else_is_the_usage_line_and_exit_2(checkout: Path) -> None:
    result = script(checkout, "save")
    assert result.returncode == 2
    assert result.stderr == "usage: bash train/recipe_checkpoints.sh keep|restore\n"
