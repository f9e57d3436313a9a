"""Options whose derived quantities would overflow, or that are only truthy, are refused by
the constructor rather than failing on the first call (issue 11)."""

from __future__ import annotations

from typing import Any

import pytest

from httpx_resilience import Pipeline, RateLimiter, RateLimitRejected, Retry, RetryBudget
from httpx_resilience.testing import FakeClock


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: RetryBudget(ttl=1e-320),
            "RetryBudget: ttl must be at least 1e-280 (clock readings are divided by it), "
            "got 1e-320",
        ),
        (
            lambda: RetryBudget(ttl=1e308),
            "RetryBudget: ttl must be small enough that min_per_second * ttl is finite, "
            "got min_per_second=10.0, ttl=1e+308",
        ),
        (
            lambda: RateLimiter(rate=1e-320),
            "RateLimiter: rate must be at least 1e-300 (1 / rate must be finite), got 1e-320",
        ),
        (
            lambda: Retry(respect_retry_after="false"),  # type: ignore[arg-type]
            "Retry: respect_retry_after must be true or false, got 'false'",
        ),
        (
            lambda: Pipeline.builder().retry(respect_retry_after="false"),  # type: ignore[arg-type]
            "Retry: respect_retry_after must be true or false, got 'false'",
        ),
    ],
)
def test_options_that_would_fail_at_run_time_are_refused(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match="must be") as info:
        build()
    assert str(info.value) == message


def test_a_budget_of_the_smallest_window_still_works_at_a_late_clock_reading() -> None:
    budget = RetryBudget(ttl=1e-280, min_per_second=0.0)
    late = 1e12  # seconds: the clock reading the bound is derived from
    budget.deposit(late)
    assert budget.balance(late) == pytest.approx(0.2)


@pytest.mark.anyio
async def test_the_slowest_rate_limiter_rejects_rather_than_overflowing() -> None:
    limiter = RateLimiter(rate=1e-300, burst=1, clock=FakeClock())
    pipeline = Pipeline([limiter])

    async def call() -> str:
        return "ok"

    assert await pipeline.execute(call) == "ok"
    with pytest.raises(RateLimitRejected):
        await pipeline.execute(call)
