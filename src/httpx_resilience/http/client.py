"""ResilientClient: an :class:`httpx.AsyncClient` whose every request runs through a pipeline.

For a request that is not streamed, the pipeline covers the whole exchange, response body
included, so a connection reset or a read timeout in the middle of the body is a failure the
pipeline can retry. A streamed request (``client.stream(...)``, ``send(..., stream=True)``) is
covered up to the response headers, as with :class:`~httpx_resilience.ResilienceTransport`:
its body is read by the caller, after the pipeline has returned.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import httpx

from ..pipeline import Pipeline
from ._exchange import exchange_failed, finish_exchange, start_exchange

if TYPE_CHECKING:
    from types import TracebackType

    from httpx._client import UseClientDefault
    from httpx._types import AuthTypes

__all__ = ["ResilientClient"]


class ResilientClient(httpx.AsyncClient):
    """An :class:`httpx.AsyncClient` that runs every request through a pipeline.

    Args:
        pipeline: The pipeline (default: :meth:`Pipeline.standard()
            <httpx_resilience.Pipeline.standard>`, one per client).
        retry_non_idempotent: Retry POST and PATCH requests even without an ``Idempotency-Key``
            header. Only for endpoints you know to be safe to repeat.
        **httpx_kwargs: Everything :class:`httpx.AsyncClient` takes (``base_url``, ``timeout``,
            ``transport``, ``limits``, ``event_hooks``...).

    Every response carries the :class:`~httpx_resilience.ExecutionReport` in
    ``response.extensions["resilience"]``.
    """

    def __init__(
        self,
        *,
        pipeline: Pipeline | None = None,
        retry_non_idempotent: bool = False,
        **httpx_kwargs: Any,
    ) -> None:
        if pipeline is not None and not isinstance(pipeline, Pipeline):
            raise TypeError(f"ResilientClient: pipeline must be a Pipeline, got {pipeline!r}")
        super().__init__(**httpx_kwargs)
        self._pipeline = pipeline if pipeline is not None else Pipeline.standard()
        self._retry_non_idempotent = retry_non_idempotent

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline requests run through."""
        return self._pipeline

    async def aclose(self) -> None:
        """Close the client, and the connections its pipeline holds (see
        :meth:`Pipeline.aclose <httpx_resilience.Pipeline.aclose>`)."""
        try:
            await super().aclose()
        finally:
            await self._pipeline.aclose()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        # httpx's own __aexit__ closes the transports without calling aclose().
        try:
            await super().__aexit__(exc_type, exc_value, traceback)
        finally:
            await self._pipeline.aclose()

    async def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        auth: AuthTypes | UseClientDefault | None = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: bool | UseClientDefault = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        """Send ``request`` through the pipeline (see :meth:`httpx.AsyncClient.send`)."""
        # A partial, not a closure: each try then costs no frame of ours around httpx's send.
        if stream is False and auth is follow_redirects is httpx.USE_CLIENT_DEFAULT:
            exchange = functools.partial(_send, self, request)  # no keywords: cheaper to build
        else:
            exchange = functools.partial(
                _send, self, request, stream=stream, auth=auth, follow_redirects=follow_redirects
            )
        pipeline = self._pipeline
        context = start_exchange(pipeline, request, exchange, self._retry_non_idempotent, None)
        try:
            response: httpx.Response = await pipeline._chain(context)
        except Exception as exc:
            rejection = exchange_failed(context, exc)
            if rejection is exc:
                raise
            raise rejection from exc.__cause__
        return finish_exchange(context, response)


_send = httpx.AsyncClient.send
