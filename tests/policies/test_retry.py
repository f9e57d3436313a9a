from __future__ import annotations

import random
from typing import Any

import anyio
import pytest
import tenacity
from hypothesis import given, settings
from hypothesis import strategies as st

from httpx_resilience import (
    BrokenCircuitError,
    CircuitBreaker,
    Context,
    Outcome,
    Pipeline,
    RateLimitRejected,
    Retry,
    RetryBudget,
    TimeoutRejected,
    handle_exceptions,
    handle_results,
)
from httpx_resilience.outcome import Classifier
from httpx_resilience.testing import FakeClock

pytestmark = pytest.mark.anyio


class Flaky:
    """Fails ``failures`` times (raising, or returning ``bad``), then returns ``good``."""

    def __init__(self, failures: int, *, bad: Any = None, good: Any = "ok") -> None:
        self.failures = failures
        self.bad = bad
        self.good = good
        self.calls = 0

    async def __call__(self) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            if self.bad is None:
                raise ConnectionError(f"failure {self.calls}")
            return self.bad
        return self.good


def fixed(seconds: float) -> tenacity.wait_fixed:
    return tenacity.wait_fixed(seconds)


async def test_retries_until_success_with_the_waits_recorded() -> None:
    clock = FakeClock()
    pipeline = Pipeline.builder(clock=clock).retry(max_attempts=4, backoff=fixed(1.5)).build()
    call = Flaky(2)
    context = Context()
    assert await pipeline.execute(call, context) == "ok"
    assert call.calls == 3
    assert clock.monotonic() == 3.0
    report = context.report
    assert [(a.number, a.failed, a.delay) for a in report.attempts] == [
        (0, True, 1.5),
        (1, True, 1.5),
        (2, False, None),
    ]
    assert report.total_wait == 3.0
    assert report.retry_stopped is None
    assert [e.name for e in report.events] == ["retry", "retry"]


async def test_gives_up_after_max_attempts_and_raises_the_last_error() -> None:
    clock = FakeClock()
    pipeline = Pipeline.builder(clock=clock).retry(max_attempts=3, backoff=fixed(1)).build()
    call = Flaky(10)
    context = Context()
    with pytest.raises(ConnectionError, match="failure 3"):
        await pipeline.execute(call, context)
    assert call.calls == 3
    assert clock.monotonic() == 2.0
    assert context.report.retry_stopped == "max_attempts"
    assert context.report.attempts[-1].delay is None


async def test_max_attempts_one_means_no_retry() -> None:
    call = Flaky(1)
    with pytest.raises(ConnectionError):
        await Pipeline([Retry(max_attempts=1)]).execute(call)
    assert call.calls == 1


async def test_unhandled_errors_are_raised_at_once() -> None:
    clock = FakeClock()
    pipeline = (
        Pipeline.builder(clock=clock).retry(handle=handle_exceptions(ConnectionError)).build()
    )

    async def call() -> None:
        raise KeyError("not retried")

    with pytest.raises(KeyError):
        await pipeline.execute(call)
    assert clock.monotonic() == 0.0


async def test_results_can_be_failures_and_the_last_one_is_returned() -> None:
    clock = FakeClock()
    pipeline = (
        Pipeline.builder(clock=clock)
        .retry(max_attempts=3, backoff=fixed(1), handle=handle_results(lambda r: r == "busy"))
        .build()
    )
    assert await pipeline.execute(Flaky(1, bad="busy")) == "ok"
    context = Context()
    assert await pipeline.execute(Flaky(5, bad="busy"), context) == "busy"
    assert context.report.retry_stopped == "max_attempts"


async def test_cancellation_is_not_retried_and_not_swallowed() -> None:
    clock = FakeClock()
    pipeline = Pipeline.builder(clock=clock).retry(max_attempts=5, backoff=fixed(1)).build()
    calls = 0

    async def call() -> None:
        nonlocal calls
        calls += 1
        await anyio.sleep(10)  # cancelled at once: the scope below is already cancelled

    with anyio.CancelScope() as scope:
        scope.cancel()
        await pipeline.execute(call)
    assert calls == 1
    assert clock.monotonic() == 0.0


