"""train/finish_recipe.py's choices before it calls any CLI (the budget, the shared validation split), and
how it reports a CLI that fails."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from emocam.train import finish_recipe
from emocam.train.commands import EMOCAM_CONVERT, EMOCAM_TRAIN, as_typed


def make_run(folder: Path, macs: float, crop: int = 40, seed: int = 1337) -> str:
    folder.mkdir()
    config = {"macs": macs, "crop": crop, "seed": seed, "val_fraction": 0.1, "val_grouping": "pixels", "epochs": 5}
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


def test_only_candidates_within_the_budget_are_scored(tmp_path: Path) -> None:
    m1 = make_run(tmp_path / "m1", 264e6)  # 1.50 ms whole face at 5.7 ms per GMAC
    m2 = make_run(tmp_path / "m2", 176e6)  # 1.00 ms
    chosen = {(c.members, c.centre_crop, c.flip_tta): c.est_ms for c in finish_recipe.candidates(m1, m2, 3.0)}
    assert chosen[((m1, m2), 0, False)] == pytest.approx(2.51, abs=0.01)  # both members add up
    assert chosen[((m1,), 0, False)] == pytest.approx(1.5, abs=0.01)
    assert chosen[((m1,), 40, True)] == pytest.approx(2.09, abs=0.01)  # (40/48)^2 of the face, twice
    assert ((m1,), 0, True) not in chosen and ((m1, m2), 40, True) not in chosen  # 3.01 and 3.49 ms
    assert chosen[((m1, m2), 40, False)] == pytest.approx(1.74, abs=0.01)


def test_members_with_different_validation_splits_are_refused(tmp_path: Path) -> None:
    m1 = make_run(tmp_path / "m1", 264e6)
    m2 = make_run(tmp_path / "m2", 176e6, seed=2024)
    with pytest.raises(SystemExit, match="hold out different validation splits"):
        finish_recipe.candidates(m1, m2, 3.0)


def test_the_flags_of_a_candidate_are_the_ones_evaluate_and_convert_take() -> None:
    candidate = finish_recipe.Candidate(("runs/a", "runs/b"), 40, True, 2.0)
    assert candidate.flags == ["--ensemble-with", "runs/b", "--centre-crop", "40", "--flip-tta"]
    assert candidate.describe() == "a + b, centre 40, flip TTA"


def test_without_member_2_only_member_1_is_a_candidate(tmp_path: Path) -> None:
    m1 = make_run(tmp_path / "m1", 264e6)
    chosen = {(c.members, c.centre_crop, c.flip_tta) for c in finish_recipe.candidates(m1, "", 3.0)}
    assert chosen == {((m1,), 0, False), ((m1,), 40, False), ((m1,), 40, True)}


def test_a_failing_cli_exits_with_the_command_as_typed_and_its_last_line(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        finish_recipe.cli(*EMOCAM_TRAIN, "evaluate", str(tmp_path / "no-such-run"), "data.zip", "--json")
    message = str(exited.value)
    typed = f"emocam-train evaluate {tmp_path / 'no-such-run'} data.zip --json"
    assert message.startswith(f"finish_recipe: {typed} exited 2: ")
    assert "no-such-run" in message.split("exited 2: ", 1)[1]
    assert sys.executable not in message


def test_commands_read_as_typed_and_others_unchanged() -> None:
    assert as_typed([*EMOCAM_CONVERT, "runs/m1", "--flip-tta"]) == "emocam-convert runs/m1 --flip-tta"
    assert as_typed(["python3", "bench/model_latency.py"]) == "python3 bench/model_latency.py"
