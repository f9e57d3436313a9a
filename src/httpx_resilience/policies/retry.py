"""Retry: try again after a handled failure, with full-jitter exponential backoff.

The waits come from any tenacity wait strategy (default
``tenacity.wait_random_exponential(multiplier=base_delay, max=max_delay)``: "full jitter", a
uniform draw between 0 and ``base_delay * 2**n`` capped at ``max_delay``), and retrying may also
be stopped by any tenacity stop strategy. On top of that, retrying stops, returning the last
outcome (the last response, or raising the last exception), when:

- the dependency asks (``Retry-After``) for a wait longer than ``max_retry_after``;
- the wait would end at or past ``context.deadline`` (there is no time left to use it);
- the shared :class:`~httpx_resilience.RetryBudget` has no retry left;
- the call cannot be replayed (``context.replayable`` is false: a POST without an
  ``Idempotency-Key``, a streaming upload).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import tenacity

from .._clock import SYSTEM_CLOCK, Clock
from .._names import callable_name
from .._validate import BOOLEAN, NON_NEGATIVE, integer
from ..context import Attempt, Context
from ..outcome import Outcome, OutcomePredicate, predicate_text
from ..telemetry import PolicyEvents
from ._options import Options, option, vars_of
from .budget import RetryBudget, deposit_once

__all__ = ["Retry", "RetryPolicyOptions"]

T = TypeVar("T")


WaitStrategy = Callable[[tenacity.RetryCallState], float]
StopStrategy = Callable[[tenacity.RetryCallState], bool]

_UNSET: Any = object()
_new = object.__new__


def _strategy_name(strategy: object) -> str:
    """A tenacity strategy as ``wait_random_exponential(multiplier=0.2, max=10.0)``."""
    fields = getattr(strategy, "__dict__", {})
    if not fields:
        return callable_name(strategy)
    arguments = ", ".join(f"{k}={v!r}" for k, v in fields.items() if not k.startswith("_"))
    return f"{type(strategy).__name__}({arguments})"


class seeded_random_exponential(tenacity.wait_random_exponential):
    """Full jitter, as ``tenacity.wait_random_exponential``, drawn from a given
    :class:`random.Random` (``Retry(rng=...)``) rather than the ``random`` module's, so that a
    seeded run waits the same each time."""

    def __init__(self, multiplier: float, max: float, rng: random.Random) -> None:
        super().__init__(multiplier=multiplier, max=max)
        self._rng = rng

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        high = tenacity.wait_exponential.__call__(self, retry_state)
        return self._rng.uniform(self.min, high)


def _handle_of(handle: object) -> Callable[[Outcome[Any]], bool] | None:
    """``handle=`` as a predicate over outcomes: as given, or, for one of tenacity's retry
    strategies (``retry_if_exception_type(...)``, ``retry_if_result(...)`` and their
    combinations: what a tenacity user writes by habit), asking it about each outcome."""
    if handle is None:
        return None
    if isinstance(handle, _ASYNC_RETRY_BASE):
        raise ValueError(
            "Retry: handle must be a predicate over outcomes or a synchronous tenacity retry "
            f"strategy; tenacity's asynchronous strategies cannot be asked in time, got {handle!r}"
        )
    if isinstance(handle, tenacity.retry_base):
        strategy = handle

        def asks_tenacity(outcome: Outcome[Any]) -> bool:
            future = tenacity.Future(1)
            if outcome.exception is not None:
                future.set_exception(outcome.exception)
            else:
                future.set_result(outcome.result)
            state = tenacity.RetryCallState(cast(Any, None), None, (), {})
            state.outcome = future
            return bool(strategy(state))

        return OutcomePredicate(asks_tenacity, _strategy_name(strategy))
    if not callable(handle):
        raise ValueError(
            "Retry: handle must be a predicate over outcomes or a tenacity retry strategy, "
            f"got {handle!r}"
        )
    return handle


try:  # tenacity >= 8.4: strategies whose predicates may be coroutine functions
    from tenacity.asyncio.retry import async_retry_base as _async_retry_base

    _ASYNC_RETRY_BASE: tuple[type, ...] = (_async_retry_base,)
except ImportError:  # pragma: no cover - older tenacity
    _ASYNC_RETRY_BASE = ()


@dataclass(frozen=True)
class RetryPolicyOptions(Options):
    """The plain-data options of a :class:`Retry` (see it for each), validated when built; a
    profile's :class:`~httpx_resilience.profiles.RetryOptions` adds its budget."""

    max_attempts: int | None = option(integer(1), 3, optional=True)
    base_delay: float = option(NON_NEGATIVE, 0.2)
    max_delay: float = option(NON_NEGATIVE, 10.0)
    respect_retry_after: bool = option(BOOLEAN, True)
    max_retry_after: float = option(NON_NEGATIVE, 60.0)


