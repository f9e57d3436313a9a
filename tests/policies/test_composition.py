"""Policies composed: another policy's rejection is neither a success nor a failure.

A rejection (an open circuit, a full bulkhead, an empty bucket) means the dependency was not
called. A breaker must not count it, a half-open probe must not be decided by it, and a hedged
try that was rejected is not an answer that ends the race.
"""

from __future__ import annotations

import random
from typing import Any

import anyio
import pytest

from httpx_resilience import (
    AdaptiveLimiter,
    AdaptiveThrottler,
    BrokenCircuitError,
    Bulkhead,
    BulkheadRejected,
    CircuitBreaker,
    CircuitState,
    ConcurrencyLimitRejected,
    Context,
    Fallback,
    Hedging,
    Outcome,
    Pipeline,
    Retry,
    RetryBudget,
    ThrottleRejected,
    Timeout,
    TimeoutRejected,
)
from httpx_resilience.testing import FakeClock

pytestmark = pytest.mark.anyio

# Plain names (not enum literals), so that mypy does not narrow the state between calls.
CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


async def fail() -> str:
    """A call that fails at once (enough of them open a breaker)."""
    raise ConnectionError("down")


async def test_a_hedge_rejected_by_a_bulkhead_does_not_cancel_the_try_about_to_succeed() -> None:
    clock = FakeClock()
    pipeline = (
        Pipeline.builder(clock=clock)
        .hedging(delay=1.0)
        .bulkhead(max_concurrent=1)  # the first try holds the only slot: the hedge is refused
        .build()
    )
    cancelled: list[int] = []

    async def call() -> str:
        try:
            await clock.sleep(1.5)
        except anyio.get_cancelled_exc_class():
            cancelled.append(1)
            raise
        return "answer"

    context = Context()
    assert await pipeline.execute(call, context) == "answer"
    assert cancelled == []
    assert clock.monotonic() == 1.5
    report = context.report
    assert isinstance(report.attempts[1].exception, BulkheadRejected)
    assert report.outcome is report.attempts[0]


async def test_when_every_try_is_rejected_the_caller_gets_the_rejection() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(minimum_throughput=1, break_duration=60.0, clock=clock)
    pipeline = Pipeline([Hedging(delay=1.0, clock=clock), breaker])
    with pytest.raises(ConnectionError):
        await pipeline.execute(fail)
    calls = 0

    async def call() -> str:
        nonlocal calls
        calls += 1
        return "never"

    with pytest.raises(BrokenCircuitError):
        await pipeline.execute(call)
    assert calls == 0
    assert clock.monotonic() == 0.0  # rejected at once: no wait for a hedge that cannot help


async def test_a_real_failure_is_what_the_caller_gets_when_the_hedge_is_rejected() -> None:
    clock = FakeClock()
    pipeline = Pipeline.builder(clock=clock).hedging(delay=1.0).bulkhead(max_concurrent=1).build()

    async def call() -> str:
        await clock.sleep(2.0)
        raise ConnectionError("the real failure")

    with pytest.raises(ConnectionError, match="the real failure"):
        await pipeline.execute(call)


async def test_half_open_probes_inside_hedging_are_not_cancelled_by_rejected_hedges() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        failure_ratio=0.5, minimum_throughput=2, break_duration=5.0, clock=clock
    )
    pipeline = Pipeline([Hedging(delay=0.1, clock=clock), breaker])
    with pytest.raises(ConnectionError):
        await pipeline.execute(fail)  # the try and its hedge fail: it opens
    assert breaker.state is OPEN
    clock.advance(5.0)

    async def healthy() -> str:
        await clock.sleep(0.5)  # slower than the hedge delay: every request is hedged
        return "ok"

    results = []
    for _ in range(10):
        try:
            results.append(await pipeline.execute(healthy))
        except BrokenCircuitError as exc:
            results.append(type(exc).__name__)
    assert results == ["ok"] * 10
    assert breaker.state is CLOSED


async def _hold(pipeline: Pipeline, clock: FakeClock, seconds: float) -> None:
    async def slow() -> None:
        await clock.sleep(seconds)

    await pipeline.execute(slow)


