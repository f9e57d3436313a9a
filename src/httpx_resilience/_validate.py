"""Checks of option values, shared by the policies, the profiles, the HTTP layer, the backends and
the testing helpers: part of the core, so that none of them imports another for it.

A policy given a bad value raises ``ValueError`` naming the option and the value
(``Retry: max_attempts must be an integer >= 1, got -2``); a configuration file names where the
value is instead (``profiles.payments.retry.max_attempts: expected an integer >= 1, got -2``).
Both describe what was expected with the same :class:`Rule`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rule:
    """What a value must be (``expected``, for messages), and how to tell."""

    expected: str
    accepts: Callable[[Any], bool]
    convert: Callable[[Any], Any] = lambda value: value
    #: How a refused value is shown in messages (a URL's password is masked, say).
    show: Callable[[Any], str] = repr

    def __call__(self, owner: str, name: str, value: Any) -> Any:
        """``value``, converted; or ``ValueError`` naming ``owner``, ``name`` and the value."""
        if not self.accepts(value):
            raise ValueError(f"{owner}: {name} must be {self.expected}, got {self.show(value)}")
        return self.convert(value)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


POSITIVE = Rule("a finite number > 0", lambda v: _number(v) and v > 0, float)
NON_NEGATIVE = Rule("a finite number >= 0", lambda v: _number(v) and v >= 0, float)
RATIO = Rule("a number between 0 and 1", lambda v: _number(v) and 0 <= v <= 1, float)
BOOLEAN = Rule("true or false", lambda v: isinstance(v, bool))
TEXT = Rule("a non-empty string", lambda v: isinstance(v, str) and bool(v))

# Tiny positive numbers pass "finite and > 0" yet overflow what a policy derives from them:
# ``RateLimiter(rate=1e-320)`` waits ``1 / rate`` seconds (inf), ``RetryBudget(ttl=1e-320)``
# divides clock readings by ``ttl / 10`` (inf, then ``int(inf)`` on the first call). These
# bounds keep those quotients finite for any clock reading up to 1e12 s (31,700 years), far
# below anything that has a meaning as a rate or a window.
#: The smallest rate per second: ``1 / rate`` (the wait for one token) stays finite.
MIN_RATE = 1e-300
#: The shortest sliding window in seconds: clock readings divided by it stay finite.
MIN_WINDOW = 1e-280


def too_small(value: float, minimum: float, why: str) -> str | None:
    """What ``value`` (already a finite number > 0) must be instead, or ``None``."""
    if value < minimum:
        return f"at least {minimum:g} ({why}), got {value!r}"
    return None


def rate_problem(rate: float) -> str | None:
    """Why a rate per second (a finite number > 0) is refused, or ``None``."""
    return too_small(rate, MIN_RATE, "1 / rate must be finite")


def window_problem(seconds: float) -> str | None:
    """Why a sliding window's length (a finite number > 0) is refused, or ``None``."""
    return too_small(seconds, MIN_WINDOW, "clock readings are divided by it")


def not_finite(name: str, value: float, given: str) -> str | None:
    """What an option must be when ``name``, derived from it, overflows (``given``: the
    values it was derived from), or ``None``."""
    if not math.isfinite(value):
        return f"small enough that {name} is finite, got {given}"
    return None


def integer(minimum: int, maximum: int | None = None) -> Rule:
    """An integer in ``[minimum, maximum]``."""
    expected = (
        f"an integer >= {minimum}"
        if maximum is None
        else f"an integer between {minimum} and {maximum}"
    )
    return Rule(
        expected,
        lambda v: (
            isinstance(v, int)
            and not isinstance(v, bool)
            and v >= minimum
            and (maximum is None or v <= maximum)
        ),
    )


def choice(*values: str) -> Rule:
    """One of ``values``."""
    return Rule("one of " + ", ".join(repr(v) for v in values), lambda v: v in values)


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


def derived(owner: str, name: str, problem: str | None) -> None:
    """``ValueError`` for the ``problem`` of option ``name`` (from :func:`too_small` or
    :func:`not_finite`), if any."""
    if problem is not None:
        raise ValueError(f"{owner}: {name} must be {problem}")


def ratio(owner: str, name: str, value: Any) -> float:
    """A number in [0, 1]."""
    return float(RATIO(owner, name, value))
