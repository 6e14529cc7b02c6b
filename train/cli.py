"""``emocam-train``: fit, evaluate and check-data, each in its own module."""

from __future__ import annotations

import logging
import sys

from emocam import __version__
from emocam.train.tf_startup import quiet_tensorflow_startup

COMMANDS = {
    "fit": ("emocam.train.fit", "train a model into a run directory"),
    "evaluate": ("emocam.train.evaluate", "score a .keras or .tflite model on a dataset"),
    "check-data": ("emocam.train.sanity", "class counts, sharpness and contrast of a dataset"),
}


def usage() -> str:
    lines = [f"  {name:<11} {text}" for name, (_, text) in COMMANDS.items()]
    return (
        f"usage: emocam-train [-h] [--version] {{{','.join(COMMANDS)}}} ...\n\n"
        "commands (emocam-train COMMAND --help for each one's options):\n" + "\n".join(lines) + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        sys.stdout.write(usage())
        return 0
    if argv[:1] == ["--version"]:
        print(f"emocam-train {__version__}")
        return 0
    if not argv or argv[0] not in COMMANDS:
        problem = f"unknown command {argv[0]!r}" if argv else "a command is required"
        sys.stderr.write(f"{usage()}\nemocam-train: error: {problem}\n")
        return 2
    quiet_tensorflow_startup()  # before any command module can import TensorFlow
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    module = __import__(COMMANDS[argv[0]][0], fromlist=["main"])
    return int(module.main(argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
