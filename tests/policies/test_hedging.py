from __future__ import annotations

from typing import Any

import anyio
import pytest

from httpx_resilience import (
    Context,
    Hedging,
    Outcome,
    Pipeline,
    RetryBudget,
    TimeoutRejected,
    handle_results,
)
from httpx_resilience.outcome import Classifier
from httpx_resilience.testing import FakeClock

pytestmark = pytest.mark.anyio


class Upstream:
    """Each try takes the next (seconds, result) of a script; a result that is an exception
    class is raised. Records when each try started and whether it was cancelled."""

    def __init__(self, clock: FakeClock, *script: tuple[float, Any]) -> None:
        self.clock = clock
        self.script = list(script)
        self.started: list[float] = []
        self.cancelled: list[int] = []

    async def __call__(self) -> Any:
        number = len(self.started)
        self.started.append(self.clock.monotonic())
        seconds, result = self.script[number]
        try:
            await self.clock.sleep(seconds)
        except anyio.get_cancelled_exc_class():
            self.cancelled.append(number)
            raise
        if isinstance(result, type) and issubclass(result, BaseException):
            raise result(f"try {number}")
        return result


def hedged(clock: FakeClock, **options: Any) -> Pipeline:
    return Pipeline.builder(clock=clock).hedging(**options).build()


async def test_a_slow_first_try_is_raced_and_loses() -> None:
    clock = FakeClock()
    upstream = Upstream(clock, (5.0, "slow"), (0.5, "fast"))
    context = Context()
    assert await hedged(clock, delay=1.0).execute(upstream, context) == "fast"
    assert clock.monotonic() == 1.5
    assert upstream.started == [0.0, 1.0]
    assert upstream.cancelled == [0]
    attempts = context.report.attempts
    assert [(a.number, a.hedged, a.result) for a in attempts] == [
        (0, False, None),
        (1, True, "fast"),
    ]
    assert isinstance(attempts[0].exception, anyio.get_cancelled_exc_class())
    assert attempts[1].duration == 0.5
    assert [(e.name, e.detail["reason"]) for e in context.report.events] == [("hedge", "delay")]


async def test_the_report_ends_with_the_winner_not_the_last_try_started() -> None:
    clock = FakeClock()
    upstream = Upstream(clock, (1.5, "first"), (5.0, "second"))
    context = Context()
    assert await hedged(clock, delay=1.0).execute(upstream, context) == "first"
    assert upstream.cancelled == [1]
    report = context.report
    assert isinstance(report.attempts[-1].exception, anyio.get_cancelled_exc_class())
    assert report.outcome is report.attempts[0]
    assert report.outcome.result == "first"


async def test_around_hedging_a_retry_reports_the_outcome_of_its_last_round() -> None:
    clock = FakeClock()
    # Round one: the first try fails slowly after the hedge started; the hedge fails too.
    # Round two: its first try wins while the hedge of that round is still running.
    upstream = Upstream(
        clock, (1.5, ValueError), (1.0, ValueError), (1.2, "won"), (9.0, "too late")
    )
    pipeline = (
        Pipeline.builder(clock=clock)
        .retry(max_attempts=2, backoff=lambda state: 0.0)
        .hedging(delay=1.0)
        .build()
    )
    context = Context()
    assert await pipeline.execute(upstream, context) == "won"
    report = context.report
    assert len(report.attempts) == 4
    assert report.outcome is report.attempts[2]


async def test_a_fast_first_try_needs_no_hedge() -> None:
    clock = FakeClock()
    upstream = Upstream(clock, (0.5, "first"))
    context = Context()
    assert await hedged(clock, delay=1.0).execute(upstream, context) == "first"
    assert upstream.started == [0.0]
    assert clock.sleepers == 0
    assert context.report.events == []


async def test_a_failed_try_starts_the_next_at_once() -> None:
    clock = FakeClock()
    upstream = Upstream(clock, (0.2, ConnectionError), (0.3, "second"))
    context = Context()
    assert await hedged(clock, delay=10.0).execute(upstream, context) == "second"
    assert upstream.started == [0.0, 0.2]
    assert clock.monotonic() == 0.5
    assert [e.detail["reason"] for e in context.report.events] == ["failure"]


async def test_when_every_try_fails_the_last_failure_is_raised() -> None:
    clock = FakeClock()
    upstream = Upstream(clock, (0.2, ConnectionError), (0.3, TimeoutError), (9, "unused"))
    with pytest.raises(TimeoutError, match="try 1"):
        await hedged(clock, delay=10.0, max_hedged_attempts=1).execute(upstream)
    assert len(upstream.started) == 2


async def test_an_unhandled_failure_wins_and_stops_the_others() -> None:
    clock = FakeClock()
    upstream = Upstream(clock, (5.0, "slow"), (0.5, KeyError))
    pipeline = hedged(clock, delay=1.0, handle=lambda o: isinstance(o.exception, OSError))
    with pytest.raises(KeyError):
        await pipeline.execute(upstream)
    assert upstream.cancelled == [0]
    assert clock.monotonic() == 1.5


async def test_max_hedged_attempts_caps_the_tries() -> None:
    clock = FakeClock()
    upstream = Upstream(clock, *[(10.0 - i, f"r{i}") for i in range(6)])
    assert await hedged(clock, delay=0, max_hedged_attempts=3).execute(upstream) == "r3"
    assert upstream.started == [0.0, 0.0, 0.0, 0.0]
    assert sorted(upstream.cancelled) == [0, 1, 2]
    assert clock.monotonic() == 7.0


