from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest

from httpx_resilience import Context, Pipeline, RateLimiter, RateLimitRejected
from httpx_resilience.testing import FakeClock

pytestmark = pytest.mark.anyio


async def noop() -> None:
    return None


def limited(**options: Any) -> tuple[Pipeline, RateLimiter, FakeClock]:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, **options)
    return Pipeline([limiter]), limiter, clock


async def test_a_burst_goes_through_then_calls_are_rejected_with_the_exact_wait() -> None:
    pipeline, limiter, clock = limited(rate=2.0, burst=3)
    for _ in range(3):
        await pipeline.execute(noop)
    context = Context()
    with pytest.raises(RateLimitRejected, match=r"2/s, burst 3\); next token in 0\.5 s") as info:
        await pipeline.execute(noop, context)
    assert info.value.retry_after == 0.5
    event = context.report.events[0]
    assert (event.name, event.detail["retry_after"]) == ("rate_limited", 0.5)
    clock.advance(0.2)
    with pytest.raises(RateLimitRejected) as info:
        await pipeline.execute(noop)
    assert info.value.retry_after == pytest.approx(0.3)
    clock.advance(0.3)
    await pipeline.execute(noop)
    assert limiter.available() == 0


async def test_tokens_refill_at_the_rate_up_to_the_burst() -> None:
    pipeline, limiter, clock = limited(rate=4.0, burst=2)
    await pipeline.execute(noop)
    await pipeline.execute(noop)
    assert limiter.available() == 0
    clock.advance(0.25)
    assert limiter.available() == 1
    clock.advance(100)
    assert limiter.available() == 2


async def test_the_default_burst_is_one_seconds_worth() -> None:
    assert RateLimiter(rate=10).burst == 10
    assert RateLimiter(rate=2.5).burst == 3
    assert RateLimiter(rate=0.1).burst == 1


async def test_a_call_waits_for_a_token_up_to_max_wait() -> None:
    pipeline, _, clock = limited(rate=1.0, burst=1, max_wait=2.0)
    await pipeline.execute(noop)
    await pipeline.execute(noop)  # waits one second for the next token
    assert clock.monotonic() == 1.0
    await pipeline.execute(noop)
    assert clock.monotonic() == 2.0


async def test_waiters_are_served_first_come_first_served_at_the_rate() -> None:
    clock = FakeClock(autojump=False)  # waiters truly block, so arrival order is ours to set
    limiter = RateLimiter(rate=2.0, burst=1, max_wait=10.0, clock=clock)
    pipeline = Pipeline([limiter])
    admitted: list[tuple[str, float]] = []

    async def take(name: str) -> None:
        async def call() -> None:
            admitted.append((name, clock.monotonic()))

        await pipeline.execute(call)

    async with anyio.create_task_group() as tg:
        for name in "abcd":
            tg.start_soon(take, name)
            await anyio.wait_all_tasks_blocked()
        for _ in range(3):
            clock.advance(0.5)
            await anyio.wait_all_tasks_blocked()
    assert admitted == [("a", 0.0), ("b", 0.5), ("c", 1.0), ("d", 1.5)]
    assert limiter.available() == 0


async def test_a_wait_longer_than_max_wait_is_rejected_counting_the_queue() -> None:
    clock = FakeClock(autojump=False)
    pipeline = Pipeline([RateLimiter(rate=1.0, burst=1, max_wait=2.5, clock=clock)])
    await pipeline.execute(noop)
    async with anyio.create_task_group() as tg:
        tg.start_soon(pipeline.execute, noop)  # gets the token at 1.0
        tg.start_soon(pipeline.execute, noop)  # at 2.0
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(RateLimitRejected) as info:
            await pipeline.execute(noop)  # would get it at 3.0 > 2.5
        assert info.value.retry_after == 3.0
        clock.advance(1.0)
        await anyio.wait_all_tasks_blocked()
        clock.advance(1.0)


async def test_the_wait_never_passes_the_deadline() -> None:
    pipeline, _, clock = limited(rate=1.0, burst=1, max_wait=10.0)
    await pipeline.execute(noop)
    with pytest.raises(RateLimitRejected):
        await pipeline.execute(noop, Context(deadline=0.5))
    assert clock.monotonic() == 0.0
    await pipeline.execute(noop, Context(deadline=1.0))
    assert clock.monotonic() == 1.0


async def test_zero_max_wait_rejects_at_once() -> None:
    pipeline, _, clock = limited(rate=100.0, burst=1)
    await pipeline.execute(noop)
    with pytest.raises(RateLimitRejected):
        await pipeline.execute(noop)
    assert clock.monotonic() == 0.0


async def test_a_cancelled_waiter_gives_its_place_to_the_next() -> None:
    clock = FakeClock(autojump=False)
    limiter = RateLimiter(rate=1.0, burst=1, max_wait=10.0, clock=clock)
    pipeline = Pipeline([limiter])
    await pipeline.execute(noop)
    admitted: list[tuple[str, float]] = []

    async def take(name: str) -> None:
        async def call() -> None:
            admitted.append((name, clock.monotonic()))

        await pipeline.execute(call)

    first = anyio.CancelScope()
    middle = anyio.CancelScope()

    async def cancellable(scope: anyio.CancelScope, name: str) -> None:
        with scope:
            await take(name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(cancellable, first, "first")  # would be served at 1.0
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(cancellable, middle, "middle")  # at 2.0
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(take, "last")  # at 3.0
        await anyio.wait_all_tasks_blocked()
        first.cancel()
        middle.cancel()
        await anyio.wait_all_tasks_blocked()
        clock.advance(1.0)
    # Nothing was taken by the cancelled calls: the last one gets the very next token.
    assert admitted == [("last", 1.0)]
    clock.advance(5)
    assert limiter.available() == 1


async def test_admitted_calls_never_exceed_burst_plus_rate_times_t() -> None:
    pipeline, _, clock = limited(rate=5.0, burst=3, max_wait=0.25)
    admitted: list[float] = []

    async def call() -> None:
        admitted.append(clock.monotonic())

    async def worker() -> None:
        for _ in range(40):
            try:
                await pipeline.execute(call)
            except RateLimitRejected as exc:
                await clock.sleep(exc.retry_after / 2)

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(worker)
    assert len(admitted) > 10
    for i, start in enumerate(admitted):
        for j in range(i, len(admitted)):
            assert j - i + 1 <= 3 + 5.0 * (admitted[j] - start) + 1e-9


async def test_partitions_have_buckets_of_their_own() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=1.0, burst=1, key=lambda c: c.operation_key or "", clock=clock)
    pipeline = Pipeline([limiter])
    await pipeline.execute(noop, Context(operation_key="tenant-a"))
    await pipeline.execute(noop, Context(operation_key="tenant-b"))
    with pytest.raises(RateLimitRejected, match="the rate limit for 'tenant-a'"):
        await pipeline.execute(noop, Context(operation_key="tenant-a"))
    assert limiter.available("tenant-a") == 0
    assert limiter.available("tenant-c") == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rate": 0}, "rate must be a finite number > 0, got 0"),
        ({"rate": float("nan")}, "rate must be a finite number > 0, got nan"),
        ({"rate": 1, "burst": 0.5}, "burst must be at least 1, got 0.5"),
        ({"rate": 1, "burst": -1}, "burst must be a finite number > 0, got -1"),
        ({"rate": 1, "max_wait": -1}, "max_wait must be a finite number >= 0, got -1"),
        ({"rate": 1, "key": "tenant"}, "key must be a function of the context, got 'tenant'"),
    ],
)
def test_bad_options_are_named(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^RateLimiter: {message}"):
        RateLimiter(**options)
