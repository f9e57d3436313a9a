"""Partitions stay bounded however many distinct keys arrive."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Awaitable, Callable

import pytest

from httpx_resilience import (
    BrokenCircuitError,
    Bulkhead,
    CircuitBreaker,
    CircuitState,
    Context,
    Pipeline,
    RateLimiter,
)
from httpx_resilience.testing import FakeClock

pytestmark = pytest.mark.anyio

OPEN = CircuitState.OPEN


async def call() -> None:
    return None


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_memory_of_a_partitioned_breaker_stops_growing_at_max_partitions() -> None:
    clock = FakeClock(autojump=False)
    breaker = CircuitBreaker(key=lambda c: c.operation_key or "", max_partitions=500, clock=clock)
    pipeline = Pipeline([breaker])
    used: list[int] = []
    tracemalloc.start()
    try:
        for block in range(8):
            for n in range(1000):
                await pipeline.execute(call, Context(operation_key=f"key-{block}-{n}"))
            clock.advance(1.0)
            gc.collect()
            used.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    assert len(breaker.partitions()) == 500
    # From the second block on the cache is full: 6,000 more keys cost no more memory.
    assert used[-1] < used[1] * 1.1, used


@pytest.mark.parametrize(
    "policy",
    [
        lambda: CircuitBreaker(key=lambda c: c.operation_key or "", max_partitions=50),
        lambda: Bulkhead(max_concurrent=1, key=lambda c: c.operation_key or "", max_partitions=50),
        lambda: RateLimiter(rate=1, key=lambda c: c.operation_key or "", max_partitions=50),
    ],
)
async def test_every_partitioned_policy_keeps_at_most_max_partitions(policy: object) -> None:
    made = policy()  # type: ignore[operator]
    pipeline = Pipeline([made])
    for n in range(500):
        await pipeline.execute(call, Context(operation_key=f"tenant-{n}"))
    assert len(made._partitions) == 50


async def test_an_open_circuit_outlives_closed_idle_ones_when_partitions_run_out() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        key=lambda c: c.operation_key or "",
        minimum_throughput=1,
        break_duration=60.0,
        max_partitions=3,
        clock=clock,
    )
    pipeline = Pipeline([breaker])
    calls: list[str] = []

    def call_for(key: str, fail: bool = False) -> Callable[[], Awaitable[None]]:
        async def call() -> None:
            calls.append(key)
            if fail:
                raise ConnectionError(key)

        return call

    with pytest.raises(ConnectionError):
        await pipeline.execute(call_for("failing", fail=True), Context(operation_key="failing"))
    assert breaker.state_of("failing") is OPEN
    # Many other hosts come and go: the failing host is the least recently used partition.
    for n in range(10):
        key = f"healthy-{n}"
        await pipeline.execute(call_for(key), Context(operation_key=key))
        clock.advance(1.0)
    assert len(breaker.partitions()) == 3
    assert breaker.state_of("failing") is OPEN
    calls.clear()
    with pytest.raises(BrokenCircuitError):
        await pipeline.execute(call_for("failing"), Context(operation_key="failing"))
    assert calls == []  # still refused: the failing host is not hit again


async def test_memory_stays_bounded_when_every_partition_must_be_kept() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        key=lambda c: c.operation_key or "",
        minimum_throughput=1,
        break_duration=60.0,
        max_partitions=3,
        clock=clock,
    )
    pipeline = Pipeline([breaker])

    async def fail() -> None:
        raise ConnectionError("down")

    for n in range(10):
        with pytest.raises(ConnectionError):
            await pipeline.execute(fail, Context(operation_key=f"host-{n}"))
    assert len(breaker.partitions()) == 3
    # The least recently used open circuits went first.
    assert set(breaker.partitions()) == {"host-7", "host-8", "host-9"}
