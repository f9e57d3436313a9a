"""What counts as a transient HTTP failure, which requests may be sent twice, and Retry-After.

The default predicate of the HTTP layer, :data:`transient`, handles:

- transport errors (:class:`httpx.TransportError`: connection refused or reset, DNS failure,
  read/connect/write/pool timeouts, protocol errors from the server), except the ones that are
  the caller's own mistake (:class:`httpx.UnsupportedProtocol`, :class:`httpx.LocalProtocolError`)
  and will fail the same way every time;
- :class:`~httpx_resilience.TimeoutRejected` (an attempt timeout);
- responses with status 408, 429, 500, 502, 503 or 504, and an :class:`httpx.HTTPStatusError`
  carrying one (``raise_for_status()`` in a response hook).

Never other 4xx: a request the server refused will be refused again. Never another policy's
rejection either (:class:`~httpx_resilience.BrokenCircuitError`,
:class:`~httpx_resilience.BulkheadRejected`, :class:`~httpx_resilience.RateLimitRejected`), though
each is also an :class:`httpx.TransportError`: retrying one repeats the refusal, and a breaker
counting one would open on the caller's own load rather than the dependency's health.

A circuit breaker asks a narrower question, :data:`unhealthy`: the same outcomes but a 429 (a
response or an :class:`httpx.HTTPStatusError` carrying one). A 429 is backpressure: the
dependency is up and asks for less, which a retry (waiting out ``Retry-After``) and a throttle
answer; a breaker that opened on it refused everything while the dependency was serving. Give
the breaker ``handle=transient`` to count 429s again.
"""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import math
import time
from collections.abc import AsyncGenerator
from typing import Any, cast

import anyio
import httpx

from .._numbers import ascii_decimal
from ..errors import TimeoutRejected
from ..outcome import Classifier, Outcome, OutcomePredicate, _is_rejection

__all__ = [
    "HTTP_CLASSIFIER",
    "IDEMPOTENT_METHODS",
    "TRANSIENT_STATUS_CODES",
    "UNHEALTHY_STATUS_CODES",
    "HTTPClassifier",
    "can_replay",
    "is_idempotent",
    "parse_retry_after",
    "transient",
    "unhealthy",
]

#: Status codes that say "try again later".
TRANSIENT_STATUS_CODES = frozenset({408, 429, 500, 502, 503, 504})

#: Transient status codes that say the dependency is unwell, what a circuit breaker counts: all
#: but 429 (Too Many Requests), which says it is busy.
UNHEALTHY_STATUS_CODES = TRANSIENT_STATUS_CODES - {429}

#: Methods that may be repeated without changing the outcome (RFC 9110, 9.2.2).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})

_CALLERS_MISTAKES = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)

# How much of a failed response's body is read, and for how long, to return its connection to
# the pool; beyond either the connection is closed instead.
_DISCARD_MAX_BYTES = 64 * 1024
_DISCARD_MAX_SECONDS = 1.0


def _transient_exception(exc: BaseException) -> bool:
    # A rejection by another policy is also an httpx.TransportError once it has left a
    # ResilientClient (one client's pipeline called inside another's), but is never transient.
    if _is_rejection(exc):
        return False
    if isinstance(exc, httpx.HTTPStatusError):
        # raise_for_status() in a response hook (httpx's own recipe): read the response it
        # carries, as if it had been returned.
        return exc.response.status_code in TRANSIENT_STATUS_CODES
    if isinstance(exc, httpx.TransportError):
        return not isinstance(exc, _CALLERS_MISTAKES)
    return isinstance(exc, TimeoutRejected)