async def test_a_half_open_probe_rejected_inside_does_not_close_the_breaker() -> None:
    clock = FakeClock(autojump=False)
    breaker = CircuitBreaker(minimum_throughput=1, break_duration=5.0, clock=clock)
    bulkhead = Bulkhead(max_concurrent=1, clock=clock)
    pipeline = Pipeline([breaker, bulkhead])
    with pytest.raises(ConnectionError):
        await pipeline.execute(fail)
    clock.advance(5.0)
    calls = 0

    async def call() -> str:
        nonlocal calls
        calls += 1
        return "ok"

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_hold, Pipeline([bulkhead]), clock, 1.0)  # fills the bulkhead
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(BulkheadRejected):
            await pipeline.execute(call)  # the probe is refused by the bulkhead
        assert calls == 0
        assert breaker.state is HALF_OPEN
        clock.advance(1.0)
    # The probe slot was given back: the next call probes, succeeds and closes the breaker.
    assert await pipeline.execute(call) == "ok"
    assert breaker.state is CLOSED


async def test_a_breaker_outside_a_bulkhead_does_not_count_its_rejections_as_successes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        failure_ratio=0.5, minimum_throughput=10, sampling_duration=30.0, clock=clock
    )
    pipeline = Pipeline([breaker, Bulkhead(max_concurrent=10, clock=clock)])
    outcomes: list[str] = []

    async def down() -> None:
        await clock.sleep(1.0)  # the dependency is 100 % down, slowly
        raise ConnectionError("down")

    async def request() -> None:
        try:
            await pipeline.execute(down)
        except Exception as exc:
            outcomes.append(type(exc).__name__)

    async with anyio.create_task_group() as tasks:
        for _ in range(100):
            tasks.start_soon(request)
    assert outcomes.count("ConnectionError") == 10
    assert outcomes.count("BulkheadRejected") == 90
    assert breaker.state is OPEN  # 10 failures of 10 calls, not 10 of 100


@pytest.mark.parametrize("outcome", ["result", "exception"])
async def test_a_handle_that_raises_during_a_probe_gives_the_probe_slot_back(outcome: str) -> None:
    clock = FakeClock()

    def handle(o: Outcome[Any]) -> bool:
        if o.result == "odd" or isinstance(o.exception, KeyError):
            raise RuntimeError("handle is broken")
        return o.exception is not None

    breaker = CircuitBreaker(minimum_throughput=1, break_duration=5.0, handle=handle, clock=clock)
    pipeline = Pipeline([breaker])
    with pytest.raises(ConnectionError):
        await pipeline.execute(fail)
    clock.advance(5.0)

    async def odd() -> str:
        if outcome == "exception":
            raise KeyError("odd")
        return "odd"

    with pytest.raises(RuntimeError, match="handle is broken"):
        await pipeline.execute(odd)
    assert breaker.state is HALF_OPEN

    async def ok() -> str:
        return "ok"

    assert await pipeline.execute(ok) == "ok"  # probed, not refused as "probe in flight"
    assert breaker.state is CLOSED


async def test_retry_and_hedging_sharing_a_budget_count_each_request_once() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.1, min_per_second=0.0, ttl=1000.0)
    pipeline = Pipeline(
        [
            Retry(max_attempts=3, backoff=lambda state: 0.0, budget=budget, clock=clock),
            Hedging(delay=0.0, budget=budget, clock=clock),
        ]
    )

    async def down() -> None:
        raise ConnectionError("down")

    spent = 0
    requests = 200
    for _ in range(requests):
        context = Context()
        with pytest.raises(ConnectionError):
            await pipeline.execute(down, context)
        spent += sum(e.name in ("retry", "hedge") for e in context.report.events)
    # 10 % of 200 requests: 20 retries and hedges together, not twice that.
    assert spent <= 0.1 * requests, spent
    assert spent >= 0.1 * requests - 1, spent


async def test_a_breaker_outside_the_throttler_does_not_count_its_refusals() -> None:
    # The throttler refuses a share of calls while the dependency fails some: its refusals are
    # the caller's own shedding, so the breaker judges the failures of the calls made only.
    clock = FakeClock(autojump=False)
    breaker = CircuitBreaker(failure_ratio=0.6, minimum_throughput=10, clock=clock)
    throttler = AdaptiveThrottler(clock=clock, rng=random.Random(2), min_requests=0)
    pipeline = Pipeline([breaker, throttler])
    made = refused = 0

    async def half_down() -> str:
        nonlocal made
        made += 1
        if made % 2:
            raise ConnectionError("down")
        return "ok"

    for _ in range(200):
        clock.advance(0.01)
        try:
            await pipeline.execute(half_down)
        except ThrottleRejected:
            refused += 1
        except ConnectionError:
            pass
    assert refused > 0
    assert breaker.state is CLOSED  # 50 % of the calls made failed: under 60 %


class _AlwaysRefuse(random.Random):
    """Draws that fall in the refused share whatever its size."""

    def random(self) -> float:
        return 0.0


