"""RetryBudget: a cap on retries relative to requests, shared by every execution of a policy.

Per-request retry limits multiply load during an outage: three attempts each turn 1,000 requests
into 3,000. A budget (the Finagle design) caps the retries across all requests instead:

    retries in the last ``ttl`` seconds <= ratio * requests in the last ``ttl`` seconds
                                          + min_per_second * ttl

so a healthy service retries its occasional failure freely, while a dead dependency sees at most
``1 + ratio`` times the traffic (plus the small floor that lets low-traffic callers retry at all).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._validate import NON_NEGATIVE, POSITIVE, RATIO, not_finite, window_problem
from ._options import Options, Problem, option, vars_of

if TYPE_CHECKING:
    from ..context import ExecutionReport

__all__ = ["BudgetOptions", "RetryBudget"]

_SLICES = 10


@dataclass(frozen=True)
class BudgetOptions(Options):
    """Options of a :class:`RetryBudget` (see it for each), validated when built."""

    ratio: float = option(RATIO, 0.2)
    min_per_second: float = option(NON_NEGATIVE, 10.0)
    ttl: float = option(POSITIVE, 10.0)

    def _cross_checks(self) -> list[Problem]:
        # What would overflow at run time: tiny or overflowing derived values.
        if not (POSITIVE.accepts(self.ttl) and NON_NEGATIVE.accepts(self.min_per_second)):
            return []  # already refused (a shadow of invalid options)
        given = f"min_per_second={self.min_per_second!r}, ttl={self.ttl!r}"
        reserve = self.min_per_second * self.ttl
        problem = window_problem(self.ttl) or not_finite("min_per_second * ttl", reserve, given)
        return [] if problem is None else [Problem.bound("ttl", problem)]


class RetryBudget:
    """Allow retries up to ``ratio`` of requests over a sliding window, plus a floor.

    Args:
        ratio: Retries allowed per request (0.2: one retry for every five requests).
        min_per_second: Retries per second allowed whatever the traffic, so that a caller making
            few requests can still retry.
        ttl: Length of the sliding window in seconds. The window slides in steps of ``ttl / 10``.

    Times are passed in by the caller (the retry policy reads its own clock), so one budget can
    be shared by several retry policies of the same clock.
    """

    __slots__ = (
        "_current",
        "_current_end",
        "_deposits",
        "_epochs",
        "_min_per_second",
        "_options",
        "_ratio",
        "_reserve",
        "_slice",
        "_ttl",
        "_withdrawals",
    )

    # Kept from the options (see Options._keep).
    _ratio: float
    _min_per_second: float
    _ttl: float

    def __init__(self, *, ratio: float = 0.2, min_per_second: float = 10.0, ttl: float = 10.0):
        self._options = BudgetOptions._of_arguments("RetryBudget", locals())
        self._options._keep(self)  # self._ratio, self._min_per_second, self._ttl
        self._reserve = self._min_per_second * self._ttl
        self._slice = self._ttl / _SLICES
        self._deposits = [0] * _SLICES
        self._withdrawals = [0] * _SLICES
        self._epochs = [-1] * _SLICES
        # The slice "now" falls in, so that counting a request is one comparison and one add.
        self._current = 0
        self._current_end = -math.inf

    @property
    def ratio(self) -> float:
        """Retries allowed per request."""
        return self._ratio

    @property
    def options(self) -> BudgetOptions:
        """The budget's options."""
        return self._options

    @property
    def min_per_second(self) -> float:
        """Retries per second allowed whatever the traffic."""
        return self._min_per_second

    @property
    def ttl(self) -> float:
        """Length of the sliding window, in seconds."""
        return self._ttl

    def describe(self, now: float) -> dict[str, Any]:
        """The budget's configuration and the retries it allows at ``now``, as plain data."""
        return {**vars_of(self._options), "balance": self.balance(now)}

    def __repr__(self) -> str:
        return (
            f"RetryBudget(ratio={self._ratio:g}, min_per_second={self._min_per_second:g}, "
            f"ttl={self._ttl:g})"
        )

    def _slot(self, now: float) -> int:
        if now < self._current_end:
            return self._current
        epoch = int(now // self._slice)
        index = epoch % _SLICES
        if self._epochs[index] != epoch:
            self._epochs[index] = epoch
            self._deposits[index] = 0
            self._withdrawals[index] = 0
        self._current = index
        self._current_end = (epoch + 1) * self._slice
        return index

    def deposit(self, now: float) -> None:
        """Count one request (an execution, not a try) made at monotonic time ``now``."""
        self._deposits[self._current if now < self._current_end else self._slot(now)] += 1

    def balance(self, now: float) -> float:
        """Retries still allowed at ``now`` (may be fractional; a retry needs at least 1)."""
        oldest = int(now // self._slice) - _SLICES
        deposits = withdrawals = 0
        for index, epoch in enumerate(self._epochs):
            if epoch > oldest:
                deposits += self._deposits[index]
                withdrawals += self._withdrawals[index]
        return self._ratio * deposits + self._reserve - withdrawals

    def try_withdraw(self, now: float) -> bool:
        """Take one retry from the budget if it allows one; return whether it did."""
        if self.balance(now) < 1.0:
            return False
        self._withdrawals[self._slot(now)] += 1
        return True


def deposit_once(budget: RetryBudget, report: ExecutionReport, now: float) -> None:
    """Count the execution ``report`` belongs to as one request in ``budget``, unless it has
    been counted there already.

    A retry and a hedging sharing one budget both see every request (and a retry around
    hedging runs it once per round); counting each time would let a 10 % budget allow 20 %.
    """
    try:
        counted = report._deposited
    except AttributeError:  # a report built in place, without __init__
        counted = None
    if counted is budget:
        return
    if counted is None:
        report._deposited = budget
    elif isinstance(counted, set):
        if budget in counted:
            return
        counted.add(budget)
    else:
        report._deposited = {counted, budget}  # policies with budgets of their own
    budget.deposit(now)
