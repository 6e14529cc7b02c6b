"""The emocam CLIs as subprocess commands, for the scripts that drive them (finish_recipe, bench/).

Each runs under this interpreter, not whatever ``emocam-train`` comes first on $PATH: in a venv
that is not activated there is none (CI runs so), and elsewhere it may be another install's.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

EMOCAM_TRAIN = (sys.executable, "-m", "emocam.train.cli")
EMOCAM_CONVERT = (sys.executable, "-m", "emocam.convert.cli")


def as_typed(command: Sequence[str]) -> str:
    """A command line as its user would type it, for messages: ``emocam-train evaluate ...``, not
    the interpreter's path and a module."""
    for prefix, name in ((EMOCAM_TRAIN, "emocam-train"), (EMOCAM_CONVERT, "emocam-convert")):
        if tuple(command[: len(prefix)]) == prefix:
            return " ".join([name, *command[len(prefix):]])
    return " ".join(command)