async def test_cancellation_during_the_wait_propagates() -> None:
    clock = FakeClock()
    pipeline = Pipeline.builder(clock=clock).retry(max_attempts=5, backoff=fixed(10)).build()
    call = Flaky(10)
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:

            async def cancel_later() -> None:
                await clock.sleep(3)
                scope.cancel()

            tg.start_soon(cancel_later)
            await pipeline.execute(call)
    assert scope.cancelled_caught
    assert call.calls == 1
    assert clock.monotonic() == 3.0


async def test_a_stop_strategy_alone_limits_the_tries() -> None:
    clock = FakeClock()
    retry = Retry(stop=tenacity.stop_after_delay(5), backoff=fixed(2), clock=clock)
    assert retry.max_attempts is None
    call = Flaky(100)
    context = Context()
    with pytest.raises(ConnectionError):
        await Pipeline([retry]).execute(call, context)
    # Tries at 0, 2, 4, 6: after the one at 6 the delay since start exceeds 5.
    assert call.calls == 4
    assert clock.monotonic() == 6.0
    assert context.report.retry_stopped == "stop"


async def test_stop_sees_the_upcoming_wait() -> None:
    clock = FakeClock()
    retry = Retry(stop=tenacity.stop_before_delay(5), backoff=fixed(2), clock=clock)
    call = Flaky(100)
    with pytest.raises(ConnectionError):
        await Pipeline([retry]).execute(call)
    # stop_before_delay stops when the next wait would end past 5 s: tries at 0, 2, 4.
    assert call.calls == 3
    assert clock.monotonic() == 4.0


async def test_stop_and_max_attempts_together_whichever_comes_first() -> None:
    clock = FakeClock()
    retry = Retry(
        max_attempts=2, stop=tenacity.stop_after_delay(100), backoff=fixed(1), clock=clock
    )
    call = Flaky(100)
    with pytest.raises(ConnectionError):
        await Pipeline([retry]).execute(call)
    assert call.calls == 2


async def test_backoff_receives_tenacitys_retry_state() -> None:
    clock = FakeClock(start=50.0)
    states: list[tuple[int, float | None, float, bool]] = []

    def backoff(state: tenacity.RetryCallState) -> float:
        assert state.outcome is not None
        states.append(
            (state.attempt_number, state.seconds_since_start, state.idle_for, state.outcome.failed)
        )
        return 1.0

    call = Flaky(2)
    await Pipeline([Retry(backoff=backoff, clock=clock)]).execute(call)
    assert states == [(1, 0.0, 0.0, True), (2, 1.0, 1.0, True)]


async def test_backoff_and_stop_see_the_retry_they_belong_to() -> None:
    # As under tenacity itself, ``retry_state.retry_object`` holds the strategies in use.
    seen: list[tenacity.BaseRetrying] = []

    def backoff(state: tenacity.RetryCallState) -> float:
        seen.append(state.retry_object)
        return 1.0

    def stop(state: tenacity.RetryCallState) -> bool:
        seen.append(state.retry_object)
        return False

    call = Flaky(1)
    await Pipeline([Retry(backoff=backoff, stop=stop, clock=FakeClock())]).execute(call)
    assert [(r.wait, r.stop) for r in seen] == [(backoff, stop), (backoff, stop)]


# -- the default backoff: full jitter --------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    base=st.floats(min_value=0.001, max_value=5),
    cap=st.floats(min_value=0.001, max_value=60),
    seed=st.integers(0, 2**32 - 1),
)
def test_default_backoff_stays_within_full_jitter_bounds(
    base: float, cap: float, seed: int
) -> None:
    """Wait n (1-based) is uniform in [0, min(cap, base * 2**(n-1))]."""
    retry = Retry(base_delay=base, max_delay=cap, max_attempts=8)
    state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
    random.seed(seed)
    for n in range(1, 8):
        state.attempt_number = n
        wait = retry._backoff(state)
        assert 0 <= wait <= min(cap, base * 2 ** (n - 1)) * (1 + 1e-12)


