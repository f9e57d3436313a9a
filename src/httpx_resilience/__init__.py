"""httpx-resilience: timeouts, retries, circuit breakers, bulkheads, rate limits and fallbacks
for httpx, asyncio-native (and trio-ready through anyio)."""

from typing import TYPE_CHECKING, Any

from ._clock import Clock, SystemClock
from ._version import __version__
from .context import (
    Attempt,
    Context,
    ExecutionReport,
    RetryStopped,
    by_header,
    by_origin,
    hashed,
)
from .errors import (
    BrokenCircuitError,
    BulkheadRejected,
    ConcurrencyLimitRejected,
    ConfigError,
    IsolatedCircuitError,
    PacingRejected,
    RateLimitRejected,
    ResilienceError,
    ThrottleRejected,
    TimeoutRejected,
)
from .http.alternate import Alternate
from .http.cache import ResponseCache
from .http.client import ResilientClient
from .http.transport import ResilienceTransport
from .outcome import Outcome, OutcomePredicate, handle_all, handle_exceptions, handle_results
from .pipeline import Pipeline, PipelineBuilder, Policy
from .policies.adaptive_limit import AdaptiveLimiter
from .policies.adaptive_throttle import AdaptiveThrottler
from .policies.budget import RetryBudget
from .policies.bulkhead import Bulkhead
from .policies.circuit_breaker import CircuitBreaker, CircuitState
from .policies.fallback import Fallback, FallbackSource
from .policies.hedging import Hedging
from .policies.pacing import Pacing
from .policies.rate_limit import RateLimiter
from .policies.retry import Retry
from .policies.timeout import Timeout
from .priority import Priority
from .profiles import Profile, Registry
from .telemetry import ResilienceEvent

__all__ = [
    "AdaptiveLimiter",
    "AdaptiveThrottler",
    "Alternate",
    "Attempt",
    "BrokenCircuitError",
    "Bulkhead",
    "BulkheadRejected",
    "CircuitBreaker",
    "CircuitState",
    "Clock",
    "ConcurrencyLimitRejected",
    "ConfigError",
    "Context",
    "ExecutionReport",
    "Fallback",
    "FallbackSource",
    "Hedging",
    "IsolatedCircuitError",
    "Outcome",
    "OutcomePredicate",
    "Pacing",
    "PacingRejected",
    "Pipeline",
    "PipelineBuilder",
    "Policy",
    "Priority",
    "Profile",
    "RateLimitRejected",
    "RateLimiter",
    "Registry",
    "ResilienceError",
    "ResilienceEvent",
    "ResilienceTransport",
    "ResilientClient",
    "ResponseCache",
    "Retry",
    "RetryBudget",
    "RetryStopped",
    "SystemClock",
    "ThrottleRejected",
    "Timeout",
    "TimeoutRejected",
    "__version__",
    "by_header",
    "by_origin",
    "handle_all",
    "handle_exceptions",
    "handle_results",
    "hashed",
]

if TYPE_CHECKING:
    from .backends.redis import RedisBackend as RedisBackend


def __getattr__(name: str) -> Any:
    # RedisBackend needs the redis extra, so it is imported on first use rather than with the
    # package (and is not in __all__, so that a star import does not need the extra either).
    if name == "RedisBackend":
        from .backends.redis import RedisBackend

        return RedisBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
