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
from types import TracebackType
from typing import Any, Generic, TypeVar

import anyio

from .._clock import SYSTEM_CLOCK, Clock, wait_for_event
from .._names import callable_name
from .._validate import NON_NEGATIVE, Rule, integer
from ..context import Attempt, Context
from ..outcome import Outcome, _is_rejection, predicate_text
from ..telemetry import PolicyEvents
from ._options import Options, option, vars_of
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
        integer(1, 10), 1, says=[integer(1), Rule("at most 10", lambda v: v <= 10)]
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

    __slots__ = (
        "_budget",
        "_clock",
        "_delay",
        "_events",
        "_handle",
        "_max_hedged_attempts",
        "_options",
    )

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
        self._events = PolicyEvents("hedging", self._clock)

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

    def _hedge(self, race: _Race[T], context: Context, reason: str) -> bool:
        """Start a hedged try if the cap and the budget allow; whether one was started."""
        now = self._clock.monotonic()
        if race.started > self._max_hedged_attempts:
            return False
        if self._budget is not None and not self._budget.try_withdraw(now):
            self._events.emit(context, "budget_exhausted", timestamp=now)
            return False
        self._events.emit(context, "hedge", timestamp=now, reason=reason)
        race.start(hedged=True)
        return True

    async def execute(self, next: Callable[[Context], Awaitable[T]], context: Context) -> T:
        """Run ``next``, racing hedged tries against it while it is slow or failing."""
        if not context.replayable:
            return await next(context)
        clock = self._clock
        if self._budget is not None:
            deposit_once(self._budget, context.report, clock.monotonic())
        delay = self._delay_for(context)
        race = _Race(next, context, clock)
        async with race:
            race.start(hedged=False)
            may_hedge = True
            while True:
                if not await race.wait(delay if may_hedge else None):
                    may_hedge = self._hedge(race, context, "delay")
                    continue
                # Every try that finished since the last look, in the order they finished; a
                # batch of failures starts one hedge, as a single failure does.
                failed = False
                while (attempt := race.take()) is not None:
                    verdict = self._judge(attempt, context)
                    if verdict == _ANSWER:
                        race.winner = attempt
                        break
                    if verdict == _REJECTED:
                        # Not an answer: the race goes on with the tries still running.
                        race.rejection = attempt
                    else:
                        failed = True
                        await race.failed(attempt)
                if race.winner is not None:
                    break
                if failed and may_hedge:
                    may_hedge = self._hedge(race, context, "failure")
                    if may_hedge:
                        continue
                if race.running == 0:
                    break
        outcome = await race.close()
        return outcome.unwrap()  # type: ignore[no-any-return]


class _Race(Generic[T]):
    """The tries of one hedged execution, as Polly's ``HedgingExecutionContext``: start a try,
    wait for the next finished one, and on the way out cancel those still running and release
    what nobody will see (their responses closed), on every way out, cancellation included.

    Used as ``async with race:`` (the task group the tries run in), then :meth:`close`.
    """

    __slots__ = (
        "_arrived",
        "_clock",
        "_context",
        "_finished",
        "_next",
        "_report",
        "_tries",
        "failure",
        "rejection",
        "running",
        "started",
        "winner",
    )

    def __init__(
        self, next: Callable[[Context], Awaitable[T]], context: Context, clock: Clock
    ) -> None:
        self._next = next
        self._context = context
        self._report = context.report
        self._clock = clock
        self._tries = anyio.create_task_group()
        # Tries that finished and were not taken yet, in the order they finished.
        self._finished: list[Attempt] = []
        self._arrived = anyio.Event()
        #: Tries started, and tries still running.
        self.started = self.running = 0
        #: The answer that won, the last failure, the last rejection by a policy inside.
        self.winner: Attempt | None = None
        self.failure: Attempt | None = None
        self.rejection: Attempt | None = None

    async def __aenter__(self) -> _Race[T]:
        await self._tries.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        if exc is None:
            # The race is decided: the tries still running lost. (On an exception, the task
            # group cancels them itself.)
            self._tries.cancel_scope.cancel()
        try:
            suppressed = await self._tries.__aexit__(exc_type, exc, tb)
        except BaseException:
            # Cancelled from outside (or broken) while deciding: what the finished tries
            # returned reaches nobody.
            await self._release(*self._finished, self.winner, self.failure)
            raise
        if exc is not None and not suppressed:
            await self._release(*self._finished, self.winner, self.failure)
        return suppressed

    def start(self, *, hedged: bool) -> None:
        """Start a try, reported as an attempt (``hedged`` if it races an earlier one)."""
        attempt = self._report._start(hedged)
        self.started += 1
        self.running += 1
        self._tries.start_soon(self._run, attempt)

    async def _run(self, attempt: Attempt) -> None:
        clock = self._clock
        began = clock.monotonic()
        try:
            attempt.result = await self._next(self._context.fork(attempt.number))
        except Exception as exc:
            attempt.exception = exc
        except BaseException as exc:  # cancelled: it lost, or the caller gave up
            attempt.exception = exc
            attempt.duration = clock.monotonic() - began
            self.running -= 1
            raise
        attempt.duration = clock.monotonic() - began
        self.running -= 1
        self._finished.append(attempt)
        self._arrived.set()

    async def wait(self, timeout: float | None) -> bool:
        """Wait until a try has finished (``True``) or ``timeout`` seconds passed (``False``)."""
        if self._finished:
            return True
        if not await wait_for_event(self._arrived, timeout, self._clock):
            return False
        self._arrived = anyio.Event()
        return True

    def take(self) -> Attempt | None:
        """The earliest finished try not taken yet, if any."""
        finished = self._finished
        return finished.pop(0) if finished else None

    async def failed(self, attempt: Attempt) -> None:
        """Keep ``attempt`` as the failure to give up with; release the one it replaces."""
        previous, self.failure = self.failure, attempt
        if previous is not None:
            await self._context.classifier.discard(previous)

    async def close(self) -> Attempt:
        """The try the execution ends with (reported as its outcome); release the others that
        finished: tries that finished after the race was decided, and the failure an answer
        replaced."""
        winner = self.winner
        outcome = winner if winner is not None else self.failure or self.rejection
        assert outcome is not None
        self._report._decide(outcome)
        finished = self._finished
        if winner is not None and self.failure is not None:
            finished.append(self.failure)
        discard = self._context.classifier.discard
        try:
            while finished:
                await discard(finished.pop())
        except BaseException:
            await self._release(*finished, winner)
            raise
        return outcome

    async def _release(self, *attempts: Attempt | None) -> None:
        """Discard the results of ``attempts`` while the race unwinds, shielded from the
        cancellation that may be the reason (a response left open would hold its connection)."""
        discard = self._context.classifier.discard
        with anyio.CancelScope(shield=True):
            for attempt in attempts:
                if attempt is not None:
                    await discard(attempt)
