"""ResilienceTransport: a pipeline around any httpx transport.

Use it with any :class:`httpx.AsyncClient`, or with an SDK that takes one::

    client = httpx.AsyncClient(transport=ResilienceTransport(Pipeline.standard()))

A transport only sees the exchange up to the response headers: the body is read later, by the
client, outside the pipeline. A connection reset or read timeout in the middle of a body
therefore reaches the caller as an error, not a retry. :class:`~httpx_resilience.ResilientClient`
covers the whole exchange, body included, for requests that are not streamed.
"""

from __future__ import annotations

import functools

import httpx

from ..pipeline import Pipeline
from ._exchange import exchange_failed, finish_exchange, start_exchange

__all__ = ["ResilienceTransport"]


class ResilienceTransport(httpx.AsyncBaseTransport):
    """An :class:`httpx.AsyncBaseTransport` that runs every request through a pipeline.

    Args:
        pipeline: The pipeline to run each request through (default:
            :meth:`Pipeline.standard() <httpx_resilience.Pipeline.standard>`).
        transport: The transport that sends requests (default: a new
            :class:`httpx.AsyncHTTPTransport`).
        retry_non_idempotent: Retry POST and PATCH requests even without an ``Idempotency-Key``
            header. Only for endpoints you know to be safe to repeat.

    Every response carries the :class:`~httpx_resilience.ExecutionReport` in
    ``response.extensions["resilience"]``.
    """

    def __init__(
        self,
        pipeline: Pipeline | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        retry_non_idempotent: bool = False,
    ) -> None:
        if pipeline is not None and not isinstance(pipeline, Pipeline):
            raise TypeError(f"ResilienceTransport: pipeline must be a Pipeline, got {pipeline!r}")
        self._pipeline = pipeline if pipeline is not None else Pipeline.standard()
        self._transport = transport if transport is not None else httpx.AsyncHTTPTransport()
        self._retry_non_idempotent = retry_non_idempotent

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline requests run through."""
        return self._pipeline

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through the pipeline and the wrapped transport."""
        pipeline = self._pipeline
        context = start_exchange(
            pipeline,
            request,
            functools.partial(self._transport.handle_async_request, request),
            self._retry_non_idempotent,
            None,
        )
        try:
            response: httpx.Response = await pipeline._chain(context)
        except Exception as exc:
            rejection = exchange_failed(context, exc)
            if rejection is exc:
                raise
            raise rejection from exc.__cause__
        return finish_exchange(context, response)

    async def aclose(self) -> None:
        """Close the wrapped transport, and the connections the pipeline holds."""
        try:
            await self._transport.aclose()
        finally:
            await self._pipeline.aclose()
