"""The emocam CLIs as subprocess commands, for the scripts that drive them (finish_recipe, bench/).

Each runs under this interpreter, not whatever ``emocam-train`` comes first on $PATH: in a venv
that is not activated there is none (CI runs so), and elsewhere it may be another install's.
"""

from __future__ import annotations

import sys

EMOCAM_TRAIN = (sys.executable, "-m", "emocam.train.cli")
EMOCAM_CONVERT = (sys.executable, "-m", "emocam.convert.cli")
