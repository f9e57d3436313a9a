"""Checks of option values, shared by the policies and the profiles.

A policy given a bad value raises ``ValueError`` naming the option and the value
(``Retry: max_attempts must be an integer >= 1, got -2``); a configuration file names where the
value is instead (``profiles.payments.retry.max_attempts: expected an integer >= 1, got -2``).
Both describe what was expected with the same :class:`Check`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Check:
    """What a value must be (``expected``, for messages), and how to tell."""

    expected: str
    accepts: Callable[[Any], bool]
    convert: Callable[[Any], Any] = lambda value: value

    def __call__(self, owner: str, name: str, value: Any) -> Any:
        """``value``, converted; or ``ValueError`` naming ``owner``, ``name`` and the value."""
        if not self.accepts(value):
            raise ValueError(f"{owner}: {name} must be {self.expected}, got {value!r}")
        return self.convert(value)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


POSITIVE = Check("a finite number > 0", lambda v: _number(v) and v > 0, float)
NON_NEGATIVE = Check("a finite number >= 0", lambda v: _number(v) and v >= 0, float)
RATIO = Check("a number between 0 and 1", lambda v: _number(v) and 0 <= v <= 1, float)
BOOLEAN = Check("true or false", lambda v: isinstance(v, bool))
TEXT = Check("a non-empty string", lambda v: isinstance(v, str) and bool(v))


def integer(minimum: int, maximum: int | None = None) -> Check:
    """An integer in ``[minimum, maximum]``."""
    expected = (
        f"an integer >= {minimum}"
        if maximum is None
        else f"an integer between {minimum} and {maximum}"
    )
    return Check(
        expected,
        lambda v: (
            isinstance(v, int)
            and not isinstance(v, bool)
            and v >= minimum
            and (maximum is None or v <= maximum)
        ),
    )


def choice(*values: str) -> Check:
    """One of ``values``."""
    return Check("one of " + ", ".join(repr(v) for v in values), lambda v: v in values)


def positive(owner: str, name: str, value: Any, *, allow_zero: bool = False) -> float:
    """A finite number > 0 (or >= 0 with ``allow_zero``)."""
    return float((NON_NEGATIVE if allow_zero else POSITIVE)(owner, name, value))


def positive_or_none(
    owner: str, name: str, value: Any, *, allow_zero: bool = False
) -> float | None:
    """``None``, or what :func:`positive` accepts."""
    return None if value is None else positive(owner, name, value, allow_zero=allow_zero)


def at_least(owner: str, name: str, value: Any, minimum: int) -> int:
    """An integer >= ``minimum``."""
    return int(integer(minimum)(owner, name, value))


def ratio(owner: str, name: str, value: Any) -> float:
    """A number in [0, 1]."""
    return float(RATIO(owner, name, value))