async def test_default_backoff_waits_are_recorded_within_bounds() -> None:
    clock = FakeClock()
    pipeline = Pipeline.builder(clock=clock).retry(max_attempts=6, base_delay=0.2, max_delay=1.0)
    context = Context()
    with pytest.raises(ConnectionError):
        await pipeline.build().execute(Flaky(10), context)
    delays = [a.delay for a in context.report.attempts[:-1]]
    assert len(delays) == 5
    for n, delay in enumerate(delays, start=1):
        assert delay is not None
        assert 0 <= delay <= min(1.0, 0.2 * 2 ** (n - 1))
    assert clock.monotonic() == pytest.approx(sum(d for d in delays if d is not None))


# -- deadlines ----------------------------------------------------------------------------------


async def test_a_wait_that_would_end_past_the_deadline_ends_retrying_at_once() -> None:
    clock = FakeClock()
    pipeline = (
        Pipeline.builder(clock=clock).timeout(10.0).retry(max_attempts=10, backoff=fixed(4)).build()
    )
    call = Flaky(100)
    context = Context()
    with pytest.raises(ConnectionError):
        await pipeline.execute(call, context)
    # Tries at 0, 4, 8; the wait after the one at 8 would end at 12 > 10: stop at 8, at once.
    assert call.calls == 3
    assert clock.monotonic() == 8.0
    assert context.report.retry_stopped == "deadline"


async def test_a_wait_ending_exactly_at_the_deadline_is_not_taken() -> None:
    clock = FakeClock()
    pipeline = Pipeline.builder(clock=clock).retry(max_attempts=10, backoff=fixed(5)).build()
    call = Flaky(100)
    with pytest.raises(ConnectionError):
        await pipeline.execute(call, Context(deadline=5.0))
    assert call.calls == 1
    assert clock.monotonic() == 0.0


async def test_attempt_timeouts_are_retried_within_the_total_timeout() -> None:
    clock = FakeClock()
    pipeline = (
        Pipeline.builder(clock=clock)
        .timeout(10.0)
        .retry(max_attempts=10, backoff=fixed(1))
        .timeout(2.0)
        .build()
    )

    async def hangs() -> None:
        await clock.sleep(100)

    context = Context()
    with pytest.raises(TimeoutRejected) as info:
        await pipeline.execute(hangs, context)
    # Tries of 2 s each with 1 s between: 0-2, 3-5, 6-8; the next would start at 9 and the
    # total timeout cuts it at 10, so the last error is the total timeout's.
    assert clock.monotonic() == 10.0
    assert info.value.timeout == 10.0
    assert [a.number for a in context.report.attempts] == [0, 1, 2]
    assert all(isinstance(a.exception, TimeoutRejected) for a in context.report.attempts)


# -- Retry-After --------------------------------------------------------------------------------


class AskingClassifier(Classifier):
    """A classifier whose outcomes carry a Retry-After of their result's value."""

    def retry_after(self, outcome: Outcome[Any]) -> float | None:
        return outcome.result if isinstance(outcome.result, float) else None

    def failed_result(self, result: Any) -> bool:
        return isinstance(result, float)


async def run_asking(asked: float, **options: Any) -> tuple[Context, FakeClock, Flaky]:
    clock = FakeClock()
    options.setdefault("backoff", fixed(0.5))
    pipeline = Pipeline.builder(clock=clock).retry(max_attempts=2, **options).build()
    call = Flaky(1, bad=asked)
    context = Context(classifier=AskingClassifier())
    await pipeline.execute(call, context)
    return context, clock, call


async def test_retry_after_longer_than_the_backoff_is_honoured() -> None:
    context, clock, call = await run_asking(3.0)
    assert call.calls == 2
    assert context.report.attempts[0].delay == 3.0
    assert clock.monotonic() == 3.0


async def test_retry_after_shorter_than_the_backoff_keeps_the_backoff() -> None:
    context, clock, _ = await run_asking(0.1)
    assert context.report.attempts[0].delay == 0.5
    assert clock.monotonic() == 0.5


async def test_retry_after_can_be_ignored() -> None:
    context, _, _ = await run_asking(3.0, respect_retry_after=False)
    assert context.report.attempts[0].delay == 0.5


