"""Partitions stay bounded however many distinct keys arrive."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from httpx_resilience import Bulkhead, CircuitBreaker, Context, Pipeline, RateLimiter
from httpx_resilience.testing import FakeClock

pytestmark = pytest.mark.anyio


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
