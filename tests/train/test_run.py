"""The run directory's owner: when fit may write into --out, and how a run is read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emocam.train import run
from emocam.train.config import TrainConfigError, from_recorded
from emocam.train.fit import main


def finished_run(folder: Path, last: bool = False) -> dict[str, str]:
    folder.mkdir()
    files = {"state.json": '{"epoch": 18, "best_val_accuracy": 0.36}', "best.keras": "precious",
             "config.json": '{"epochs": 18}', "history.csv": "epoch,loss\n"}
    if last:
        files["last.keras"] = "checkpoint"
    for name, content in files.items():
        (folder / name).write_text(content)
    return files


@pytest.mark.parametrize(
    ("resume", "last", "message"),
    [
        (False, False, "already holds a run (state.json, best.keras); continue it with --resume"),
        (False, True, "already holds a run"),
        (True, False, "has state.json, best.keras but no last.keras to continue from; replace it with --overwrite"),
    ],
)
def test_fit_leaves_every_file_of_a_run_it_may_not_touch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], resume: bool, last: bool, message: str
) -> None:
    files = finished_run(tmp_path / "run", last)
    argv = ["--data", str(tmp_path / "never-read.zip"), "--out", str(tmp_path / "run"), "--architecture", "tiny"]
    assert main(argv + ["--resume"] * resume) == 2
    assert message in capsys.readouterr().err
    assert {p.name: p.read_text() for p in (tmp_path / "run").iterdir()} == files


def test_resume_continues_a_resumable_run_and_starts_a_missing_or_empty_one(tmp_path: Path) -> None:
    finished_run(tmp_path / "run", last=True)
    run.check_out(tmp_path / "run", resume=True, overwrite=False)
    run.check_out(tmp_path / "new", resume=True, overwrite=False)
    (tmp_path / "empty").mkdir()
    run.check_out(tmp_path / "empty", resume=True, overwrite=False)
    (tmp_path / "started").mkdir()  # killed in its first epoch: config and labels, no checkpoint yet
    (tmp_path / "started" / "config.json").write_text("{}")
    run.check_out(tmp_path / "started", resume=True, overwrite=False)


@pytest.mark.parametrize(
    ("make", "resume", "message"),
    [
        (lambda out: out.write_text("x"), False, "is a file, not a run directory"),
        (lambda out: (out.mkdir(), (out / "notes.txt").write_text("x")), True, "is not a run directory"),
        (lambda out: (finished_run(out, last=True), (out / "state.json").write_text("{}")), True, "run state"),
    ],
)
def test_out_that_fit_would_spoil_is_refused(tmp_path: Path, make, resume: bool, message: str) -> None:
    make(tmp_path / "out")
    with pytest.raises(run.RunError, match=message):
        run.check_out(tmp_path / "out", resume=resume, overwrite=False)


def test_recorded_knobs_are_read_back_with_their_types_checked(tmp_path: Path) -> None:
    recorded = {"epochs": 18, "learning_rate": 1, "extra_data": ["mine"], "classes": ["happy", "sad"],
                "labels": ["happy", "sad"], "params": 123}
    (tmp_path / "config.json").write_text(json.dumps(recorded))
    cfg = run.read_train_config(tmp_path)
    assert cfg is not None
    assert (cfg.epochs, cfg.learning_rate, cfg.extra_data, cfg.classes) == (18, 1.0, ("mine",), ("happy", "sad"))
    assert isinstance(cfg.learning_rate, float)
    assert run.read_train_config(tmp_path / "none") is None
    for bad, message in (({"epochs": "many"}, "epochs is 'many', not a whole number"),
                         ({"epochs": 2.5}, "epochs is 2.5"), ({"flip": 1}, "flip is 1, not true or false"),
                         ({"extra_data": "mine"}, "extra_data is 'mine', not a list of paths")):
        with pytest.raises(TrainConfigError, match=message):
            from_recorded(bad, "config.json")


def test_labels_are_read_from_labels_json(tmp_path: Path) -> None:
    assert run.read_labels(tmp_path) is None
    (tmp_path / "labels.json").write_text('{"labels": ["happy", "sad"]}')
    assert run.read_labels(tmp_path) == ("happy", "sad")
    for content, message in (("[oops", "not readable JSON"), ('["happy"]', "2 or more distinct"), ("[1, 2]", "list")):
        (tmp_path / "labels.json").write_text(content)
        with pytest.raises(run.RunError, match=message):
            run.read_labels(tmp_path)