def _unhealthy_exception(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in UNHEALTHY_STATUS_CODES
    return _transient_exception(exc)


def _transient_result(result: Any) -> bool:
    return getattr(result, "status_code", None) in TRANSIENT_STATUS_CODES


def _is_transient(outcome: Outcome[Any]) -> bool:
    exc = outcome.exception
    return _transient_result(outcome.result) if exc is None else _transient_exception(exc)


#: The default ``handle=`` of policies in the HTTP layer.
transient = OutcomePredicate(_is_transient, "transient")


def _is_unhealthy(outcome: Outcome[Any]) -> bool:
    exc = outcome.exception
    if exc is None:
        return getattr(outcome.result, "status_code", None) in UNHEALTHY_STATUS_CODES
    return _unhealthy_exception(exc)


#: The default ``handle=`` of a circuit breaker in the HTTP layer: :data:`transient` but 429.
unhealthy = OutcomePredicate(_is_unhealthy, "unhealthy")


def is_idempotent(request: httpx.Request) -> bool:
    """Whether repeating ``request`` is safe: an idempotent method, or an ``Idempotency-Key``."""
    return request.method in IDEMPOTENT_METHODS or "idempotency-key" in request.headers


def can_replay(request: httpx.Request, *, retry_non_idempotent: bool = False) -> bool:
    """Whether ``request`` may be sent more than once.

    It must be idempotent (or ``retry_non_idempotent`` set), and its body must be sendable again:
    bytes, form data and JSON bodies are; a body from a generator or async iterator is not.
    """
    if not (retry_non_idempotent or is_idempotent(request)):
        return False
    return isinstance(request.stream, httpx.ByteStream)


def parse_retry_after(value: str, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value, or ``None`` when it is unusable.

    Accepts delay-seconds (``"120"``; a decimal fraction is tolerated) and an HTTP-date, read
    against the wall-clock time ``now`` (default :func:`time.time`). Garbage, negative numbers
    and dates in the past give ``None``: the caller falls back to its own backoff. Digits are
    ASCII only, as HTTP has them; a number of any length is read as what it says (``inf`` past
    a float's range), so a retry refuses it as too long instead of ignoring it.
    """
    seconds = ascii_decimal(value)
    if seconds is not None:
        return seconds
    if not value.isascii():  # the date parser takes any Unicode digit for a number
        return None
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # a date without a zone is taken as GMT, as HTTP dates always are
        when = when.replace(tzinfo=datetime.timezone.utc)
    delay = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(delay) or delay <= 0:
        return None
    return delay


class HTTPClassifier(Classifier):
    """The classifier of the HTTP layer: :data:`transient` (:data:`unhealthy` for a circuit
    breaker), ``Retry-After``, and releasing the connection of a response that will not be
    returned."""

    __slots__ = ()

    def failed_result(self, result: Any) -> bool:
        """A response with a transient status (408, 429, 500, 502, 503, 504)."""
        return getattr(result, "status_code", None) in TRANSIENT_STATUS_CODES

    def failed_exception(self, exc: BaseException) -> bool:
        """A transport error (not one of the caller's own making) or an attempt timeout."""
        return _transient_exception(exc)

    def unhealthy_result(self, result: Any) -> bool:
        """A response with a status that says the dependency is unwell (408, 500, 502, 503,
        504): not 429, which is backpressure, not ill health."""
        return getattr(result, "status_code", None) in UNHEALTHY_STATUS_CODES

    def unhealthy_exception(self, exc: BaseException) -> bool:
        """As :meth:`failed_exception`, but a raised 429 (``raise_for_status()``) is not."""
        return _unhealthy_exception(exc)

    def retry_after(self, outcome: Outcome[Any]) -> float | None:
        """The response's ``Retry-After``, in seconds, if it has a usable one."""
        response = outcome.result
        if isinstance(outcome.exception, httpx.HTTPStatusError):
            response = outcome.exception.response
        if not isinstance(response, httpx.Response):
            return super().retry_after(outcome)
        value = response.headers.get("retry-after")
        return None if value is None else parse_retry_after(value)

    def fresh(self, value: Any, context: Any) -> Any:
        """A response of its own for each caller, when a fallback value is a response."""
        if not isinstance(value, httpx.Response):
            return value
        # The body is copied decoded: the encoding and length the server sent no longer apply.
        headers = [
            (name, v)
            for name, v in value.headers.raw
            if name.lower() not in (b"content-encoding", b"content-length")
        ]
        return httpx.Response(
            value.status_code,
            headers=headers,
            content=value.content,
            request=getattr(context, "request", None),
        )

    async def discard(self, outcome: Outcome[Any]) -> None:
        """Read what is left of the body (a little, briefly) and close the response.

        Reading a short error body to its end lets the connection go back to the pool for the
        next try; a long or slow one is cut off and its connection closed instead.
        """
        response = outcome.result
        if not isinstance(response, httpx.Response) or response.is_closed:
            return
        try:
            if not response.is_stream_consumed:
                with anyio.move_on_after(_DISCARD_MAX_SECONDS):
                    received = 0
                    # aiter_raw() is an async generator; closing it releases the stream at once.
                    raw = cast("AsyncGenerator[bytes, None]", response.aiter_raw())
                    async with contextlib.aclosing(raw) as chunks:
                        async for chunk in chunks:
                            received += len(chunk)
                            if received > _DISCARD_MAX_BYTES:
                                break
        except httpx.HTTPError:
            pass  # the connection is broken anyway; closing below releases it
        finally:
            await response.aclose()


#: The classifier every request in the HTTP layer runs with.
HTTP_CLASSIFIER = HTTPClassifier()