async def test_retry_after_over_the_maximum_ends_retrying_with_the_last_outcome() -> None:
    context, clock, call = await run_asking(61.0)
    assert call.calls == 1
    assert clock.monotonic() == 0.0
    assert context.report.retry_stopped == "retry_after"
    _, _, call = await run_asking(5.0, max_retry_after=4.0)
    assert call.calls == 1
    _, _, call = await run_asking(4.0, max_retry_after=4.0)
    assert call.calls == 2


async def test_retry_after_past_the_deadline_ends_retrying() -> None:
    clock = FakeClock()
    pipeline = Pipeline.builder(clock=clock).retry(backoff=fixed(0.1)).build()
    call = Flaky(1, bad=30.0)
    context = Context(classifier=AskingClassifier(), deadline=20.0)
    assert await pipeline.execute(call, context) == 30.0
    assert call.calls == 1
    assert context.report.retry_stopped == "deadline"


# -- budget, replayability, discarding -----------------------------------------------------------


async def test_an_exhausted_budget_ends_retrying_and_says_so() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.0, min_per_second=0.1, ttl=10.0)  # one retry per 10 s
    pipeline = Pipeline.builder(clock=clock).retry(max_attempts=5, backoff=fixed(0), budget=budget)
    built = pipeline.build()
    first = Flaky(100)
    with pytest.raises(ConnectionError):
        await built.execute(first)
    assert first.calls == 2
    second = Flaky(100)
    context = Context()
    with pytest.raises(ConnectionError):
        await built.execute(second, context)
    assert second.calls == 1
    assert context.report.retry_stopped == "budget"
    assert [e.name for e in context.report.events] == ["budget_exhausted"]


async def test_a_call_that_cannot_be_replayed_is_tried_once() -> None:
    clock = FakeClock()
    pipeline = Pipeline.builder(clock=clock).retry(max_attempts=5).build()
    call = Flaky(3)
    context = Context(replayable=False)
    with pytest.raises(ConnectionError):
        await pipeline.execute(call, context)
    assert call.calls == 1
    assert context.report.retry_stopped == "not_replayable"


async def test_failed_results_are_discarded_before_the_next_try_but_not_the_last() -> None:
    discarded: list[Any] = []

    class Discarding(Classifier):
        def failed_result(self, result: Any) -> bool:
            return bool(result == "bad")

        async def discard(self, outcome: Outcome[Any]) -> None:
            discarded.append(outcome.result)

    clock = FakeClock()
    pipeline = Pipeline.builder(clock=clock).retry(max_attempts=3, backoff=fixed(1)).build()
    assert await pipeline.execute(Flaky(5, bad="bad"), Context(classifier=Discarding())) == "bad"
    assert discarded == ["bad", "bad"]


async def test_context_attempt_counts_the_tries() -> None:
    seen: list[int] = []
    context = Context()

    async def call() -> str:
        seen.append(context.attempt)
        if len(seen) < 3:
            raise ConnectionError
        return "ok"

    clock = FakeClock()
    await Pipeline.builder(clock=clock).retry(backoff=fixed(0)).build().execute(call, context)
    assert seen == [0, 1, 2]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_attempts": 0}, "Retry: max_attempts must be an integer >= 1, got 0"),
        ({"max_attempts": 2.5}, "Retry: max_attempts must be an integer >= 1, got 2.5"),
        ({"base_delay": -1}, "Retry: base_delay must be a finite number >= 0, got -1"),
        ({"max_delay": float("inf")}, "Retry: max_delay must be a finite number >= 0, got inf"),
        ({"max_retry_after": -5}, "Retry: max_retry_after must be a finite number >= 0, got -5"),
        ({"backoff": 3}, "Retry: backoff must be a tenacity wait strategy, got 3"),
        ({"stop": "never"}, "Retry: stop must be a tenacity stop strategy, got 'never'"),
        (
            {"handle": 1},
            "Retry: handle must be a predicate over outcomes or a tenacity retry strategy, got 1",
        ),
        ({"budget": 0.2}, "Retry: budget must be a RetryBudget or None, got 0.2"),
    ],
)
def test_bad_options_are_named(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message.replace('.', '[.]')}$"):
        Retry(**options)