async def test_a_retry_outside_the_throttler_does_not_retry_its_refusal() -> None:
    clock = FakeClock(autojump=False)
    throttler = AdaptiveThrottler(clock=clock, rng=_AlwaysRefuse(), min_requests=0)
    pipeline = Pipeline.builder(clock=clock).retry(max_attempts=5).add(throttler).build()
    throttler._window_of.record(0.0, True, False)  # the dependency refused its one call
    calls = 0

    async def call() -> str:
        nonlocal calls
        calls += 1
        return "ok"

    context = Context()
    with pytest.raises(ThrottleRejected):
        await pipeline.execute(call, context)
    # Refused locally, once: retrying the refusal would only draw again.
    assert calls == 0
    assert len(context.report.attempts) == 1
    assert isinstance(context.report.attempts[0].exception, ThrottleRejected)


# -- the adaptive limiter's rejection, seen from outside ------------------------------------------


def _full_limiter(clock: FakeClock) -> AdaptiveLimiter:
    return AdaptiveLimiter(initial_limit=1, max_queue=0, key=None, clock=clock)


async def test_a_retry_outside_the_adaptive_limit_does_not_retry_its_rejection() -> None:
    clock = FakeClock(autojump=False)
    limiter = _full_limiter(clock)
    pipeline = Pipeline([Retry(max_attempts=3, clock=clock), limiter])
    context = Context()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_hold, Pipeline([limiter]), clock, 1.0)
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(ConcurrencyLimitRejected):
            await pipeline.execute(fail, context)
        clock.advance(1.0)
    assert len(context.report.attempts) == 1
    assert [e.name for e in context.report.events] == ["concurrency_limited"]


async def test_a_breaker_outside_the_adaptive_limit_does_not_count_its_rejections() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        failure_ratio=0.5, minimum_throughput=10, sampling_duration=30.0, clock=clock
    )
    limiter = AdaptiveLimiter(initial_limit=10, max_queue=0, key=None, clock=clock)
    pipeline = Pipeline([breaker, limiter])
    outcomes: list[str] = []

    async def down() -> None:
        await clock.sleep(1.0)
        raise ConnectionError("down")

    async def request() -> None:
        try:
            await pipeline.execute(down)
        except Exception as exc:
            outcomes.append(type(exc).__name__)

    async with anyio.create_task_group() as tasks:
        for _ in range(100):
            tasks.start_soon(request)
    assert outcomes.count("ConnectionError") == 10
    assert outcomes.count("ConcurrencyLimitRejected") == 90
    assert breaker.state is OPEN  # 10 failures of 10 calls, not 10 of 100
    assert limiter.limit() == 10  # failures that are not overload move no limit


async def test_a_hedge_refused_by_the_adaptive_limit_does_not_end_the_race() -> None:
    clock = FakeClock()
    pipeline = Pipeline([Hedging(delay=1.0, clock=clock), _full_limiter(clock)])

    async def call() -> str:
        await clock.sleep(1.5)
        return "answer"

    context = Context()
    assert await pipeline.execute(call, context) == "answer"
    assert isinstance(context.report.attempts[1].exception, ConcurrencyLimitRejected)
    assert context.report.outcome is context.report.attempts[0]


async def test_a_fallback_outside_the_adaptive_limit_answers_for_its_rejection() -> None:
    clock = FakeClock(autojump=False)
    limiter = _full_limiter(clock)
    pipeline = Pipeline([Fallback(value="cached", clock=clock), limiter])
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_hold, Pipeline([limiter]), clock, 1.0)
        await anyio.wait_all_tasks_blocked()
        context = Context()
        assert await pipeline.execute(fail, context) == "cached"
        assert context.report.fallback_cause == "ConcurrencyLimitRejected"
        clock.advance(1.0)


async def test_a_call_cancelled_in_the_adaptive_limit_gives_its_permit_back_unmeasured() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(initial_limit=2, key=None, clock=clock)
    pipeline = Pipeline([Timeout(0.5, clock=clock), limiter])

    async def slow() -> None:
        await clock.sleep(5.0)

    async def timed_out() -> None:
        with pytest.raises(TimeoutRejected):
            await pipeline.execute(slow)

    async with anyio.create_task_group() as tasks:
        for _ in range(2):
            tasks.start_soon(timed_out)
    assert limiter.occupancy() == (0, 0)
    # Cancelled from outside: no round trip measured, no drop (a timeout inside would be one).
    assert limiter.limit() == 2
    assert limiter.describe()["state"]["partitions"][""]["baseline_rtt"] is None
