"""Rejections leaving the HTTP layer are also httpx errors.

Inside a pipeline, policies raise the plain :class:`~httpx_resilience.ResilienceError` classes.
At the edge of the HTTP layer each one is re-raised as an instance of a subclass that also
derives from :class:`httpx.TransportError` (:class:`httpx.TimeoutException` for
:class:`~httpx_resilience.TimeoutRejected`), so both ``except BrokenCircuitError`` and
``except httpx.TransportError`` catch it, and ``exc.request`` works as httpx users expect.
"""

from __future__ import annotations

import httpx

from ..errors import ResilienceError, TimeoutRejected

_variants: dict[type[ResilienceError], type[ResilienceError]] = {}


def _http_variant(cls: type[ResilienceError]) -> type[ResilienceError]:
    variant = _variants.get(cls)
    if variant is not None:
        return variant
    base = httpx.TimeoutException if issubclass(cls, TimeoutRejected) else httpx.TransportError
    variant = type(cls.__name__, (cls, base), {"__module__": cls.__module__})
    variant.__qualname__ = cls.__qualname__
    _variants[cls] = variant
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