async def test_hedges_come_delay_apart_while_no_answer_comes() -> None:
    clock = FakeClock()
    upstream = Upstream(clock, (10.0, "a"), (10.0, "b"), (0.5, "c"))
    assert await hedged(clock, delay=1.0, max_hedged_attempts=2).execute(upstream) == "c"
    assert upstream.started == [0.0, 1.0, 2.0]
    assert clock.monotonic() == 2.5


async def test_results_can_be_failures_and_losing_results_are_discarded() -> None:
    discarded: list[Any] = []

    class Tracking(Classifier):
        async def discard(self, outcome: Outcome[Any]) -> None:
            discarded.append(outcome.result)

    clock = FakeClock()
    upstream = Upstream(clock, (0.1, "busy"), (0.2, "busy"), (0.3, "ok"))
    pipeline = hedged(
        clock, delay=5.0, max_hedged_attempts=2, handle=handle_results(lambda r: r == "busy")
    )
    assert await pipeline.execute(upstream, Context(classifier=Tracking())) == "ok"
    assert discarded == ["busy", "busy"]


async def test_a_call_that_cannot_be_replayed_is_not_hedged() -> None:
    clock = FakeClock()
    upstream = Upstream(clock, (5.0, "only"))
    assert await hedged(clock, delay=1.0).execute(upstream, Context(replayable=False)) == "only"
    assert upstream.started == [0.0]


async def test_hedges_spend_the_retry_budget() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.0, min_per_second=0.1, ttl=10.0)  # one retry per window
    pipeline = hedged(clock, delay=1.0, budget=budget)
    first = Upstream(clock, (5.0, "a"), (0.5, "b"))
    assert await pipeline.execute(first) == "b"
    second = Upstream(clock, (5.0, "c"), (0.5, "d"))
    context = Context()
    assert await pipeline.execute(second, context) == "c"
    assert len(second.started) == 1
    assert [e.name for e in context.report.events] == ["budget_exhausted"]


async def test_delay_may_be_a_function_of_the_context() -> None:
    clock = FakeClock()
    seen: list[Context] = []

    def p95(context: Context) -> float:
        seen.append(context)
        return 0.25

    upstream = Upstream(clock, (5.0, "slow"), (0.1, "fast"))
    context = Context()
    assert await hedged(clock, delay=p95).execute(upstream, context) == "fast"
    assert upstream.started == [0.0, 0.25]
    assert seen == [context]


async def test_each_try_has_its_own_deadline_and_attempt_number() -> None:
    clock = FakeClock()
    seen: list[tuple[int, float | None]] = []

    class Spy:
        async def execute(self, next: Any, context: Context) -> Any:
            seen.append((context.attempt, context.deadline))
            return await next(context)

    pipeline = Pipeline.builder(clock=clock).hedging(delay=1.0).timeout(2.0).add(Spy()).build()
    upstream = Upstream(clock, (5.0, "slow"), (0.5, "fast"))
    assert await pipeline.execute(upstream) == "fast"
    assert seen == [(0, 2.0), (1, 3.0)]


async def test_each_try_times_out_on_its_own() -> None:
    clock = FakeClock()
    pipeline = Pipeline.builder(clock=clock).hedging(delay=1.0).timeout(2.0).build()
    upstream = Upstream(clock, (5.0, "a"), (5.0, "b"))
    with pytest.raises(TimeoutRejected):
        await pipeline.execute(upstream)
    # The first try timed out at 2.0, which started no new hedge (the one allowed had started
    # at 1.0); the second timed out at 3.0.
    assert clock.monotonic() == 3.0


async def test_outside_cancellation_cancels_every_try() -> None:
    clock = FakeClock()
    upstream = Upstream(clock, (5.0, "a"), (5.0, "b"))
    pipeline = hedged(clock, delay=1.0)
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:

            async def cancel_later() -> None:
                await clock.sleep(2.0)
                scope.cancel()

            tg.start_soon(cancel_later)
            await pipeline.execute(upstream)
    assert scope.cancelled_caught
    assert sorted(upstream.cancelled) == [0, 1]
    assert clock.sleepers == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_hedged_attempts": 0}, "max_hedged_attempts must be an integer >= 1, got 0"),
        ({"max_hedged_attempts": 11}, "max_hedged_attempts must be at most 10, got 11"),
        ({"delay": -1}, "delay must be a finite number >= 0, got -1"),
        ({"delay": "2s"}, "delay must be a finite number >= 0, got '2s'"),
        ({"handle": 5}, "handle must be a predicate over outcomes, got 5"),
        ({"budget": 0.2}, "budget must be a RetryBudget or None, got 0.2"),
    ],
)
def test_bad_options_are_named(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^Hedging: {message}"):
        Hedging(**options)


async def test_a_delay_function_returning_nonsense_is_an_error() -> None:
    clock = FakeClock()
    upstream = Upstream(clock, (0.1, "x"))
    with pytest.raises(ValueError, match=r"delay\(\) must return a number >= 0, got -3"):
        await hedged(clock, delay=lambda c: -3).execute(upstream)
