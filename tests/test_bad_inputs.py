"""Every bad input we know of, given to the three real CLIs: each ends with its documented exit
code (README, "Exit codes") and one line on stderr that names the path, key or value, never a
traceback.

Each case runs the CLI as a subprocess from a fresh folder, with the files its ``setup`` writes
there; ``{tmp}`` in its arguments, environment and expected text is that folder. The one-line
rule: the last non-empty line of stderr is the error, it is the only error line (one starting
with ``ERROR`` or with the command's name and a colon), and every other line is a log line
(``INFO``/``WARNING``/``DEBUG`` ...) or argparse's usage. Cases whose command imports TensorFlow
before it fails are marked ``tensorflow`` and ``slow``.

``python tests/test_bad_inputs.py [WORD ...]`` prints the table (the cases whose id contains a
WORD) as markdown: case | command | exit | message, the message being the line each command
actually printed, and what is wrong with it in bold.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BUNDLED_MODEL = REPO / "edge" / "models" / "emocam-fer6.tflite"
# The network --init-from bundled holds (read here, not imported: these cases run the CLIs only).
BUNDLED_DESCRIPTION = REPO / "emocam" / "train" / "bundled" / "emocam-fer6.json"
BUNDLED_ARCHITECTURE = json.loads(BUNDLED_DESCRIPTION.read_text())["architecture"]
TIMEOUT = 120.0
# The command each CLI name stands for: the package's own modules, so a checkout without the
# console scripts on PATH runs them too.
COMMANDS = {
    "emocam": [sys.executable, "-m", "emocam.edge"],
    "emocam-train": [sys.executable, "-m", "emocam.train.cli"],
    "emocam-convert": [sys.executable, "-m", "emocam.convert.cli"],
}
LOG_LINE = re.compile(r"(DEBUG|INFO|WARNING) \S+: ")
ERROR_LINE = re.compile(r"(ERROR \S+: |emocam(-train|-convert)?( [a-z-]+)?: )")

Setup = Callable[[Path], None]


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]  # the CLI's name, then its arguments; "{tmp}" is the case's folder
    exit: int
    names: str  # the error line contains this (the path, key, flag or value)
    setup: tuple[Setup, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    tensorflow: bool = False  # the command imports TensorFlow before it fails
    known: str = ""  # a known defect: the case is expected to fail (strictly) until it is fixed


# --- what the cases set up -----------------------------------------------------------------------


def text(relative: str, content: str) -> Setup:
    def write(tmp: Path) -> None:
        path = tmp / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)

    return write


def folder(relative: str) -> Setup:
    return lambda tmp: (tmp / relative).mkdir(parents=True, exist_ok=True)


def faces(relative: str, classes: tuple[str, ...] = ("angry", "happy", "sad"), per_class: int = 4) -> Setup:
    """<relative>/<class>/<i>.png: small noisy grey faces (a user's own-faces layout)."""

    def write(tmp: Path) -> None:
        import cv2

        rng = np.random.default_rng(0)
        for label in classes:
            (tmp / relative / label).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                cv2.imwrite(str(tmp / relative / label / f"{i}.png"), rng.integers(0, 256, (48, 48), np.uint8))

    return write


def kaggle(relative: str, per_class: int = 10) -> Setup:
    """<relative>/train/<class>/ and <relative>/test/<class>/: the Kaggle FER-2013 layout."""
    parts = (faces(f"{relative}/train", per_class=per_class), faces(f"{relative}/test", per_class=2))
    return lambda tmp: [part(tmp) for part in parts] and None


def zipped(relative: str, members: Mapping[str, str]) -> Setup:
    def write(tmp: Path) -> None:
        (tmp / relative).parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(tmp / relative, "w") as archive:
            for name, content in members.items():
                archive.writestr(name, content)

    return write


def model(relative: str, sidecar: bool = True, content: bytes | None = None, same_sha: bool = False) -> Setup:
    """The bundled model as <relative> (and its sidecar), or ``content`` in its place (``same_sha``:
    with the sidecar's sha256 made to match it)."""

    def write(tmp: Path) -> None:
        path = tmp / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(BUNDLED_MODEL.read_bytes() if content is None else content)
        if sidecar:
            info = json.loads(BUNDLED_MODEL.with_suffix(".json").read_text())
            if same_sha:
                info["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
            path.with_suffix(".json").write_text(json.dumps(info))

    return write


LABELS = '["angry", "fear", "happy", "neutral", "sad", "surprise"]'
RUN_CONFIG = json.dumps({"architecture": "tiny", "classes": "six", "seed": 0, "val_fraction": 0.1, "data": ""})


def run_files(relative: str, best: bool = True, config: str = RUN_CONFIG) -> Setup:
    """A run directory's small files (labels, config, state), with a best.keras that is no model."""
    parts = [text(f"{relative}/labels.json", LABELS), text(f"{relative}/config.json", config),
             text(f"{relative}/state.json", '{"epoch": 1, "best_val_accuracy": 0.2}')]
    if best:
        parts.append(text(f"{relative}/best.keras", "precious"))
    return lambda tmp: [part(tmp) for part in parts] and None


# --- the table -------------------------------------------------------------------------------------

FIT = ("emocam-train", "fit", "--data", "{tmp}/data", "--out", "{tmp}/run", "--architecture", "tiny")
FINE_TUNE = ("emocam-train", "fit", "--data", "{tmp}/mine", "--init-from", "bundled", "--out", "{tmp}/run")
FIT_ZIP = ("emocam-train", "fit", "--data", "{tmp}/data.zip", "--out", "{tmp}/run", "--architecture", "tiny")
EVALUATE = ("emocam-train", "evaluate", str(BUNDLED_MODEL), "{tmp}/data")
TOML = "{tmp}/emocam.toml"
MINE = text("emocam.toml", '[model]\npath = "mine.tflite"\n')


TLS_CONFIG = text("emocam.toml", '[mqtt]\nurl = "mqtts://localhost"\nca_file = "{tmp}/ca.pem"\n')


def config_case(id: str, toml: str, names: str, command: str = "check-config", exit: int = 2) -> Case:
    return Case(id, ("emocam", command, "--config", TOML), exit, names, (text("emocam.toml", toml),))


CASES: list[Case] = [
    # --- emocam: the config file ---
    Case("config file missing", ("emocam", "check-config", "--config", "{tmp}/nope.toml"), 2, "{tmp}/nope.toml"),
    Case("config path is a folder", ("emocam", "check-config", "--config", "{tmp}"), 2, "{tmp}"),
    Case("config env missing", ("emocam", "check-config"), 2, "{tmp}/nope.toml",
         env={"EMOCAM_CONFIG": "{tmp}/nope.toml"}),
    config_case("config not TOML", "[source\nname = 1\n", "{tmp}/emocam.toml"),
    config_case("unknown section", "[camera]\nfps = 10\n", "camera"),
    config_case("unknown key", "[source]\nfsp = 10\n", "source.fsp"),
    config_case("wrong type", '[source]\nfps = "fast"\n', "source.fps"),
    config_case("value out of range", "[tracker]\nmin_iou = 2.0\n", "tracker.min_iou"),
    config_case("frame width -1", "[source]\nwidth = -1\n", "source.width"),
    config_case("mqtt qos 3", "[mqtt]\nqos = 3\n", "mqtt.qos"),
    config_case("mqtt keepalive 0", "[mqtt]\nkeepalive = 0\n", "mqtt.keepalive"),
    config_case("log level", 'log_level = "loud"\n', "loud"),
    config_case("unknown detector", '[detector]\nname = "yolo"\n', "yolo"),
    config_case("realtime 'yes' under --no-realtime", '[source]\nrealtime = "yes"\n', "source.realtime", "run"),
    config_case("password in the broker url", '[mqtt]\nurl = "mqtt://me:secret@localhost"\n', "password"),
    config_case("bad topic prefix", '[mqtt]\ntopic_prefix = "a/#"\n', "a/#"),
    Case("bad env override", ("emocam", "check-config"), 2, "loud", env={"EMOCAM_LOG_LEVEL": "loud"}),
    Case("bad env broker", ("emocam", "check-config"), 2, "ftp://x", env={"EMOCAM_BROKER": "ftp://x"}),
    # --- emocam: the model ---
    config_case("model missing", '[model]\npath = "{tmp}/gone.tflite"\n', "gone.tflite", exit=3),
    Case("model without sidecar", ("emocam", "check-config", "--config", TOML), 3, "mine.json",
         (model("mine.tflite", sidecar=False), MINE)),
    Case("model not its sidecar's", ("emocam", "check-config", "--config", TOML), 3, "mine.tflite",
         (model("mine.tflite", content=b"not a flatbuffer" * 64), MINE)),
    Case("corrupt model, sidecar agrees", ("emocam", "check-config", "--config", TOML), 3, "mine.tflite",
         (model("mine.tflite", content=b"not a flatbuffer" * 64, same_sha=True), MINE)),
    # --- emocam: the source ---
    Case("source file missing", ("emocam", "run", "--source", "{tmp}/clip.mp4", "--no-realtime"), 4, "{tmp}/clip.mp4"),
    Case("source folder empty", ("emocam", "run", "--source", "{tmp}/frames", "--no-realtime"), 4, "{tmp}/frames",
         (folder("frames"),)),
    Case("source folder, nothing decodes", ("emocam", "run", "--source", "{tmp}/frames", "--no-realtime"), 4,
         "{tmp}/frames", (text("frames/a.jpg", "not a jpeg"), text("frames/b.png", "nor a png"))),
    Case("source: a text file named .mp4", ("emocam", "run", "--source", "{tmp}/clip.mp4", "--no-realtime"), 4,
         "clip.mp4", (text("clip.mp4", "not a video"),)),
    Case("source camera missing", ("emocam", "run", "--source", "/dev/video63", "--no-realtime"), 4, "camera 63"),
    Case("source env missing", ("emocam", "run", "--no-realtime"), 4, "{tmp}/gone.mp4",
         env={"EMOCAM_SOURCE": "{tmp}/gone.mp4"}),
    # --- emocam: the broker ---
    # A broker URL is configuration, from a flag or the file: exit 2, as every other key.
    Case("broker url scheme", ("emocam", "run", "--broker", "ftp://x", "--source", "{tmp}/frames"), 2, "ftp://x",
         (faces("frames", ("happy",), 1),)),
    Case("broker url password", ("emocam", "run", "--broker", "mqtt://me:pw@localhost"), 2, "password"),
    Case("broker port out of range", ("emocam", "run", "--broker", "mqtt://localhost:99999"), 2, "99999"),
    Case("TLS file missing", ("emocam", "run", "--config", TOML, "--source", "{tmp}/frames"), 6, "{tmp}/ca.pem",
         (TLS_CONFIG, faces("frames", ("happy",), 1))),
    Case("check-config: TLS file missing", ("emocam", "check-config", "--config", TOML), 6, "{tmp}/ca.pem",
         (TLS_CONFIG,)),
    Case("device id with a slash", ("emocam", "run", "--device-id", "a/b"), 2, "a/b"),
    Case("device id wildcard", ("emocam", "run", "--device-id", "cam+1"), 2, "cam+1"),
    Case("listen: bad device id", ("emocam", "listen", "--device", "a/#"), 2, "a/#"),
    Case("listen: bad topic prefix", ("emocam", "listen", "--config", TOML), 2, "a/+",
         (text("emocam.toml", '[mqtt]\ntopic_prefix = "a/+"\n'),)),
    Case("listen: summary -1", ("emocam", "listen", "--summary", "-1"), 2, "--summary"),
    Case("remove-discovery without broker", ("emocam", "remove-discovery"), 2, "broker"),
    Case("unknown command", ("emocam", "start"), 2, "start"),
    # --- emocam-train fit: the flags, refused before any data is read or any file written ---
    Case("fit --batch-size 0", (*FIT, "--batch-size", "0"), 2, "--batch-size 0"),
    Case("fit --batch-size -1", (*FIT, "--batch-size", "-1"), 2, "--batch-size -1"),
    Case("fit --epochs 0", (*FIT, "--epochs", "0"), 2, "--epochs 0"),
    Case("fit --epochs abc", (*FIT, "--epochs", "abc"), 2, "'abc'"),
    Case("fit --learning-rate -1", (*FIT, "--learning-rate", "-1"), 2, "--learning-rate -1"),
    Case("fit --learning-rate nan", (*FIT, "--learning-rate", "nan"), 2, "--learning-rate nan"),
    Case("fit --label-smoothing 2", (*FIT, "--label-smoothing", "2"), 2, "--label-smoothing 2"),
    Case("fit --limit-per-class -5", (*FIT, "--limit-per-class", "-5"), 2, "--limit-per-class -5"),
    Case("fit --max-minutes -1", (*FIT, "--max-minutes", "-1"), 2, "--max-minutes -1"),
    Case("fit --stop-at-epoch -2", (*FIT, "--stop-at-epoch", "-2"), 2, "--stop-at-epoch -2"),
    Case("fit --val-fraction 1", (*FIT, "--val-fraction", "1"), 2, "--val-fraction 1"),
    Case("fit --architecture nope", (*FIT, "--architecture", "nope"), 2, "'nope'"),
    Case("fit --class-weighting typo", (*FIT, "--class-weighting", "sqtr"), 2, "'sqtr'"),
    Case("fit --classes typo", (*FIT, "--classes", "sixx"), 2, "'sixx'"),
    Case("fit --precision fp8", (*FIT, "--precision", "fp8"), 2, "'fp8'"),
    Case("fit --crop on a flatten head", (*FIT, "--crop", "40"), 2, "--crop 40"),
    Case("fit without --data", ("emocam-train", "fit", "--out", "{tmp}/run"), 2, "--data"),
    Case("fit --init-from: not a Keras file", (*FIT, "--init-from", "{tmp}/old.keras"), 2, "{tmp}/old.keras",
         (kaggle("data"), text("old.keras", "not a model"))),
    Case("fit --init-from: a zip that is no Keras model", (*FIT, "--init-from", "{tmp}/old.keras"), 2,
         "{tmp}/old.keras", (kaggle("data"), zipped("old.keras", {"a.txt": "x"})), tensorflow=True),
    Case("fit --init-from missing", (*FIT, "--init-from", "{tmp}/old"), 2, "--init-from {tmp}/old", (kaggle("data"),)),
    # --- emocam-train fit: the data ---
    Case("fit --data missing", FIT, 2, "{tmp}/data"),
    Case("fit --data: a folder of other things", FIT, 2, "{tmp}/data", (folder("data/pictures"),)),
    Case("fit --data: a zip that is no dataset", FIT_ZIP, 2, "{tmp}/data.zip", (zipped("data.zip", {"a.txt": "hi"}),)),
    Case("fit --data: a text file named .zip", FIT_ZIP, 2, "{tmp}/data.zip", (text("data.zip", "hello"),)),
    Case("fit --data: an unknown class folder", FIT, 2, "{tmp}/data/train/cats",
         (kaggle("data"), faces("data/train/cats", ("x",), 1))),
    Case("fit --data: nothing decodes", FIT, 2, "{tmp}/data/happy/0.png",
         (text("data/happy/0.png", "no png"), text("data/sad/0.png", "no png"))),
    Case("fit --extra-data missing", (*FIT, "--extra-data", "{tmp}/mine"), 2, "{tmp}/mine", (kaggle("data"),)),
    Case("fit --data: too few faces to hold any out", FIT, 2, "--val-fraction", (kaggle("data", 4),)),
    # --- emocam-train fit: fine-tuning the bundled model on a folder of your own faces ---
    Case("fine-tune: one label only", FINE_TUNE, 2, "one class only", (faces("mine", ("happy",)),)),
    Case("fine-tune: a label the model lacks", FINE_TUNE, 2, "'disgust'", (faces("mine", ("happy", "disgust")),)),
    Case("fine-tune: a folder that is no label", FINE_TUNE, 2, "cats", (faces("mine", ("happy", "sad", "cats")),)),
    Case("fine-tune: every label folder empty", FINE_TUNE, 2, "{tmp}/mine holds no images",
         (folder("mine/happy"), folder("mine/sad"))),
    Case("fine-tune: images not in label folders", FINE_TUNE, 2, "{tmp}/mine", (text("mine/0.png", "x"),)),
    Case("fine-tune: label folders one level down", FINE_TUNE, 2, "--data {tmp}/mine/faces", (faces("mine/faces"),)),
    Case("fine-tune: bundled with another architecture", (*FINE_TUNE, "--architecture", "vgg-m"), 2,
         f"bundled holds {BUNDLED_ARCHITECTURE}", (faces("mine"),)),
    # --- emocam-train fit: the run directory ---
    Case("fit over a finished run", FIT, 2, "--overwrite", (kaggle("data"), run_files("run"))),
    Case("fit --out is a file", FIT, 2, "--out {tmp}/run", (kaggle("data"), text("run", "a file"))),
    Case("fit --resume: a folder that is not a run", (*FIT, "--resume"), 2, "{tmp}/run",
         (kaggle("data"), text("run/notes.txt", "mine")),),
    Case("fit --resume: a run without last.keras", (*FIT, "--resume"), 2, "last.keras",
         (kaggle("data"), run_files("run")),),
    Case("fit --resume: config.json not JSON", (*FIT, "--resume"), 2, "{tmp}/run/config.json",
         (kaggle("data"), run_files("run", config="{oops"))),
    Case("fit --resume: config.json of wrong types", (*FIT, "--resume"), 2, "epochs",
         (kaggle("data"), run_files("run", config='{"epochs": "many", "data": "x"}'))),
    Case("train: unknown command", ("emocam-train", "fitt"), 2, "'fitt'"),
    # --- emocam-train evaluate and check-data ---
    Case("evaluate: run dir missing", ("emocam-train", "evaluate", "{tmp}/run", "{tmp}/data"), 2, "{tmp}/run",
         (kaggle("data"),)),
    Case("evaluate --split tset", (*EVALUATE, "--split", "tset"), 2, "'tset'", (kaggle("data"),)),
    Case("evaluate: data missing", EVALUATE, 2, "{tmp}/data"),
    Case("evaluate: tflite without sidecar", ("emocam-train", "evaluate", "{tmp}/m.tflite", "{tmp}/data"), 2,
         "{tmp}/m.json", (model("m.tflite", sidecar=False), kaggle("data"))),
    Case("evaluate --jpeg-quality 101", (*EVALUATE, "--jpeg-quality", "101"), 2, "--jpeg-quality 101",
         (kaggle("data"),)),
    Case("evaluate --batch-size 0", (*EVALUATE, "--batch-size", "0"), 2, "0", (kaggle("data"),)),
    Case("evaluate --confusion-png not .png", (*EVALUATE, "--confusion-png", "{tmp}/cm.jpg"), 2, "{tmp}/cm.jpg",
         (kaggle("data"),)),
    Case("evaluate --split validation: config.json not JSON",
         ("emocam-train", "evaluate", "{tmp}/run", "{tmp}/data", "--split", "validation"), 2,
         "{tmp}/run/config.json", (kaggle("data"), run_files("run", config="{oops"))),
    Case("evaluate: a zip that is no Keras model", ("emocam-train", "evaluate", "{tmp}/m.keras", "{tmp}/data"), 2,
         "{tmp}/m.keras", (zipped("m.keras", {"a.txt": "x"}), text("labels.json", LABELS), kaggle("data")),
         tensorflow=True),
    Case("check-data: path missing", ("emocam-train", "check-data", "{tmp}/data"), 2, "{tmp}/data"),
    # --- emocam-convert ---
    Case("convert: run missing", ("emocam-convert", "{tmp}/run"), 2, "{tmp}/run"),
    Case("convert: run without best.keras", ("emocam-convert", "{tmp}/run"), 2, "best.keras",
         (run_files("run", best=False),)),
    Case("convert: best.keras is no model", ("emocam-convert", "{tmp}/run", "--data", "{tmp}/data"), 2,
         "{tmp}/run/best.keras", (run_files("run"), kaggle("data"))),
    Case("convert: best.keras a zip but no model", ("emocam-convert", "{tmp}/run", "--data", "{tmp}/data"), 2,
         "{tmp}/run/best.keras", (run_files("run", best=False), zipped("run/best.keras", {"a.txt": "x"}),
                                  kaggle("data")), tensorflow=True),
    Case("convert: labels.json missing", ("emocam-convert", "{tmp}/m.keras"), 2, "labels.json",
         (text("m.keras", "x"),)),
    Case("convert: config.json not JSON", ("emocam-convert", "{tmp}/run"), 2, "{tmp}/run/config.json",
         (run_files("run", config="{oops"),)),
    Case("convert: no data anywhere", ("emocam-convert", "{tmp}/run"), 2, "--data", (run_files("run"),)),
    Case("convert --temperature hot", ("emocam-convert", "{tmp}/run", "--temperature", "hot"), 2, "'hot'"),
    Case("convert --temperature 0", ("emocam-convert", "{tmp}/run", "--temperature", "0"), 2, "'0'"),
    Case("convert --centre-crop -1", ("emocam-convert", "{tmp}/run", "--centre-crop", "-1"), 2, "-1"),
    Case("convert --centre-crop x", ("emocam-convert", "{tmp}/run", "--centre-crop", "x"), 2, "'x' is not a whole"),
    Case("convert --out under a file", ("emocam-convert", "{tmp}/run", "--data", "{tmp}/data", "--out",
                                         "{tmp}/notes.txt/m.tflite"), 2,
         "{tmp}/notes.txt", (run_files("run"), kaggle("data"), text("notes.txt", "x"))),
    Case("convert --out not .tflite", ("emocam-convert", "{tmp}/run", "--out", "{tmp}/m.onnx"), 2, "{tmp}/m.onnx"),
    Case("convert --ensemble-with missing", ("emocam-convert", "{tmp}/run", "--data", "{tmp}/data",
                                             "--ensemble-with", "{tmp}/other"), 2, "{tmp}/other",
         (run_files("run"), kaggle("data"))),
    Case("convert --also int4", ("emocam-convert", "{tmp}/run", "--also", "int4"), 2, "int4"),
    Case("convert --version 1.0 (old flag)", ("emocam-convert", "{tmp}/run", "--version", "1.0"), 2,
         "--model-version 1.0"),
]


# --- running one -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    exit: int
    stderr: str
    stdout: str
    seconds: float

    @property
    def message(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else ""


def fill(value: str, tmp: Path) -> str:
    return value.replace("{tmp}", str(tmp))


def run_case(case: Case, tmp: Path) -> Outcome:
    for step in case.setup:
        step(tmp)
    for path in tmp.rglob("*.toml"):  # configs name the case's folder too
        path.write_text(fill(path.read_text(), tmp))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMOCAM_", "NOTIFY_SOCKET", "WATCHDOG_"))}
    env.update({k: fill(v, tmp) for k, v in case.env.items()})
    env["XDG_CACHE_HOME"] = str(tmp / "cache")  # decoded datasets stay in the case's folder
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    name, *args = case.argv
    started = time.monotonic()
    done = subprocess.run([*COMMANDS[name], *(fill(a, tmp) for a in args)], capture_output=True, text=True,
                          timeout=TIMEOUT, env=env, cwd=tmp, stdin=subprocess.DEVNULL)
    return Outcome(done.returncode, done.stderr, done.stdout, time.monotonic() - started)


def problems(case: Case, outcome: Outcome, tmp: Path) -> list[str]:
    """What is wrong with how the CLI answered ``case``; empty when it answered as documented."""
    found = []
    if outcome.exit != case.exit:
        found.append(f"exit {outcome.exit}, expected {case.exit}")
    if "Traceback" in outcome.stderr:
        found.append("a traceback")
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    if lines and lines[0].startswith("usage:"):  # argparse: its usage (several lines), then one error line
        lines = lines[-1:]
    errors = [line for line in lines if ERROR_LINE.match(line)]
    if len(errors) != 1 or lines[-1] != errors[0]:
        found.append(f"{len(errors)} error lines where one, the last, was expected")
    others = [line for line in lines if not ERROR_LINE.match(line) and not LOG_LINE.match(line)]
    if others:
        found.append(f"stray lines {others[:3]}")
    if fill(case.names, tmp) not in outcome.message:
        found.append(f"message does not name {fill(case.names, tmp)!r}")
    return found


# --- pytest ---------------------------------------------------------------------------------------


def _params() -> list:
    import pytest

    params = []
    for case in CASES:
        marks = [pytest.mark.tensorflow, pytest.mark.slow] if case.tensorflow else []
        if case.known:
            marks.append(pytest.mark.xfail(strict=True, reason=case.known))
        params.append(pytest.param(case, id=case.id, marks=marks))
    return params


if "pytest" in sys.modules:
    import pytest

    def test_the_table_has_distinct_cases_across_the_three_clis() -> None:
        assert len(CASES) >= 45
        assert len({case.id for case in CASES}) == len(CASES)
        assert {case.argv[0] for case in CASES} == set(COMMANDS)

    @pytest.mark.parametrize("case", _params())
    def test_bad_input_is_one_line_with_its_exit_code(case: Case, tmp_path: Path) -> None:
        outcome = run_case(case, tmp_path)
        assert not problems(case, outcome, tmp_path), f"{problems(case, outcome, tmp_path)}:\n{outcome.stderr}"


# --- the table as markdown ------------------------------------------------------------------------


def _cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def main(argv: list[str]) -> int:
    """The table as markdown; arguments keep only the cases whose id contains one of them."""
    print("| case | command | exit | message |\n|---|---|---|---|")
    failed = 0
    started = time.monotonic()
    chosen = [case for case in CASES if not argv or any(word in case.id for word in argv)]
    for case in chosen:
        tmp = Path(tempfile.mkdtemp(prefix="emocam-bad-"))
        try:
            outcome = run_case(case, tmp)
            wrong = problems(case, outcome, tmp)
            command = shlex.join(case.argv).replace(str(REPO) + "/", "")
            message = outcome.message.replace(str(tmp), "{tmp}")
            flag = f" **({'; '.join(wrong)})**".replace(str(tmp), "{tmp}") if wrong else ""
            print(f"| {_cell(case.id)} | `{_cell(command)}` | {outcome.exit} | {_cell(message)}{_cell(flag)} |",
                  flush=True)
            failed += bool(wrong)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{len(chosen)} cases, {failed} not as documented, {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
