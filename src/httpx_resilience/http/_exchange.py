"""One HTTP exchange run through a pipeline: what the transport and the client share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from ..context import _UNKNOWN, Attempt, Context, ExecutionReport
from ..errors import ResilienceError
from ..pipeline import Pipeline
from ._errors import as_httpx_error
from .classify import HTTP_CLASSIFIER, IDEMPOTENT_METHODS, can_replay

_new = object.__new__


def start_exchange(
    pipeline: Pipeline,
    request: httpx.Request,
    send: Callable[[], Awaitable[httpx.Response]],
    retry_non_idempotent: bool,
    profile: str | None,
) -> Context:
    """The context of one exchange, ready for ``pipeline._chain``.

    The callers (the client's ``send``, the transport's ``handle_async_request``) await the
    chain themselves and end with :func:`finish_exchange` or :func:`exchange_failed`: one
    coroutine frame fewer per request than a shared coroutine would cost.
    """
    # This runs for every request, so the context and its report are built in place: on
    # CPython 3.11 a class call with keyword arguments costs several times as much.
    report: ExecutionReport = _new(ExecutionReport)
    report.attempts = []
    report.profile = profile
    report.retry_stopped = report.fallback = report.fallback_cause = report._events = None
    report.from_cache = False
    context: Context = _new(Context)
    context.operation_key = profile
    context.request = request
    context.attempt = 0
    context.deadline = None
    context.classifier = HTTP_CLASSIFIER
    context.replayable = (
        request.method in IDEMPOTENT_METHODS and type(request.stream) is httpx.ByteStream
    ) or can_replay(request, retry_non_idempotent=retry_non_idempotent)
    context._properties = None
    context._report = report
    context._task = _UNKNOWN
    context._call = send
    context._listeners = pipeline._listeners
    return context


def finish_exchange(context: Context, response: httpx.Response) -> httpx.Response:
    """Attach the report to the response that is returned."""
    report = context._report
    assert report is not None
    if not report.attempts:
        # No retry or hedging policy counted tries: the exchange was the one try.
        report.attempts.append(Attempt(0, response))
    response.extensions["resilience"] = report
    return response


def exchange_failed(context: Context, exc: Exception) -> Exception:
    """The exception to raise for a failed exchange: ``exc`` itself, or for a rejection the
    same rejection as an httpx error too."""
    report = context._report
    assert report is not None
    assert context.request is not None
    if isinstance(exc, ResilienceError):
        return as_httpx_error(exc, context.request)
    if not report.attempts:
        report.attempts.append(Attempt(0, None, exc))
    return exc
