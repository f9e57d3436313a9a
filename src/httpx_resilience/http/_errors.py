"""Rejections leaving the HTTP layer are also httpx errors.

Inside a pipeline, policies raise the plain :class:`~httpx_resilience.ResilienceError` classes.
At the edge of the HTTP layer each one is re-raised as an instance of its subclass here, which
also derives from :class:`httpx.TransportError` (:class:`httpx.TimeoutException` for
:class:`~httpx_resilience.TimeoutRejected`), so both ``except BrokenCircuitError`` and
``except httpx.TransportError`` catch it, and ``exc.request`` works as httpx users expect.

Each subclass keeps the name of the class it extends, so logs and telemetry name the rejection
the same whichever side of the HTTP layer it was raised on.

A rejection is raised as an error of the flavour of the request (``httpx`` or ``httpx2``, see
``_flavour.py``): the classes below are httpx's; httpx2's are declared the same way in
``httpx_resilience.httpx2``, which registers them with :func:`declare`.
"""

from __future__ import annotations

from typing import Any

import httpx

from .. import errors
from ..errors import ResilienceError
from ._flavour import HTTPX, Flavour
from ._flavour import of as _flavour_of


class TimeoutRejected(errors.TimeoutRejected, httpx.TimeoutException):
    """A :class:`~httpx_resilience.TimeoutRejected` raised through the HTTP layer."""


class BrokenCircuitError(errors.BrokenCircuitError, httpx.TransportError):
    """A :class:`~httpx_resilience.BrokenCircuitError` raised through the HTTP layer."""


class IsolatedCircuitError(errors.IsolatedCircuitError, BrokenCircuitError):
    """An :class:`~httpx_resilience.IsolatedCircuitError` raised through the HTTP layer."""


class BulkheadRejected(errors.BulkheadRejected, httpx.TransportError):
    """A :class:`~httpx_resilience.BulkheadRejected` raised through the HTTP layer."""


class RateLimitRejected(errors.RateLimitRejected, httpx.TransportError):
    """A :class:`~httpx_resilience.RateLimitRejected` raised through the HTTP layer."""


def declare(flavour: Flavour, variants: dict[type[ResilienceError], type[Any]]) -> None:
    """Register ``variants`` (each library rejection class -> its subclass that is also an
    error of ``flavour``) as the classes rejections are raised as through ``flavour``."""
    for cls, variant in variants.items():
        if not (issubclass(variant, cls) and issubclass(variant, flavour.TransportError)):
            raise TypeError(f"{variant!r} must derive from {cls!r} and {flavour.name}'s errors")
    flavour.rejections.update(variants)


declare(
    HTTPX,
    {
        errors.TimeoutRejected: TimeoutRejected,
        errors.BrokenCircuitError: BrokenCircuitError,
        errors.IsolatedCircuitError: IsolatedCircuitError,
        errors.BulkheadRejected: BulkheadRejected,
        errors.RateLimitRejected: RateLimitRejected,
    },
)


def _http_variant(cls: type[ResilienceError], flavour: Flavour) -> type[ResilienceError]:
    variant = flavour.rejections.get(cls)
    if variant is not None:
        return variant  # declare() checked it
    # A rejection class of the application's own (a subclass of one of ours, raised by its own
    # policy): built once per flavour, as the library's used to be. It keeps the application's
    # class, so its `except` clauses still match.
    base = (
        flavour.TimeoutException
        if issubclass(cls, errors.TimeoutRejected)
        else flavour.TransportError
    )
    variant = type(cls.__name__, (cls, base), {"__module__": cls.__module__})
    variant.__qualname__ = cls.__qualname__
    flavour.rejections[cls] = variant
    return variant


def as_httpx_error(exc: ResilienceError, request: httpx.Request) -> ResilienceError:
    """The same rejection as an instance that is also a ``TransportError`` of the request's
    flavour (:class:`httpx.TransportError`, or ``httpx2.TransportError``)."""
    flavour = _flavour_of(request)
    if isinstance(exc, flavour.TransportError):
        return exc
    variant = _http_variant(type(exc), flavour)
    converted = variant.__new__(variant)
    converted.__dict__.update(exc.__dict__)
    converted.args = exc.args
    assert isinstance(converted, flavour.TransportError)
    converted.request = request
    converted.__traceback__ = exc.__traceback__
    converted.__cause__ = exc.__cause__
    # The original is this exception under another class; showing both would say it twice.
    converted.__suppress_context__ = True
    return converted
