"""One HTTP exchange run through a pipeline: what the transport and the client share.

:class:`Dispatch` picks the pipeline of each request: the one pipeline given, or the profile its
routing (a :class:`~httpx_resilience.Registry`, seen through the small ``Routing`` interface of
``_routing.py``) sends the request to.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from ..context import Context, _new_context, _new_report
from ..errors import (
    BrokenCircuitError,
    BulkheadRejected,
    RateLimitRejected,
    ResilienceError,
)
from ..outcome import Outcome
from ..pipeline import Pipeline
from ..priority import _checked
from ..telemetry import NO_TELEMETRY
from . import _flavour
from ._errors import as_httpx_error
from ._routing import Routing
from .classify import HTTP_CLASSIFIER, IDEMPOTENT_METHODS, can_replay

_monotonic = time.monotonic


class Dispatch:
    """The pipeline (or the profiles) of a client or transport, and how it picks one per
    request."""

    __slots__ = ("_pipeline", "_registry", "_retry_non_idempotent", "_routes")

    def __init__(
        self,
        owner: str,
        pipeline: Pipeline | None,
        profiles: Routing | None,
        routes: Mapping[str, str] | None,
        retry_non_idempotent: bool,
    ) -> None:
        # The client or transport has turned a path into a registry and refused a pipeline
        # given with profiles (http/_profiles.py): routing is all this needs of profiles.
        assert pipeline is None or profiles is None
        if pipeline is not None and not isinstance(pipeline, Pipeline):
            raise TypeError(f"{owner}: pipeline must be a Pipeline, got {pipeline!r}")
        if routes is not None and profiles is None:
            raise TypeError(f"{owner}: routes need profiles to route to")
        self._registry: Routing | None = profiles
        self._pipeline = (
            pipeline if pipeline is not None or profiles is not None else Pipeline.standard()
        )
        self._routes = tuple((routes or {}).items())
        if profiles is not None:
            for _pattern, name in self._routes:
                profiles.profile(name)  # an unknown name is an error now, not per request
        self._retry_non_idempotent = retry_non_idempotent

    @property
    def pipeline(self) -> Pipeline:
        """The one pipeline, or the default profile's."""
        if self._pipeline is not None:
            return self._pipeline
        assert self._registry is not None
        return self._registry.get("default")

    @property
    def registry(self) -> Routing | None:
        """The profiles, if requests are routed to them."""
        return self._registry

    def exchange(
        self, request: httpx.Request, send: Callable[[], Awaitable[httpx.Response]]
    ) -> Awaitable[httpx.Response]:
        """Send ``request`` (with ``send``) through its pipeline; attach the report."""
        registry = self._registry
        if registry is None:
            pipeline = self._pipeline
            assert pipeline is not None
            context = start_exchange(request, send, self._retry_non_idempotent, None)
        else:
            # An unknown profile named by the request is an error before anything is sent.
            profile = registry.route(request, self._routes)
            pipeline = registry.get(profile)
            retry = self._retry_non_idempotent or registry.retry_non_idempotent(profile)
            context = start_exchange(request, send, retry, profile)
        return pipeline.run(context, finish_exchange, exchange_failed)

    async def aclose(self) -> None:
        """Release what the pipelines hold."""
        if self._registry is not None:
            await self._registry.aclose()
        elif self._pipeline is not None:
            await self._pipeline.aclose()


def start_exchange(
    request: httpx.Request,
    send: Callable[[], Awaitable[httpx.Response]],
    retry_non_idempotent: bool,
    profile: str | None,
) -> Context:
    """The context of one exchange, ready for ``Pipeline.run``."""
    replayable = (
        request.method in IDEMPOTENT_METHODS and type(request.stream) in _flavour.BYTE_STREAMS
    ) or can_replay(request, retry_non_idempotent=retry_non_idempotent)
    context = _new_context(
        profile,
        request,
        0,
        None,
        HTTP_CLASSIFIER,
        replayable,
        None,
        _new_report(profile),
        send,
        NO_TELEMETRY,  # the pipeline's, once it runs
    )
    priority = request.extensions.get(PRIORITY_EXTENSION)
    if priority is not None:
        # A bad value is the caller's mistake: an error before anything is sent.
        context.priority = _checked(priority, f"extensions[{PRIORITY_EXTENSION!r}]")
    return context


#: The request extension that sets a request's :data:`~httpx_resilience.priority.Priority`.
PRIORITY_EXTENSION = "resilience.priority"


def finish_exchange(context: Context, response: httpx.Response, started: float) -> None:
    """Attach the report to the response that is returned (and make a fallback's answer one
    like any other, timed since ``started``)."""
    report = context._report
    assert report is not None
    # If no retry or hedging policy counted tries, the exchange was the one try.
    report._only(response, None)
    if report.fallback is not None:
        answered(response, _monotonic() - started)
    response.extensions["resilience"] = report


def answered(response: Any, elapsed: float) -> None:
    """Make a fallback's answer behave as a response fresh from the network: it has an
    ``elapsed`` (the time since the exchange began) and, when its body is in memory (a cached
    copy, a value, an alternate's answer), it can still be streamed (``aiter_raw()``) rather
    than raising ``StreamConsumed``."""
    if not isinstance(response, _flavour.RESPONSES):
        return
    response.elapsed = datetime.timedelta(seconds=elapsed)
    if isinstance(response.stream, _flavour.BYTE_STREAMS) and response.is_stream_consumed:
        # The content stays loaded; the raw stream can be read again from the start.
        response.is_stream_consumed = False
        response.is_closed = False


def exchange_failed(context: Context, exc: Exception) -> Exception:
    """The exception to raise for a failed exchange: ``exc`` itself, or for a rejection the
    same rejection as an httpx error too."""
    report = context._report
    assert report is not None
    assert context.request is not None
    if isinstance(exc, ResilienceError):
        return as_httpx_error(exc, context.request)
    report._only(None, exc)
    return exc


_NOT_SENT = (BrokenCircuitError, BulkheadRejected, RateLimitRejected)


def never_sent(outcome: Outcome[Any], context: Context) -> bool:
    """Whether no try of the request can have been sent: every one was refused first (an open
    circuit, a full bulkhead, a rate limit), so httpx's auth flow never ran on it either."""
    tries: list[Outcome[Any]] = [*context.report.attempts] or [outcome]
    return all(isinstance(t.exception, _NOT_SENT) for t in tries)
