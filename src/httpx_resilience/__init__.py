"""httpx-resilience: timeouts, retries, circuit breakers, bulkheads, rate limits and fallbacks
for httpx, asyncio-native (and trio-ready through anyio)."""

from ._clock import Clock, SystemClock
from ._version import __version__
from .context import Attempt, Context, ExecutionReport
from .errors import (
    BrokenCircuitError,
    BulkheadRejected,
    ConfigError,
    IsolatedCircuitError,
    RateLimitRejected,
    ResilienceError,
    TimeoutRejected,
)
from .http.client import ResilientClient
from .http.transport import ResilienceTransport
from .outcome import Outcome, OutcomePredicate, handle_all, handle_exceptions, handle_results
from .pipeline import Pipeline, PipelineBuilder, Policy
from .policies.budget import RetryBudget
from .policies.retry import Retry
from .policies.timeout import Timeout
from .telemetry import ResilienceEvent

__all__ = [
    "Attempt",
    "BrokenCircuitError",
    "BulkheadRejected",
    "Clock",
    "ConfigError",
    "Context",
    "ExecutionReport",
    "IsolatedCircuitError",
    "Outcome",
    "OutcomePredicate",
    "Pipeline",
    "PipelineBuilder",
    "Policy",
    "RateLimitRejected",
    "ResilienceError",
    "ResilienceEvent",
    "ResilienceTransport",
    "ResilientClient",
    "Retry",
    "RetryBudget",
    "SystemClock",
    "Timeout",
    "TimeoutRejected",
    "__version__",
    "handle_all",
    "handle_exceptions",
    "handle_results",
]
