"""The standard options: what :meth:`Pipeline.standard() <httpx_resilience.Pipeline.standard>`
builds and :meth:`Profile.standard() <httpx_resilience.profiles.Profile.standard>` describes
(the ``default`` profile), read by both so that they cannot drift apart."""

from __future__ import annotations

from dataclasses import dataclass

from .budget import BudgetOptions
from .circuit_breaker import CircuitBreakerPolicyOptions
from .retry import RetryPolicyOptions

__all__ = ["STANDARD", "StandardOptions"]


@dataclass(frozen=True)
class StandardOptions:
    """The policies of the standard pipeline, outermost first: a total timeout, a retry with a
    budget, a circuit breaker (one per origin when ``breaker_per_origin``), an attempt
    timeout."""

    total_timeout: float
    retry: RetryPolicyOptions
    budget: BudgetOptions
    circuit_breaker: CircuitBreakerPolicyOptions
    breaker_per_origin: bool
    attempt_timeout: float


#: The one set of standard options (the numbers ``Pipeline.standard()`` documents).
STANDARD = StandardOptions(
    total_timeout=30.0,
    retry=RetryPolicyOptions(max_attempts=3, base_delay=0.2, max_delay=10.0),
    budget=BudgetOptions(),
    # A breaker is for a dependency that is down, not for noise the retries absorb: 30 % over
    # at least 100 calls never opened on a steady 8 % or 20 % (10 % did on 8 % in 12 runs of
    # 20), while an outage opens it after 100 calls from a fresh window and 9 s into a window
    # of health (50 %: 15 s). A break of 0.5 s doubling to 5 s sees the end of a short outage
    # at once and is never later than the fixed 5 s it replaces (benchmarks/breaker_defaults.py).
    circuit_breaker=CircuitBreakerPolicyOptions(
        failure_ratio=0.3,
        minimum_throughput=100,
        sampling_duration=30.0,
        break_duration=0.5,
        break_duration_max=5.0,
    ),
    breaker_per_origin=True,
    attempt_timeout=10.0,
)
