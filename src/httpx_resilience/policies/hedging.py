"""Hedging: when an answer is slow to come, race a second try against the first.

Tail latency usually comes from one slow server, one lost packet, one long pause, not from the
request itself. Hedging starts the call, and if no answer has come after ``delay`` seconds starts
another in parallel (up to ``max_hedged_attempts`` more). The first acceptable outcome wins; the
other tries are cancelled and whatever they returned is released (their responses closed),
even when the hedging itself is cancelled. A try that fails with a handled failure starts the
next hedge at once instead of waiting. A try rejected by a policy inside (a full bulkhead, an
open circuit) is no answer: the dependency was not called, so the race goes on without it, and
the caller gets a rejection only when no try did better.

Only calls that may run more than once are hedged (``context.replayable``: in the HTTP layer,
idempotent requests). With ``budget=`` (share the retry policy's
:class:`~httpx_resilience.RetryBudget`), each hedge spends a retry from it, as gRPC's hedging
does, so that hedging cannot multiply the load on a struggling dependency.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio

from .._clock import SYSTEM_CLOCK, Clock, wait_for_event
from .._names import callable_name
from ..context import Attempt, Context
from ..outcome import Outcome, _is_rejection, predicate_text
from ..telemetry import emit
from ._options import Options, option, vars_of
from ._validate import NON_NEGATIVE, Check, integer
from .budget import RetryBudget, deposit_once

__all__ = ["Hedging", "HedgingOptions"]

T = TypeVar("T")

# What a finished try is to the race (see Hedging._judge).
_ANSWER, _FAILURE, _REJECTED = 0, 1, 2


@dataclass(frozen=True)
class HedgingOptions(Options):
    """Options of :class:`Hedging` (see it for each), validated when built; a delay that is a
    function of the context is a constructor argument only. In a profile, its budget is the
    retry's, if any."""

    max_hedged_attempts: int = option(
        integer(1, 10), 1, says=[integer(1), Check("at most 10", lambda v: v <= 10)]
    )
    delay: float = option(NON_NEGATIVE, 2.0)


