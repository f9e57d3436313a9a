"""Checks of policy options: a bad value raises ``ValueError`` naming the option and the value."""

from __future__ import annotations

import math
from typing import Any


def positive(owner: str, name: str, value: Any, *, allow_zero: bool = False) -> float:
    """A finite number > 0 (or >= 0 with ``allow_zero``)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        expected = "a finite number >= 0" if allow_zero else "a finite number > 0"
        raise ValueError(f"{owner}: {name} must be {expected}, got {value!r}")
    return float(value)


def positive_or_none(
    owner: str, name: str, value: Any, *, allow_zero: bool = False
) -> float | None:
    """``None``, or what :func:`positive` accepts."""
    return None if value is None else positive(owner, name, value, allow_zero=allow_zero)


def at_least(owner: str, name: str, value: Any, minimum: int) -> int:
    """An integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return value


def ratio(owner: str, name: str, value: Any) -> float:
    """A number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{owner}: {name} must be a number between 0 and 1, got {value!r}")
    return float(value)
