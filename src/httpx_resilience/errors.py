"""The exceptions the library raises.

Every rejection a policy makes is a :class:`ResilienceError`. Raised through the HTTP layer
(:class:`~httpx_resilience.ResilientClient`, :class:`~httpx_resilience.ResilienceTransport`), the
same exceptions are also :class:`httpx.TransportError` (and :class:`TimeoutRejected` also
:class:`httpx.TimeoutException`), so code written against httpx keeps catching them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "BrokenCircuitError",
    "BulkheadRejected",
    "ConcurrencyLimitRejected",
    "ConfigError",
    "IsolatedCircuitError",
    "PacingRejected",
    "RateLimitRejected",
    "ResilienceError",
    "ThrottleRejected",
    "TimeoutRejected",
]


class ResilienceError(Exception):
    """Base class of every rejection made by a policy rather than by the dependency."""

    def __reduce__(self) -> tuple[Any, ...]:
        # The default calls the class with `args` alone, which the keyword-only attributes
        # (timeout, retry_after) refuse; rebuild without `__init__`, then restore the attributes
        # (and, for the HTTP layer's subclasses, the request).
        return _rebuild, (type(self), self.args), self.__dict__


def _rebuild(cls: type[ResilienceError], args: tuple[Any, ...]) -> ResilienceError:
    return cls.__new__(cls, *args)


class TimeoutRejected(ResilienceError):
    """A :class:`~httpx_resilience.Timeout` ran out before the call finished.

    Attributes:
        timeout: The timeout, in seconds, that ran out.
    """

    def __init__(self, message: str, *, timeout: float) -> None:
        super().__init__(message)
        self.timeout = timeout


class BrokenCircuitError(ResilienceError):
    """The circuit breaker is open: the call was rejected without reaching the dependency.

    Attributes:
        retry_after: Seconds until the breaker lets a probe through, or ``None`` when it is held
            open by :meth:`~httpx_resilience.CircuitBreaker.isolate`.
    """

    def __init__(self, message: str, *, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class IsolatedCircuitError(BrokenCircuitError):
    """The circuit breaker was opened by hand and stays open until it is reset."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retry_after=None)


class BulkheadRejected(ResilienceError):
    """The bulkhead was full (all slots busy and the queue full, or the queue wait ran out)."""


class ConcurrencyLimitRejected(ResilienceError):
    """The adaptive concurrency limit was reached (every permit in use and the queue full, the
    queue wait ran out, or a ``"sheddable"`` call met a limit under pressure).

    Attributes:
        retry_after: Seconds until a permit is likely to come free (the typical round trip the
            limiter has measured), or ``None`` before it has measured one.
    """

    def __init__(self, message: str, *, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimitRejected(ResilienceError):
    """No rate-limit token was available in time.

    Attributes:
        retry_after: Seconds until a token will be available.
    """

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ThrottleRejected(ResilienceError):
    """The adaptive throttler refused the call locally: the dependency has been refusing a share
    of calls, and this one fell in the share it cannot take.

    Attributes:
        rejection_rate: The probability the call was refused with.
    """

    def __init__(self, message: str, *, rejection_rate: float) -> None:
        super().__init__(message)
        self.rejection_rate = rejection_rate


class PacingRejected(ResilienceError):
    """The origin asked for a pause (or a pace) that this call could not wait out: its
    :class:`~httpx_resilience.Pacing` gate would let it through only past ``max_wait`` or the
    deadline.

    Attributes:
        retry_after: Seconds until the gate would let this call through.
    """

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConfigError(ValueError):
    """A configuration (profile, file or mapping) is invalid.

    The message lists every problem found, one per line, each naming where it is.

    Attributes:
        problems: One message per problem.
    """

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))
