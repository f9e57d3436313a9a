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

:func:`retry_statuses` builds a retry's ``handle=`` from another set of statuses (a model
API's: 408, 409, 429, any 5xx) and obeys the ``x-should-retry`` header such APIs send.

Everything here recognises the responses and errors of httpx2 as well as httpx's, whenever
the application has imported httpx2.
"""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import math
import time
from collections.abc import AsyncGenerator, Iterable
from typing import Any, cast

import anyio
import httpx

from .._numbers import ascii_decimal, ascii_int
from ..errors import TimeoutRejected
from ..outcome import Classifier, Outcome, OutcomePredicate, _is_rejection
from ..telemetry import logger, safe_url
from . import _flavour

__all__ = [
    "HTTP_CLASSIFIER",
    "IDEMPOTENT_METHODS",
    "SDK_RETRY_COUNT_HEADER",
    "TRANSIENT_STATUS_CODES",
    "UNHEALTHY_STATUS_CODES",
    "HTTPClassifier",
    "can_replay",
    "is_idempotent",
    "parse_rate_limit",
    "parse_retry_after",
    "retry_statuses",
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

# How much of a failed response's body is read, and for how long, to return its connection to
# the pool; beyond either the connection is closed instead.
_DISCARD_MAX_BYTES = 64 * 1024
_DISCARD_MAX_SECONDS = 1.0


def _transient_exception(exc: BaseException) -> bool:
    # A rejection by another policy is also an httpx.TransportError once it has left a
    # ResilientClient (one client's pipeline called inside another's), but is never transient.
    if _is_rejection(exc):
        return False
    _flavour.refresh()
    if isinstance(exc, _flavour.HTTP_STATUS_ERRORS):
        # raise_for_status() in a response hook (httpx's own recipe): read the response it
        # carries, as if it had been returned.
        return exc.response.status_code in TRANSIENT_STATUS_CODES
    if isinstance(exc, _flavour.TRANSPORT_ERRORS):
        return not isinstance(exc, _flavour.CALLERS_MISTAKES)
    return isinstance(exc, TimeoutRejected)


def _unhealthy_exception(exc: BaseException) -> bool:
    _flavour.refresh()
    if isinstance(exc, _flavour.HTTP_STATUS_ERRORS):
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


def _status_codes(statuses: Iterable[int | str], owner: str) -> frozenset[int]:
    """``statuses`` (codes, and classes such as ``"5xx"``) as the set of codes they name;
    ``ValueError`` naming ``owner`` and the value for anything else."""
    codes: set[int] = set()
    for status in statuses:
        if isinstance(status, int) and not isinstance(status, bool) and 100 <= status <= 599:
            codes.add(status)
        elif isinstance(status, str) and status in _STATUS_CLASSES:
            first = int(status[0]) * 100
            codes.update(range(first, first + 100))
        else:
            raise ValueError(
                f"{owner}: statuses must be status codes from 100 to 599 or classes "
                f"'1xx' to '5xx', got {status!r}"
            )
    return frozenset(codes)


_STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


def retry_statuses(*statuses: int | str) -> OutcomePredicate:
    """A retry's ``handle=`` for responses with one of ``statuses``, as a model API's SDK
    retries them: ``retry_statuses(408, 409, 429, "5xx")``.

    ``statuses`` are status codes (100 to 599) and classes (``"5xx"`` is every code from 500
    to 599). The response header ``x-should-retry`` (sent by OpenAI, Anthropic and other APIs
    whose SDKs read it) overrides them on an error response: ``false`` is never retried,
    ``true`` always is. An :class:`httpx.HTTPStatusError` counts as the response it carries;
    other exceptions are judged as :data:`transient` judges them (transport errors, attempt
    timeouts).
    """
    codes = _status_codes(statuses, "retry_statuses")
    text = f"retry_statuses({', '.join(repr(s) for s in statuses)})"

    def handle(outcome: Outcome[Any]) -> bool:
        exc = outcome.exception
        response: Any
        if exc is None:
            response = outcome.result
        elif isinstance(exc, _flavour.HTTP_STATUS_ERRORS):
            response = exc.response
        else:
            return _transient_exception(exc)
        status = getattr(response, "status_code", None)
        if status is None:
            return False
        if status >= 400:
            # A non-standard header the server sets to overrule the client's own judgement.
            told = response.headers.get("x-should-retry")
            if told is not None:
                told = told.strip().lower()
                if told == "false":
                    return False
                if told == "true":
                    return True
        return status in codes

    return OutcomePredicate(handle, text)


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
    return isinstance(request.stream, _flavour.BYTE_STREAMS)


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


def _retry_after_ms(value: str) -> float | None:
    # retry-after-ms (a non-standard header some APIs send next to Retry-After): milliseconds.
    ms = ascii_decimal(value)
    return None if ms is None or ms <= 0 else ms / 1000


def response_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait that a response's headers ask for: ``retry-after-ms`` (milliseconds,
    the more precise) when usable, else ``Retry-After`` (see :func:`parse_retry_after`)."""
    value = headers.get("retry-after-ms")
    if value is not None:
        seconds = _retry_after_ms(value)
        if seconds is not None:
            return seconds
    value = headers.get("retry-after")
    return None if value is None else parse_retry_after(value)


