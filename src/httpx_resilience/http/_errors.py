"""Rejections leaving the HTTP layer are also httpx errors.

Inside a pipeline, policies raise the plain :class:`~httpx_resilience.ResilienceError` classes.
At the edge of the HTTP layer each one is re-raised as an instance of its subclass here, which
also derives from :class:`httpx.TransportError` (:class:`httpx.TimeoutException` for
:class:`~httpx_resilience.TimeoutRejected`), so both ``except BrokenCircuitError`` and
``except httpx.TransportError`` catch it, and ``exc.request`` works as httpx users expect.

Each subclass keeps the name of the class it extends, so logs and telemetry name the rejection
the same whichever side of the HTTP layer it was raised on.
"""

from __future__ import annotations

import httpx

from .. import errors
from ..errors import ResilienceError


class TimeoutRejected(errors.TimeoutRejected, httpx.TimeoutException):
    """A :class:`~httpx_resilience.TimeoutRejected` raised through the HTTP layer."""


class BrokenCircuitError(errors.BrokenCircuitError, httpx.TransportError):
    """A :class:`~httpx_resilience.BrokenCircuitError` raised through the HTTP layer."""


class IsolatedCircuitError(errors.IsolatedCircuitError, BrokenCircuitError):
    """An :class:`~httpx_resilience.IsolatedCircuitError` raised through the HTTP layer."""


class BulkheadRejected(errors.BulkheadRejected, httpx.TransportError):
    """A :class:`~httpx_resilience.BulkheadRejected` raised through the HTTP layer."""


class ConcurrencyLimitRejected(errors.ConcurrencyLimitRejected, httpx.TransportError):
    """A :class:`~httpx_resilience.ConcurrencyLimitRejected` raised through the HTTP layer."""


class RateLimitRejected(errors.RateLimitRejected, httpx.TransportError):
    """A :class:`~httpx_resilience.RateLimitRejected` raised through the HTTP layer."""


class ThrottleRejected(errors.ThrottleRejected, httpx.TransportError):
    """A :class:`~httpx_resilience.ThrottleRejected` raised through the HTTP layer."""


class PacingRejected(errors.PacingRejected, httpx.TransportError):
    """A :class:`~httpx_resilience.PacingRejected` raised through the HTTP layer."""


_VARIANTS: dict[type[ResilienceError], type[ResilienceError]] = {
    errors.TimeoutRejected: TimeoutRejected,
    errors.BrokenCircuitError: BrokenCircuitError,
    errors.IsolatedCircuitError: IsolatedCircuitError,
    errors.BulkheadRejected: BulkheadRejected,
    errors.ConcurrencyLimitRejected: ConcurrencyLimitRejected,
    errors.RateLimitRejected: RateLimitRejected,
    errors.ThrottleRejected: ThrottleRejected,
    errors.PacingRejected: PacingRejected,
}


def _http_variant(cls: type[ResilienceError]) -> type[ResilienceError]:
    variant = _VARIANTS.get(cls)
    if variant is not None:
        return variant
    # A rejection class of the application's own (a subclass of one of ours, raised by its own
    # policy): built once, as the library's used to be. It keeps the application's class, so
    # its `except` clauses still match.
    base = (
        httpx.TimeoutException if issubclass(cls, errors.TimeoutRejected) else httpx.TransportError
    )
    variant = type(cls.__name__, (cls, base), {"__module__": cls.__module__})
    variant.__qualname__ = cls.__qualname__
    _VARIANTS[cls] = variant
    return variant


def as_httpx_error(exc: ResilienceError, request: httpx.Request) -> ResilienceError:
    """The same rejection as an instance that is also an :class:`httpx.TransportError`."""
    if isinstance(exc, httpx.TransportError):
        return exc
    variant = _http_variant(type(exc))
    converted = variant.__new__(variant)
    converted.__dict__.update(exc.__dict__)
    converted.args = exc.args
    assert isinstance(converted, httpx.TransportError)
    converted.request = request
    converted.__traceback__ = exc.__traceback__
    converted.__cause__ = exc.__cause__
    # The original is this exception under another class; showing both would say it twice.
    converted.__suppress_context__ = True
    return converted
