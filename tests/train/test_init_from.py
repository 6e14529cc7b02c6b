"""``emocam-train fit --init-from``: a warm start copies every weight, or refuses with the path named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from emocam.train.architectures import build  # noqa: E402
from emocam.train.fit import load_initial_weights  # noqa: E402


def test_weights_are_copied_from_a_run_directory(tmp_path: Path) -> None:
    source = build("tiny", 48, 6)
    source.set_weights(
        [np.random.default_rng(i).normal(size=w.shape).astype(w.dtype) for i, w in enumerate(source.get_weights())]
    )
    (tmp_path / "run").mkdir()
    source.save(tmp_path / "run" / "best.keras")
    target = build("tiny", 48, 6)
    load_initial_weights(target, tmp_path / "run")
    for got, want in zip(target.get_weights(), source.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)


def test_mismatches_and_missing_files_name_the_path(tmp_path: Path) -> None:
    build("tiny", 48, 7).save(tmp_path / "seven.keras")
    with pytest.raises(ValueError, match=r"seven\.keras: its weights do not fit --architecture .* with 6 classes"):
        load_initial_weights(build("tiny", 48, 6), tmp_path / "seven.keras")
    with pytest.raises(ValueError, match=r"--init-from .*nowhere: no such file"):
        load_initial_weights(build("tiny", 48, 6), tmp_path / "nowhere")