# Bounds on a quota taken seriously: beyond them a header is garbage (or a joke), ignored.
_MAX_QUOTA = 10**9
_MAX_RESET = 86_400.0  # a day
# An X-RateLimit-Reset at least this large is a Unix time (seconds; milliseconds from the
# second bound), not a delay: no window is 30 years long.
_EPOCH_SECONDS = 10**9
_EPOCH_MILLISECONDS = 10**12


def _reset_seconds(value: str, *, epoch: bool, now: float | None) -> float | None:
    seconds = ascii_decimal(value)
    if seconds is None:
        return None
    if epoch and seconds >= _EPOCH_SECONDS:
        if seconds >= _EPOCH_MILLISECONDS:
            seconds /= 1000
        seconds -= time.time() if now is None else now
    if not 0 <= seconds <= _MAX_RESET:
        return None
    return seconds


def _quota(
    remaining: str | None, reset: str | None, *, epoch: bool, now: float | None
) -> tuple[float, float] | None:
    if remaining is None or reset is None:
        return None
    left = ascii_int(remaining)
    seconds = _reset_seconds(reset, epoch=epoch, now=now)
    if left is None or left > _MAX_QUOTA or seconds is None:
        return None
    return (float(left), seconds)


def _structured_quota(value: str) -> tuple[float, float] | None:
    """The tightest quota of a ``RateLimit`` field: the draft's list of quota items
    (``"default";r=50;t=30``, several comma-separated) or its older dictionary form
    (``limit=100, remaining=50, reset=30``)."""
    tightest: tuple[float, float] | None = None
    older: dict[str, str] = {}
    for member in value.split(","):
        parameters = member.split(";")
        if len(parameters) == 1 and "=" in member:  # the older dictionary form
            name, _, item = member.partition("=")
            older[name.strip(" \t").lower()] = item
            continue
        fields: dict[str, str] = {}
        for parameter in parameters[1:]:
            name, _, item = parameter.partition("=")
            fields[name.strip(" \t").lower()] = item
        quota = _quota(fields.get("r"), fields.get("t", "0"), epoch=False, now=None)
        if quota is not None and (tightest is None or _tighter(quota, tightest)):
            tightest = quota
    if tightest is None and older:
        tightest = _quota(older.get("remaining"), older.get("reset"), epoch=False, now=None)
    return tightest


def _tighter(a: tuple[float, float], b: tuple[float, float]) -> bool:
    # The quota that allows the fewest calls per second until it is renewed.
    return a[0] * b[1] < b[0] * a[1]


def parse_rate_limit(
    headers: httpx.Headers | dict[str, str], *, now: float | None = None
) -> tuple[float, float] | None:
    """The quota that rate-limit headers announce: ``(calls left, seconds until renewed)``,
    or ``None`` when there is none or it is unusable.

    Read, first found wins: the IETF draft's ``RateLimit`` field (``"default";r=50;t=30``, the
    tightest of its items; or the older ``limit=100, remaining=50, reset=30``), the older
    drafts' ``RateLimit-Remaining`` / ``RateLimit-Reset`` (seconds), and the common
    ``X-RateLimit-Remaining`` / ``X-RateLimit-Reset`` (seconds, or a Unix time, told apart by
    size; ``now`` is the wall-clock time, default :func:`time.time`). Numbers are ASCII digits
    only; garbage, a negative number, more than 10**9 calls or more than a day is ignored.
    """
    if isinstance(headers, dict):  # else httpx's Headers or httpx2's
        headers = httpx.Headers(headers)
    value = headers.get("ratelimit")
    if value is not None:
        quota = _structured_quota(value)
        if quota is not None:
            return quota
    quota = _quota(
        headers.get("ratelimit-remaining"), headers.get("ratelimit-reset"), epoch=False, now=now
    )
    if quota is not None:
        return quota
    return _quota(
        headers.get("x-ratelimit-remaining"), headers.get("x-ratelimit-reset"), epoch=True, now=now
    )


