from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import tenacity

from httpx_resilience import (
    AdaptiveLimiter,
    BrokenCircuitError,
    CircuitBreaker,
    CircuitState,
    Context,
    Pacing,
    Pipeline,
    PipelineBuilder,
    Policy,
    ResilienceEvent,
    Retry,
    RetryBudget,
    Timeout,
    by_origin,
)
from httpx_resilience.testing import FakeClock

pytestmark = pytest.mark.anyio
T = TypeVar("T")


class Recorder:
    """A policy that logs when it is entered and left."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    async def execute(self, next: Callable[[Context], Awaitable[T]], context: Context) -> T:
        self.log.append(f"enter {self.name}")
        try:
            return await next(context)
        finally:
            self.log.append(f"leave {self.name}")


async def test_policies_run_outermost_first() -> None:
    log: list[str] = []
    pipeline = Pipeline.builder().add(Recorder("a", log)).add(Recorder("b", log)).build()

    async def call() -> str:
        log.append("call")
        return "result"

    assert await pipeline.execute(call) == "result"
    assert log == ["enter a", "enter b", "call", "leave b", "leave a"]


async def test_an_empty_pipeline_just_calls() -> None:
    async def call() -> int:
        return 42

    assert await Pipeline().execute(call) == 42


async def test_the_same_context_reaches_every_policy() -> None:
    seen: list[Context] = []

    class Spy:
        async def execute(self, next: Callable[[Context], Awaitable[T]], context: Context) -> T:
            seen.append(context)
            return await next(context)

    context = Context(operation_key="payments")
    context.properties["tenant"] = "acme"

    async def call() -> None:
        return None

    await Pipeline([Spy(), Spy()]).execute(call, context)
    assert seen == [context, context]
    assert seen[0].properties == {"tenant": "acme"}
    assert seen[0].operation_key == "payments"


async def test_wrap_keeps_the_function_and_runs_each_call_through_the_pipeline() -> None:
    clock = FakeClock()
    pipeline = (
        Pipeline.builder(clock=clock).retry(max_attempts=3, backoff=tenacity.wait_fixed(1)).build()
    )
    calls: list[tuple[int, str]] = []

    @pipeline.wrap
    async def fetch(n: int, *, label: str) -> str:
        """Fetch something."""
        calls.append((n, label))
        if len(calls) < 2:
            raise ConnectionError("flaky")
        return f"{label}{n}"

    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Fetch something."
    assert await fetch(7, label="x") == "x7"
    assert calls == [(7, "x"), (7, "x")]
    assert clock.monotonic() == 1.0


def test_the_builder_gives_its_clock_to_the_policies_it_makes() -> None:
    clock = FakeClock()
    own = FakeClock()
    builder = Pipeline.builder(clock=clock).timeout(1.0).retry(clock=own)
    timeout, retry = builder.policies
    assert isinstance(timeout, Timeout)
    assert isinstance(retry, Retry)
    assert timeout._clock is clock
    assert retry._clock is own


def test_builder_methods_validate_like_the_policies() -> None:
    with pytest.raises(ValueError, match=r"Timeout: seconds must be a finite number > 0, got -1"):
        Pipeline.builder().timeout(-1)
    with pytest.raises(ValueError, match=r"Retry: max_attempts must be an integer >= 1, got 0"):
        Pipeline.builder().retry(max_attempts=0)


def test_a_pipeline_only_takes_policies() -> None:
    with pytest.raises(TypeError, match="not a policy"):
        Pipeline([object()])  # type: ignore[list-item]


def test_policies_are_kept_in_order_and_satisfy_the_protocol() -> None:
    pipeline = Pipeline.builder().timeout(5).retry().timeout(1).build()
    assert [type(p) for p in pipeline.policies] == [Timeout, Retry, Timeout]
    assert all(isinstance(p, Policy) for p in pipeline.policies)
    assert "Timeout(seconds=5)" in repr(pipeline)
    assert isinstance(Pipeline.builder(), PipelineBuilder)


def test_the_standard_pipeline_has_the_documented_shape() -> None:
    total, retry, breaker, pacing, limit, attempt = Pipeline.standard().policies
    assert isinstance(total, Timeout)
    assert total.seconds == 30.0
    assert isinstance(retry, Retry)
    assert retry.max_attempts == 3
    assert isinstance(retry.budget, RetryBudget)
    assert (retry.budget.ratio, retry.budget.min_per_second, retry.budget.ttl) == (0.2, 10.0, 10.0)
    assert isinstance(breaker, CircuitBreaker)
    assert breaker._failure_ratio == 0.3
    assert breaker._minimum_throughput == 100
    assert breaker._sampling_duration == 30.0
    assert breaker._break_duration == 0.5
    assert breaker._break_duration_max is None
    assert breaker._max_wait == 1.0
    assert breaker._key is by_origin
    assert isinstance(pacing, Pacing)
    assert pacing._key is by_origin
    assert isinstance(limit, AdaptiveLimiter)
    assert (limit._initial_limit, limit._max_queue, limit._key) == (20, None, by_origin)
    assert isinstance(attempt, Timeout)
    assert attempt.seconds == 10.0
    # Each call makes a pipeline with state of its own.
    assert Pipeline.standard().policies[1] is not retry


async def test_listeners_receive_events_and_a_failing_listener_breaks_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    received: list[ResilienceEvent] = []

    def broken(event: ResilienceEvent) -> None:
        raise RuntimeError("listener bug")

    clock = FakeClock()
    pipeline = (
        Pipeline.builder(clock=clock, listeners=[broken, received.append])
        .retry(max_attempts=2, backoff=tenacity.wait_fixed(0.5))
        .build()
    )
    attempts = 0

    async def call() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("first try fails")
        return "ok"

    context = Context(operation_key="search")
    with caplog.at_level("INFO", logger="httpx_resilience"):
        assert await pipeline.execute(call, context) == "ok"
    assert [e.name for e in received] == ["retry"]
    event = received[0]
    assert (event.policy, event.profile, event.attempt, event.outcome) == (
        "retry",
        "search",
        0,
        "ConnectionError",
    )
    assert event.detail["delay"] == 0.5
    assert context.report.events == received
    assert "listener bug" in caplog.text or "failed on retry" in caplog.text
    assert any("retry: retry profile=search" in r.getMessage() for r in caplog.records)


async def test_the_report_is_created_lazily_and_records_attempts() -> None:
    context = Context()

    async def call() -> int:
        return 1

    await Pipeline.builder().retry().build().execute(call, context)
    assert [a.number for a in context.report.attempts] == [0]
    assert context.report.attempts[0].result == 1
    assert context.report.total_wait == 0
    assert context.report.outcome is context.report.attempts[0]


async def test_a_plain_pipeline_without_retry_records_no_attempts() -> None:
    context = Context()

    async def call() -> int:
        return 1

    await Pipeline.builder().timeout(1).build().execute(call, context)
    assert context.report.attempts == []
    assert context.report.outcome is None


def test_context_repr_and_properties() -> None:
    context = Context(operation_key="x", deadline=5.0)
    assert "operation_key='x'" in repr(context)
    assert context.properties == {}
    context.properties["a"] = 1
    assert context.properties == {"a": 1}


async def test_a_policy_may_be_any_object_with_execute() -> None:
    class Doubler:
        async def execute(self, next: Callable[[Context], Awaitable[Any]], context: Context) -> Any:
            return 2 * await next(context)

    async def call() -> int:
        return 21

    assert await Pipeline([Doubler()]).execute(call) == 42


class _Down(Exception):
    pass


async def _through_standard_breaker(
    breaker: CircuitBreaker, failing: bool, clock: FakeClock, step: float, *, wait: bool = False
) -> str:
    """One call through the standard pipeline's breaker, ``step`` seconds after the last:
    "ok", "failed" or "refused". Unless it may ``wait``, its deadline is now: the breaker
    refuses it at once rather than holding it for the next probe."""
    clock.advance(step)

    async def call(_context: Context) -> None:
        if failing:
            raise _Down

    context = Context() if wait else Context(deadline=clock.monotonic())
    try:
        await breaker.execute(call, context)
    except BrokenCircuitError:
        return "refused"
    except _Down:
        return "failed"
    return "ok"


@pytest.mark.parametrize("seed", range(5))
async def test_the_standard_breaker_never_opens_on_a_steady_8_percent_of_failures(
    seed: int,
) -> None:
    # 1,700 calls a second for 5 s, as 40 callers make on loopback (issue 13: at 10 % over 100
    # calls, with a fresh window after every close, this opened in 2 runs out of 3).
    clock = FakeClock(autojump=False)
    breaker = Pipeline.standard(clock=clock).policies[2]
    assert isinstance(breaker, CircuitBreaker)
    rng = random.Random(seed)
    outcomes = [
        await _through_standard_breaker(breaker, rng.random() < 0.08, clock, 1 / 1700)
        for _ in range(8500)
    ]
    assert "refused" not in outcomes
    assert 0.06 < outcomes.count("failed") / len(outcomes) < 0.10


async def test_the_standard_breaker_opens_on_an_outage_and_sees_its_end_within_a_second() -> None:
    clock = FakeClock(autojump=False)
    breaker = Pipeline.standard(clock=clock).policies[2]
    assert isinstance(breaker, CircuitBreaker)
    step = 1 / 1700
    outcomes = [await _through_standard_breaker(breaker, True, clock, step) for _ in range(101)]
    assert outcomes[:100] == ["failed"] * 100
    assert outcomes[100] == "refused"
    while clock.monotonic() < 3.0:  # the outage lasts 3 s: probes fail, the break grows
        await _through_standard_breaker(breaker, True, clock, step)
    assert breaker.state_of("") is not CircuitState.CLOSED  # by_origin: "" without a request
    ended = clock.monotonic()
    # The first call after the end waits for the next probe (it is that probe), not refused
    # until then: answered within the break (a fixed 5 s break made it 2 s, and refusing
    # lost every call until the probe).
    clock.autojump = True
    assert await _through_standard_breaker(breaker, False, clock, 0.0, wait=True) == "ok"
    assert 0.0 < clock.monotonic() - ended <= 0.5
    assert breaker.state_of("") is CircuitState.CLOSED


async def test_the_standard_breaker_opens_within_9_s_of_an_outage_after_a_window_of_health() -> (
    None
):
    # A service that has been running: 30 s of successes fill the window, then everything
    # fails. The breaker opens once 30 % of the window is failures (at 50 % it took 15 s).
    clock = FakeClock(autojump=False)
    breaker = Pipeline.standard(clock=clock).policies[2]
    assert isinstance(breaker, CircuitBreaker)
    step = 1 / 200
    for _ in range(30 * 200):
        assert await _through_standard_breaker(breaker, False, clock, step) == "ok"
    start = clock.monotonic()
    while await _through_standard_breaker(breaker, True, clock, step) != "refused":
        pass
    assert clock.monotonic() - start <= 9.1