class Hedging:
    """Start parallel tries when the first is slow; the first acceptable outcome wins.

    Args:
        max_hedged_attempts: Tries started in addition to the first (1 to 10).
        delay: Seconds to wait for an answer before starting the next try: a number, or a
            function of the :class:`~httpx_resilience.Context` returning one (to hedge at a
            latency percentile you measure). 0 starts every try at once.
        handle: Which outcomes are failures that start the next try at once. Default: the
            place's classifier.
        budget: A :class:`~httpx_resilience.RetryBudget` each hedge must take a retry from.
        clock: The clock to wait with (default: the system clock).
    """

    __slots__ = ("_budget", "_clock", "_delay", "_handle", "_max_hedged_attempts", "_options")

    def __init__(
        self,
        *,
        max_hedged_attempts: int = 1,
        delay: float | Callable[[Context], float] = 2.0,
        handle: Callable[[Outcome[Any]], bool] | None = None,
        budget: RetryBudget | None = None,
        clock: Clock | None = None,
    ) -> None:
        # A delay that is a function of the context stays beside the options (plain data).
        arguments = {"max_hedged_attempts": max_hedged_attempts}
        self._options = options = HedgingOptions._of_arguments(
            "Hedging", arguments if callable(delay) else {**arguments, "delay": delay}
        )
        self._max_hedged_attempts = options.max_hedged_attempts
        self._delay = delay if callable(delay) else options.delay
        if handle is not None and not callable(handle):
            raise ValueError(f"Hedging: handle must be a predicate over outcomes, got {handle!r}")
        if budget is not None and not isinstance(budget, RetryBudget):
            raise ValueError(f"Hedging: budget must be a RetryBudget or None, got {budget!r}")
        self._handle = handle
        self._budget = budget
        self._clock: Clock = clock if clock is not None else SYSTEM_CLOCK

    def describe(self) -> dict[str, Any]:
        """The hedging configuration, as plain data."""
        delay = self._delay
        return {
            "policy": "hedging",
            "options": {
                "max_hedged_attempts": self._options.max_hedged_attempts,
                "delay": delay if not callable(delay) else callable_name(delay),
                "handle": None if self._handle is None else predicate_text(self._handle),
                "budget": None if self._budget is None else vars_of(self._budget.options),
            },
            "state": {},
        }

    def __repr__(self) -> str:
        return f"Hedging(max_hedged_attempts={self._max_hedged_attempts}, delay={self._delay!r})"

    def _delay_for(self, context: Context) -> float:
        if not callable(self._delay):
            return self._delay
        delay = self._delay(context)
        if not isinstance(delay, (int, float)) or not math.isfinite(delay) or delay < 0:
            raise ValueError(f"Hedging: delay() must return a number >= 0, got {delay!r}")
        return float(delay)

    def _judge(self, attempt: Attempt, context: Context) -> int:
        """Whether a finished try is an answer, a failure, or a rejection by a policy inside."""
        handle = self._handle
        exc = attempt.exception
        if exc is not None and _is_rejection(exc):
            # The dependency was not called: no answer, whatever handle= says. A handle= that
            # takes rejections in makes one start the next try at once, as a failure does.
            return _FAILURE if handle is not None and handle(attempt) else _REJECTED
        if handle is not None:
            failed = bool(handle(attempt))
        elif exc is not None:
            failed = context.classifier.failed_exception(exc)
        else:
            failed = context.classifier.failed_result(attempt.result)
        return _FAILURE if failed else _ANSWER

    async def execute(self, next: Callable[[Context], Awaitable[T]], context: Context) -> T:
        """Run ``next``, racing hedged tries against it while it is slow or failing."""
        if not context.replayable:
            return await next(context)
        clock = self._clock
        report = context.report
        if self._budget is not None:
            deposit_once(self._budget, report, clock.monotonic())
        delay = self._delay_for(context)
        done: list[Attempt] = []
        arrived = anyio.Event()
        running = started = 0
        winner: Attempt | None = None
        last_failure: Attempt | None = None
        last_rejection: Attempt | None = None

        async def run(attempt: Attempt) -> None:
            nonlocal running, arrived
            began = clock.monotonic()
            try:
                attempt.result = await next(context.fork(attempt.number))
            except Exception as exc:
                attempt.exception = exc
            except BaseException as exc:  # cancelled: it lost, or the caller gave up
                attempt.exception = exc
                attempt.duration = clock.monotonic() - began
                running -= 1
                raise
            attempt.duration = clock.monotonic() - began
            running -= 1
            done.append(attempt)
            arrived.set()

        try:
            async with anyio.create_task_group() as tries:

                def start(reason: str | None) -> bool:
                    nonlocal running, started
                    if reason is not None:
                        now = clock.monotonic()
                        if started > self._max_hedged_attempts:
                            return False
                        if self._budget is not None and not self._budget.try_withdraw(now):
                            emit(context, "budget_exhausted", "hedging", timestamp=now)
                            return False
                        emit(context, "hedge", "hedging", timestamp=now, reason=reason)
                    # Numbered after the tries already reported (a retry around may have made
                    # some).
                    attempt = Attempt(len(report.attempts), hedged=reason is not None)
                    report.attempts.append(attempt)
                    started += 1
                    running += 1
                    tries.start_soon(run, attempt)
                    return True

                start(None)
                may_hedge = True
                while winner is None:
                    if not done:
                        timeout = delay if may_hedge else None
                        if not await wait_for_event(arrived, timeout, clock):
                            may_hedge = start("delay")
                            continue
                        arrived = anyio.Event()
                    failed = False
                    while done and winner is None:
                        attempt = done.pop(0)
                        verdict = self._judge(attempt, context)
                        if verdict == _ANSWER:
                            winner = attempt
                        elif verdict == _REJECTED:
                            # Not an answer: the race goes on with the tries still running.
                            last_rejection = attempt
                        else:
                            failed = True
                            previous, last_failure = last_failure, attempt
                            if previous is not None:
                                await context.classifier.discard(previous)
                    if winner is not None:
                        break
                    if failed and may_hedge:
                        may_hedge = start("failure")
                        if may_hedge:
                            continue
                    if running == 0:
                        break
                tries.cancel_scope.cancel()
        except BaseException:
            # Cancelled from outside (or broken) while deciding: what the finished tries
            # returned reaches nobody.
            await _release(context, (*done, winner, last_failure))
            raise
        outcome = winner if winner is not None else last_failure or last_rejection
        assert outcome is not None
        report._decide(outcome)
        # Tries that finished after the race was decided, and the failure an answer replaced:
        # nobody will see their results.
        if winner is not None and last_failure is not None:
            done.append(last_failure)
        try:
            while done:
                await context.classifier.discard(done.pop())
        except BaseException:
            await _release(context, (*done, winner))
            raise
        return outcome.unwrap()  # type: ignore[no-any-return]


async def _release(context: Context, attempts: tuple[Attempt | None, ...]) -> None:
    """Discard the results of ``attempts`` while the hedging unwinds, shielded from the
    cancellation that may be the reason (a response left open would hold its connection)."""
    with anyio.CancelScope(shield=True):
        for attempt in attempts:
            if attempt is not None:
                await context.classifier.discard(attempt)
