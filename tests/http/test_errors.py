"""Rejections raised through the HTTP layer: what they are and that they survive pickling."""

from __future__ import annotations

import pickle

import httpx
import pytest

from httpx_resilience import (
    BrokenCircuitError,
    BulkheadRejected,
    IsolatedCircuitError,
    RateLimitRejected,
    ResilienceError,
    TimeoutRejected,
)
from httpx_resilience.http._errors import as_httpx_error

REQUEST = httpx.Request("GET", "http://127.0.0.1/orders?page=2")

REJECTIONS = [
    TimeoutRejected("slow", timeout=1.5),
    BrokenCircuitError("open", retry_after=2.5),
    IsolatedCircuitError("isolated"),
    BulkheadRejected("full"),
    RateLimitRejected("no token", retry_after=0.25),
]


def _same_rejection(copy: BaseException, original: BaseException) -> None:
    assert type(copy) is type(original)
    assert str(copy) == str(original)
    assert copy.args == original.args
    for name in ("timeout", "retry_after"):
        assert getattr(copy, name, "absent") == getattr(original, name, "absent")


@pytest.mark.parametrize("rejection", REJECTIONS, ids=lambda e: type(e).__name__)
def test_a_rejection_survives_a_pickle_round_trip(rejection: ResilienceError) -> None:
    _same_rejection(pickle.loads(pickle.dumps(rejection)), rejection)


@pytest.mark.parametrize("rejection", REJECTIONS, ids=lambda e: type(e).__name__)
def test_a_rejection_through_http_survives_a_pickle_round_trip(
    rejection: ResilienceError,
) -> None:
    # What a ResilientClient raises can cross a process boundary (a worker pool, a task queue).
    converted = as_httpx_error(rejection, REQUEST)
    copy = pickle.loads(pickle.dumps(converted))
    _same_rejection(copy, converted)
    assert isinstance(copy, httpx.TransportError)
    assert copy.request.method == "GET"
    assert copy.request.url == REQUEST.url


@pytest.mark.parametrize("rejection", REJECTIONS, ids=lambda e: type(e).__name__)
def test_a_rejection_through_http_is_both_kinds_of_error(rejection: ResilienceError) -> None:
    converted = as_httpx_error(rejection, REQUEST)
    assert isinstance(converted, type(rejection))
    assert isinstance(converted, httpx.TransportError)
    assert isinstance(converted, httpx.TimeoutException) == isinstance(rejection, TimeoutRejected)
    assert type(converted).__name__ == type(rejection).__name__  # what logs and telemetry show
    assert converted.request is REQUEST
    assert as_httpx_error(converted, REQUEST) is converted
    # Every class it derives from is a distinct, importable class: none listed twice under one
    # qualified name.
    names = [f"{cls.__module__}.{cls.__qualname__}" for cls in type(converted).__mro__]
    assert len(names) == len(set(names))


def test_an_isolated_circuit_through_http_is_a_broken_circuit_through_http() -> None:
    converted = as_httpx_error(IsolatedCircuitError("isolated"), REQUEST)
    broken = as_httpx_error(BrokenCircuitError("open", retry_after=1.0), REQUEST)
    assert isinstance(converted, type(broken))


def test_an_applications_own_rejection_keeps_its_class_through_http() -> None:
    class Shed(BulkheadRejected):
        pass

    converted = as_httpx_error(Shed("shed"), REQUEST)
    assert isinstance(converted, Shed)
    assert isinstance(converted, httpx.TransportError)
    assert type(as_httpx_error(Shed("again"), REQUEST)) is type(converted)