async def test_an_open_circuit_inside_is_not_retried() -> None:
    # The standard order puts the retry outside the breaker; retrying an open circuit would
    # only repeat the refusal, after a wait, so the call fails at once.
    clock = FakeClock()
    breaker = CircuitBreaker(clock=clock)
    pipeline = Pipeline([Retry(max_attempts=5, clock=clock), breaker])
    breaker.isolate()
    call = Flaky(0)
    context = Context()
    with pytest.raises(BrokenCircuitError):
        await pipeline.execute(call, context)
    assert call.calls == 0
    assert clock.monotonic() == 0.0
    assert len(context.report.attempts) == 1


async def test_a_rejection_handled_on_purpose_is_retried_after_its_retry_after() -> None:
    clock = FakeClock()
    pipeline = (
        Pipeline.builder(clock=clock)
        .retry(max_attempts=3, backoff=fixed(0.1), handle=handle_exceptions(RateLimitRejected))
        .rate_limit(rate=4.0, burst=1)
        .build()
    )
    call = Flaky(0)
    assert await pipeline.execute(call) == "ok"
    context = Context()
    assert await pipeline.execute(call, context) == "ok"
    # The bucket said 0.25 s to the next token, more than the 0.1 s backoff: that wait it is.
    assert clock.monotonic() == 0.25
    assert [a.delay for a in context.report.attempts] == [0.25, None]


# -- seeded jitter, tenacity strategies as handle= (issue 14) ------------------------------------


async def waits_of(retry: Retry, clock: FakeClock) -> list[float | None]:
    context = Context()
    await Pipeline([retry]).execute(Flaky(3), context)
    return [a.delay for a in context.report.attempts]


async def test_a_seeded_rng_makes_the_jitter_repeat() -> None:
    clock = FakeClock()
    first = await waits_of(Retry(max_attempts=4, rng=random.Random(7), clock=clock), clock)
    again = await waits_of(Retry(max_attempts=4, rng=random.Random(7), clock=clock), clock)
    other = await waits_of(Retry(max_attempts=4, rng=random.Random(8), clock=clock), clock)
    assert first == again != other
    assert first[-1] is None
    # Full jitter as before: each wait within [0, base_delay * 2**n].
    assert all(0 <= w <= 0.2 * 2**n for n, w in enumerate(first[:-1]) if w is not None)


def test_rng_is_checked_and_goes_with_the_default_backoff_only() -> None:
    with pytest.raises(ValueError, match=r"Retry: rng must be a random\.Random, got 7"):
        Retry(rng=7)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"rng seeds the default backoff.*wait_fixed"):
        Retry(backoff=fixed(1.0), rng=random.Random(1))


async def test_handle_takes_tenacity_retry_strategies() -> None:
    clock = FakeClock()
    handle = tenacity.retry_if_exception_type(ConnectionError)
    pipeline = Pipeline([Retry(max_attempts=4, backoff=fixed(1.0), handle=handle, clock=clock)])
    call = Flaky(2)
    assert await pipeline.execute(call) == "ok"
    assert call.calls == 3
    # Not handled: raised at once.
    failing = Flaky(2)

    async def other() -> None:
        failing.calls += 1
        raise KeyError("x")

    with pytest.raises(KeyError):
        await pipeline.execute(other)
    assert failing.calls == 1
    # On results, and combined as tenacity combines them.
    results = tenacity.retry_if_result(lambda r: r == "bad") | handle
    pipeline = Pipeline([Retry(max_attempts=4, backoff=fixed(1.0), handle=results, clock=clock)])
    call = Flaky(2, bad="bad")
    assert await pipeline.execute(call) == "ok"
    assert call.calls == 3
    described = pipeline.describe()["policies"][0]["options"]["handle"]
    assert described.startswith("retry_any(")


def test_handle_refuses_what_is_neither_a_predicate_nor_a_strategy() -> None:
    with pytest.raises(ValueError, match=r"Retry: handle must be a predicate .* got 42"):
        Retry(handle=42)  # type: ignore[arg-type]

    async def always(exc: BaseException) -> bool:
        return True

    with pytest.raises(ValueError, match="asynchronous strategies"):
        Retry(handle=tenacity.asyncio.retry_if_exception(always))