#: The header in which the OpenAI and Anthropic SDKs (and others Stainless generates) count
#: their own retries of a call: 0 on the first request, 1 on their first retry...
SDK_RETRY_COUNT_HEADER = "x-stainless-retry-count"

_warned_of_sdk_retries = False


def _request_of(outcome: Outcome[Any]) -> Any:
    """The request a try's response or transport error belongs to, if it says."""
    carrier = outcome.result if outcome.exception is None else outcome.exception
    try:
        return getattr(carrier, "request", None)
    except RuntimeError:  # an httpx error made without its request
        return None


def _warn_of_sdk_retries(outcome: Outcome[Any]) -> None:
    """Log a warning, once per process, when a failed try the pipeline will not return (a
    retry or a hedge follows it, or a fallback answers) belongs to a request its SDK has
    already retried: both layers retry, and their tries multiply (3 of the SDK's x 3 of the
    pipeline's = 9 requests per call)."""
    global _warned_of_sdk_retries
    request = _request_of(outcome)
    headers = getattr(request, "headers", None)
    value = None if headers is None else headers.get(SDK_RETRY_COUNT_HEADER)
    count = None if value is None else ascii_int(value)
    if not count:
        return
    _warned_of_sdk_retries = True
    logger.warning(
        "A %s request to %s carries %s: %s, so its SDK retries it too, on top of this "
        "pipeline: each layer's tries multiply the other's. Turn the SDK's own retries off "
        "(max_retries=0 for OpenAI's and Anthropic's clients) and let the pipeline retry. "
        "(Logged once.)",
        request.method,
        # The origin only: a path or query may hold a secret, and no redaction is known here.
        safe_url(request.url, redact_path=_no_path),
        SDK_RETRY_COUNT_HEADER,
        count,
    )


def _no_path(path: str) -> str:
    return ""


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
        """The response's ``retry-after-ms`` or ``Retry-After``, in seconds, if it has a
        usable one (``retry-after-ms`` first, as the OpenAI and Anthropic SDKs read them)."""
        response = outcome.result
        _flavour.refresh()
        if isinstance(outcome.exception, _flavour.HTTP_STATUS_ERRORS):
            response = outcome.exception.response
        if not isinstance(response, _flavour.RESPONSES):
            return super().retry_after(outcome)
        return response_retry_after(response.headers)

    def quota(self, result: Any) -> tuple[float, float] | None:
        """The quota a response's rate-limit headers announce (see :func:`parse_rate_limit`)."""
        if not isinstance(result, _flavour.RESPONSES):
            return None
        headers = result.headers
        # One pass over the names, without decoding: most responses carry no rate-limit header.
        for name, _ in headers.raw:
            if b"ratelimit" in name.lower():
                return parse_rate_limit(headers)
        return None

    def fresh(self, value: Any, context: Any) -> Any:
        """A response of its own for each caller, when a fallback value is a response."""
        _flavour.refresh()
        if not isinstance(value, _flavour.RESPONSES):
            return value
        # The body is copied decoded: the encoding and length the server sent no longer apply.
        headers = [
            (name, v)
            for name, v in value.headers.raw
            if name.lower() not in (b"content-encoding", b"content-length")
        ]
        return type(value)(
            value.status_code,
            headers=headers,
            content=value.content,
            request=getattr(context, "request", None),
        )

    async def discard(self, outcome: Outcome[Any]) -> None:
        """Read what is left of the body (a little, briefly) and close the response.

        Reading a short error body to its end lets the connection go back to the pool for the
        next try; a long or slow one is cut off and its connection closed instead. A request
        that its SDK has already retried (``x-stainless-retry-count`` over 0) is logged, once:
        the SDK's retries should be off.
        """
        if not _warned_of_sdk_retries:
            # Only here, on the way to another try: the happy path pays nothing for it.
            _warn_of_sdk_retries(outcome)
        response = outcome.result
        _flavour.refresh()
        if not isinstance(response, _flavour.RESPONSES) or response.is_closed:
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
        except _flavour.HTTP_ERRORS:
            pass  # the connection is broken anyway; closing below releases it
        finally:
            await response.aclose()


#: The classifier every request in the HTTP layer runs with.
HTTP_CLASSIFIER = HTTPClassifier()
