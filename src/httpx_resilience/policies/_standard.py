"""The standard options: what :meth:`Pipeline.standard() <httpx_resilience.Pipeline.standard>`
builds and :meth:`Profile.standard() <httpx_resilience.profiles.Profile.standard>` describes
(the ``default`` profile), read by both so that they cannot drift apart."""

from __future__ import annotations

from dataclasses import dataclass

from .adaptive_limit import AdaptiveLimitPolicyOptions
from .budget import BudgetOptions
from .circuit_breaker import CircuitBreakerPolicyOptions
from .pacing import PacingPolicyOptions
from .retry import RetryPolicyOptions

__all__ = ["STANDARD", "StandardOptions"]


@dataclass(frozen=True)
class StandardOptions:
    """The policies of the standard pipeline, outermost first: a total timeout, a retry with a
    budget, a circuit breaker (one per origin when ``breaker_per_origin``), a pacing gate (one
    per origin), an adaptive concurrency limit (one per origin; none when ``None``), an attempt
    timeout."""

    total_timeout: float
    retry: RetryPolicyOptions
    budget: BudgetOptions
    circuit_breaker: CircuitBreakerPolicyOptions
    breaker_per_origin: bool
    pacing: PacingPolicyOptions
    adaptive_limit: AdaptiveLimitPolicyOptions | None
    attempt_timeout: float


#: The one set of standard options (the numbers ``Pipeline.standard()`` documents).
STANDARD = StandardOptions(
    total_timeout=30.0,
    retry=RetryPolicyOptions(max_attempts=3, base_delay=0.2, max_delay=10.0),
    budget=BudgetOptions(),
    # A breaker is for a dependency that is down, not for noise the retries absorb: 30 % over
    # at least 100 calls never opened on a steady 8 % or 20 % (10 % did on 8 % in 12 runs of
    # 20), while an outage opens it after 100 calls from a fresh window and 9 s into a window
    # of health (50 %: 15 s). A break of 0.5 s, however many probes failed, lets the first
    # call through at most 0.5 s after an outage ends (0.06-0.12 s after one of 3, 10 or 60 s;
    # doubling to 1 s: 0.56-0.59 s, to 5 s: 2.56 s after 10 s), for two probes a second per
    # origin while it lasts (benchmarks/breaker_defaults.py). Refused at once, the calls between
    # an outage's end and the next probe were lost (the demo's outage: 54.0-59.6 % successes
    # against plain httpx's 60.0 %); waiting up to 1 s for the probe's verdict, 489-527 of 800
    # against 480, the calls during the outage failing in 0.26-0.32 s at the median.
    circuit_breaker=CircuitBreakerPolicyOptions(
        failure_ratio=0.3,
        minimum_throughput=100,
        sampling_duration=30.0,
        break_duration=0.5,
        break_duration_max=None,
        max_wait=1.0,
    ),
    breaker_per_origin=True,
    # Inside the breaker, so that a refusal at the gate is not a failure it counts.
    pacing=PacingPolicyOptions(),
    # After pacing, so that a wait at the gate holds no permit. It delivers 0.98 of an
    # overloaded upstream's capacity within a 1 s deadline at 3x and 10x (plain httpx 0.04 and
    # 0.00; benchmarks/overload.py), answers a burst of 500 closed-loop callers in full, and
    # no longer refuses calls slow by nature, a burst after quiet seconds or the calls of a
    # process busy with its own work (0.8 of a CPU), which kept it out of the standard until
    # issue 13's last rounds.
    adaptive_limit=AdaptiveLimitPolicyOptions(),
    attempt_timeout=10.0,
)
