"""Fixtures shared by every test package."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def fer2013_path() -> Path:
    """FER-2013 as the README describes it: $EMOCAM_FER2013, else ../shared/datasets/fer2013.zip."""
    return Path(os.environ.get("EMOCAM_FER2013", REPO.parent / "shared" / "datasets" / "fer2013.zip"))


@pytest.fixture(scope="session")
def fer2013() -> Path:
    path = fer2013_path()
    if not path.is_file():
        pytest.skip(f"FER-2013 not found at {path}; set EMOCAM_FER2013 to its .zip or fer2013.csv")
    return path
