"""Value checks for the settings sections, shared so that every section words its errors alike.

Each check raises ValueError starting ``name=value``; ``emocam.edge.service.config`` turns that into a
ConfigError naming the dotted key (``source.width: 5 must be in 16..8192``).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any


def check_range(name: str, value: Any, low: float | None = None, high: float | None = None,
                above: float | None = None) -> None:
    """``value`` is a finite number, ``> above`` and within ``low..high`` (each bound optional)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}={value!r} must be a number")
    if above is not None and not value > above:
        raise ValueError(f"{name}={value!r} must be greater than {above:g}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"{low:g}..{high:g}" if low is not None and high is not None else f">= {low:g}"
        raise ValueError(f"{name}={value!r} must be in {bounds}")


def check_whole(name: str, value: Any, low: int, high: int | None = None) -> None:
    """``value`` is an int (not a bool) within ``low..high``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}={value!r} must be a whole number")
    check_range(name, value, low, high)


def check_choice(name: str, value: Any, allowed: Collection[Any]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(str(a) for a in allowed)}")
