"""One HTTP exchange run through a pipeline: what the transport and the client share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from ..context import Attempt, Context, ExecutionReport
from ..errors import ResilienceError
from ..pipeline import Pipeline
from ._errors import as_httpx_error
from .classify import HTTP_CLASSIFIER, can_replay


async def run_exchange(
    pipeline: Pipeline,
    request: httpx.Request,
    send: Callable[[], Awaitable[httpx.Response]],
    *,
    retry_non_idempotent: bool,
    profile: str | None = None,
) -> httpx.Response:
    """Send ``request`` through ``pipeline`` and attach the report to the response."""
    context = Context(
        operation_key=profile,
        request=request,
        classifier=HTTP_CLASSIFIER,
        replayable=can_replay(request, retry_non_idempotent=retry_non_idempotent),
    )
    report = context._report = ExecutionReport(profile)
    # What Pipeline.execute does, without its frame: this runs for every request.
    context._call = send
    context._listeners = pipeline._listeners
    try:
        response: httpx.Response = await pipeline._chain(context)
    except ResilienceError as exc:
        raise as_httpx_error(exc, request) from exc.__cause__
    except Exception as exc:
        if not report.attempts:
            report.attempts.append(Attempt(0, None, exc))
        raise
    if not report.attempts:
        # No retry or hedging policy counted tries: the exchange was the one try.
        report.attempts.append(Attempt(0, response))
    response.extensions["resilience"] = report
    return response
