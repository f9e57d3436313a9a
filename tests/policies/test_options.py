"""Each policy's options are defined once: the constructor and the profiles share them."""

from __future__ import annotations

import inspect
from dataclasses import MISSING, fields
from typing import Any

import pytest

from httpx_resilience import (
    AdaptiveThrottler,
    Bulkhead,
    CircuitBreaker,
    Hedging,
    RateLimiter,
    Retry,
    RetryBudget,
)
from httpx_resilience.errors import ConfigError
from httpx_resilience.policies.adaptive_throttle import AdaptiveThrottlePolicyOptions
from httpx_resilience.policies.bulkhead import BulkheadPolicyOptions
from httpx_resilience.policies.circuit_breaker import CircuitBreakerPolicyOptions
from httpx_resilience.policies.rate_limit import RateLimiterPolicyOptions
from httpx_resilience.policies.retry import RetryPolicyOptions
from httpx_resilience.profiles import (
    AdaptiveThrottleOptions,
    BudgetOptions,
    BulkheadOptions,
    CircuitBreakerOptions,
    HedgingOptions,
    RateLimitOptions,
    RetryOptions,
)

# A policy, its own options (next to it), a profile's options for it.
POLICIES: list[tuple[Any, Any, Any]] = [
    (Retry, RetryPolicyOptions, RetryOptions),
    (RetryBudget, BudgetOptions, BudgetOptions),
    (Hedging, HedgingOptions, HedgingOptions),
    (CircuitBreaker, CircuitBreakerPolicyOptions, CircuitBreakerOptions),
    (Bulkhead, BulkheadPolicyOptions, BulkheadOptions),
    (RateLimiter, RateLimiterPolicyOptions, RateLimitOptions),
    (AdaptiveThrottler, AdaptiveThrottlePolicyOptions, AdaptiveThrottleOptions),
]


@pytest.mark.parametrize(("policy", "own", "profile"), POLICIES)
def test_a_profile_s_options_extend_the_policy_s_with_the_same_defaults(
    policy: Any, own: Any, profile: Any
) -> None:
    assert issubclass(profile, own)
    keywords = inspect.signature(policy).parameters
    shared = [
        f
        for f in fields(profile)
        if f.name in keywords and "rule" in f.metadata and f.name != "max_partitions"
    ]
    # The plain options a profile shares with the constructor are the policy's own fields
    # (partitioning, budget and backend are a profile's spelling of constructor objects)...
    assert [f.name for f in shared] == [f.name for f in fields(own)]
    # ...with the constructor's default (Retry's max_attempts is 3 unless stop= is given).
    for f in shared:
        if f.default is not MISSING and f.name != "max_attempts":
            assert keywords[f.name].default == f.default, f.name


def test_one_rule_is_worded_for_the_constructor_and_for_a_profile() -> None:
    with pytest.raises(ValueError, match="break_duration_max") as refused:
        CircuitBreaker(break_duration=5, break_duration_max=1)
    assert str(refused.value) == (
        "CircuitBreaker: break_duration_max must be >= break_duration (5), got 1"
    )
    with pytest.raises(ConfigError) as problems:
        CircuitBreakerOptions(break_duration=5, break_duration_max=1)
    assert problems.value.problems == [
        "CircuitBreakerOptions.break_duration_max: expected a number >= break_duration (5), got 1"
    ]


def test_derived_problems_show_the_values_as_given() -> None:
    with pytest.raises(ValueError, match="ttl") as refused:
        RetryBudget(min_per_second=10, ttl=1e308)
    assert str(refused.value) == (
        "RetryBudget: ttl must be small enough that min_per_second * ttl is finite, "
        "got min_per_second=10, ttl=1e+308"
    )


def test_describe_reads_the_options() -> None:
    breaker = CircuitBreaker(sampling_duration=20, slow_call_duration=2)
    described = breaker.describe()["options"]
    assert described["sampling_duration"] == 20.0
    assert isinstance(described["sampling_duration"], float)
    assert described["slow_call_ratio"] == 1.0  # every slow call, when not told otherwise