class Retry:
    """Retry handled failures with backoff.

    Args:
        max_attempts: Total tries, the first included (default 3). When ``stop`` is given and
            ``max_attempts`` is not, only ``stop`` limits the tries; when both are given, either
            ends retrying. ``None`` means no limit of its own.
        backoff: A tenacity wait strategy, called with tenacity's ``RetryCallState`` after each
            failed try (``attempt_number`` is 1 after the first). Default: full jitter,
            ``wait_random_exponential(multiplier=base_delay, max=max_delay)``.
        base_delay: Upper bound of the first random wait, in seconds (default backoff only).
        max_delay: Cap on any wait from the default backoff, in seconds.
        stop: A tenacity stop strategy (``stop_after_delay(10)``...), checked after each failed
            try with the upcoming wait known (``upcoming_sleep``).
        handle: Which outcomes are failures worth retrying: a predicate over outcomes, or one
            of tenacity's retry strategies (``retry_if_exception_type(httpx.ConnectError)``,
            ``retry_if_result(...)``, combined with ``|`` and ``&`` as tenacity allows).
            Default: the place's classifier (any exception but another policy's rejection in a
            plain pipeline; transient errors and statuses over HTTP).
        respect_retry_after: Wait at least as long as the dependency's ``Retry-After`` asks (or,
            when ``handle`` takes in a rejection, as the rejection's ``retry_after`` says).
        max_retry_after: A ``Retry-After`` longer than this ends retrying at once.
        budget: A :class:`~httpx_resilience.RetryBudget` shared by every execution of this policy,
            or ``None`` for no budget.
        clock: The clock to measure and wait with (default: the system clock).
        rng: The :class:`random.Random` the default backoff draws its jitter from (default:
            the ``random`` module's), so that a run seeded as ``rng=random.Random(7)`` waits
            the same each time; with a ``backoff`` of your own, seed that instead.
    """

    __slots__ = (
        "_backoff",
        "_base_delay",
        "_budget",
        "_clock",
        "_events",
        "_handle",
        "_max_attempts",
        "_max_delay",
        "_max_retry_after",
        "_options",
        "_respect_retry_after",
        "_retrying",
        "_stop",
    )

    # Kept from the options (see Options._keep).
    _max_attempts: int | None
    _base_delay: float
    _max_delay: float
    _respect_retry_after: bool
    _max_retry_after: float

    def __init__(
        self,
        *,
        max_attempts: int | None = _UNSET,
        backoff: WaitStrategy | None = None,
        base_delay: float = 0.2,
        max_delay: float = 10.0,
        stop: StopStrategy | None = None,
        handle: Callable[[Outcome[Any]], bool] | tenacity.retry_base | None = None,
        respect_retry_after: bool = True,
        max_retry_after: float = 60.0,
        budget: RetryBudget | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if max_attempts is _UNSET:
            max_attempts = None if stop is not None else 3
        self._options = RetryPolicyOptions._of_arguments("Retry", locals())
        self._options._keep(self)  # self._max_attempts, self._base_delay...
        if backoff is not None and not callable(backoff):
            raise ValueError(f"Retry: backoff must be a tenacity wait strategy, got {backoff!r}")
        if stop is not None and not callable(stop):
            raise ValueError(f"Retry: stop must be a tenacity stop strategy, got {stop!r}")
        handle = _handle_of(handle)
        if rng is not None and not isinstance(rng, random.Random):
            raise ValueError(f"Retry: rng must be a random.Random, got {rng!r}")
        if rng is not None and backoff is not None:
            raise ValueError(
                "Retry: rng seeds the default backoff's jitter; give a backoff of your own its "
                f"own seeded randomness instead (got backoff={_strategy_name(backoff)} and rng)"
            )
        if budget is not None and not isinstance(budget, RetryBudget):
            raise ValueError(f"Retry: budget must be a RetryBudget or None, got {budget!r}")
        self._backoff: WaitStrategy
        if backoff is not None:
            self._backoff = backoff
        elif rng is not None:
            self._backoff = seeded_random_exponential(self._base_delay, self._max_delay, rng)
        else:
            self._backoff = tenacity.wait_random_exponential(
                multiplier=self._base_delay, max=self._max_delay
            )
        self._stop = stop
        self._handle = handle
        self._budget = budget
        self._clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        self._events = PolicyEvents("retry", self._clock)
        # What tenacity's RetryCallState is built with: the strategies a wait or stop strategy
        # reading ``retry_state.retry_object`` finds are this policy's own. Never run itself.
        self._retrying = tenacity.AsyncRetrying(
            wait=self._backoff,
            stop=stop if stop is not None else tenacity.stop_never,
            sleep=self._clock.sleep,
            reraise=True,
        )

    @property
    def max_attempts(self) -> int | None:
        """Total tries allowed, the first included (``None``: only ``stop`` limits them)."""
        return self._max_attempts

    @property
    def budget(self) -> RetryBudget | None:
        """The shared retry budget, if any."""
        return self._budget

    def describe(self) -> dict[str, Any]:
        """The retry's configuration (and its budget's balance), as plain data."""
        budget, options = self._budget, self._options
        return {
            "policy": "retry",
            "options": {
                "max_attempts": options.max_attempts,
                "backoff": _strategy_name(self._backoff),
                "base_delay": options.base_delay,
                "max_delay": options.max_delay,
                "stop": None if self._stop is None else _strategy_name(self._stop),
                "handle": None if self._handle is None else predicate_text(self._handle),
                "respect_retry_after": options.respect_retry_after,
                "max_retry_after": options.max_retry_after,
                "budget": None if budget is None else vars_of(budget.options),
            },
            "state": {}
            if budget is None
            else {"budget_balance": budget.balance(self._clock.monotonic())},
        }

    def __repr__(self) -> str:
        return f"Retry(max_attempts={self._max_attempts!r}, budget={self._budget!r})"

    async def execute(self, next: Callable[[Context], Awaitable[T]], context: Context) -> T:
        """Run ``next``, and again after each handled failure while retrying is allowed."""
        monotonic = self._clock.monotonic
        classifier = context.classifier
        handle = self._handle
        report = context._report or context.report
        attempts = report.attempts
        start = began = monotonic()
        budget = self._budget
        if budget is not None:
            # Count the request once, whatever else shares the budget (see deposit_once; its
            # common case, the first deposit of the execution, is inlined for the hot path).
            try:
                counted = report._deposited
            except AttributeError:
                counted = None
            if counted is None:
                report._deposited = budget
                budget.deposit(start)
            elif counted is not budget:
                deposit_once(budget, report, start)
        number = 0
        state: tenacity.RetryCallState | None = None
        while True:
            context.attempt = number
            # Built in place (a class call costs several times as much on CPython 3.11, and this
            # runs for every call), with the mark by which report._end records it or not.
            attempt: Attempt = _new(Attempt)
            attempt.number = number
            attempt.delay = None
            attempt.hedged = False
            attempt._mark = len(attempts)
            try:
                attempt.result = await next(context)
            except Exception as exc:
                ended = monotonic()
                attempt.duration = ended - began
                attempt.result = None
                attempt.exception = exc
                report._end(attempt)
                if not (classifier.failed_exception(exc) if handle is None else handle(attempt)):
                    raise
            else:
                ended = monotonic()
                attempt.duration = ended - began
                attempt.exception = None
                report._end(attempt)
                if not (
                    classifier.failed_result(attempt.result) if handle is None else handle(attempt)
                ):
                    return attempt.result
            if state is None:
                state = tenacity.RetryCallState(self._retrying, None, (), {})
                state.start_time = start
            delay = self._next_delay(context, state, attempt, ended)
            if delay is None:
                return cast(T, attempt.unwrap())
            # The wait follows the last try recorded (this one, or the last of a race inside).
            report.attempts[-1].delay = delay
            self._events.emit(
                context,
                "retry",
                timestamp=ended,
                outcome=attempt,
                duration=attempt.duration,
                delay=delay,
            )
            await context.classifier.discard(attempt)
            await self._clock.sleep(delay)
            state.idle_for += delay
            state.prepare_for_next_attempt()
            number += 1
            began = monotonic()

    def _next_delay(
        self,
        context: Context,
        state: tenacity.RetryCallState,
        outcome: Attempt,
        now: float,
    ) -> float | None:
        """The wait before the next try, or ``None`` when retrying must stop."""
        report = context.report
        if not context.replayable:
            report.retry_stopped = "not_replayable"
            return None
        if self._max_attempts is not None and outcome.number + 1 >= self._max_attempts:
            report.retry_stopped = "max_attempts"
            return None
        future = tenacity.Future(state.attempt_number)
        if outcome.exception is not None:
            future.set_exception(outcome.exception)
        else:
            future.set_result(outcome.result)
        state.outcome, state.outcome_timestamp = future, now
        delay = float(self._backoff(state))
        if self._respect_retry_after:
            asked = context.classifier.retry_after(outcome)
            if asked is not None:
                if asked > self._max_retry_after:
                    report.retry_stopped = "retry_after"
                    return None
                delay = max(delay, asked)
        state.upcoming_sleep = delay
        if self._stop is not None and self._stop(state):
            report.retry_stopped = "stop"
            return None
        if context.deadline is not None and now + delay >= context.deadline:
            report.retry_stopped = "deadline"
            return None
        if self._budget is not None and not self._budget.try_withdraw(now):
            report.retry_stopped = "budget"
            self._events.emit(context, "budget_exhausted", timestamp=now, outcome=outcome)
            return None
        return delay
