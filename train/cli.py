"""``emocam-train``: fit, evaluate and check-data, each in its own module."""

from __future__ import annotations

import logging
import os
import sys

COMMANDS = {
    "fit": ("train.fit", "train a model into a run directory"),
    "evaluate": ("train.evaluate", "score a .keras or .tflite model on a dataset"),
    "check-data": ("train.sanity", "class counts, sharpness and contrast of a dataset"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        lines = [f"  {name:<11} {text}" for name, (_, text) in COMMANDS.items()]
        print("usage: emocam-train {fit,evaluate,check-data} ...\n\n" + "\n".join(lines), file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ banner is noise here
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    module = __import__(COMMANDS[argv[0]][0], fromlist=["main"])
    return int(module.main(argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
