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
import os
from collections.abc import Mapping

import httpx

from ..pipeline import Pipeline
from ..profiles import Profile, Registry
from . import _flavour
from ._exchange import Dispatch
from ._flavour import HTTPX
from ._pool import DEFAULT_LIMITS, queued
from ._profiles import registry_of

__all__ = ["ResilienceTransport"]


class ResilienceTransport(httpx.AsyncBaseTransport):
    """An :class:`httpx.AsyncBaseTransport` that runs every request through a pipeline.

    Args:
        pipeline: The pipeline to run each request through (default:
            :meth:`Pipeline.standard() <httpx_resilience.Pipeline.standard>`), or named profiles
            (a :class:`~httpx_resilience.Registry`, or the path of a TOML file) to route each
            request to, as :class:`~httpx_resilience.ResilientClient` does, or one
            :class:`~httpx_resilience.Profile` for every request.
        transport: The transport that sends requests (default: a new
            :class:`httpx.AsyncHTTPTransport`, whose requests beyond its 100 connections wait
            in a first-in-first-out queue rather than inside httpx's pool, see
            :class:`~httpx_resilience.ResilientClient`).
        routes: Routes tried before the registry's own, with profiles.
        retry_non_idempotent: Retry POST and PATCH requests even without an ``Idempotency-Key``
            header. Only for endpoints you know to be safe to repeat.

    Every response carries the :class:`~httpx_resilience.ExecutionReport` in
    ``response.extensions["resilience"]``.

    ``httpx_resilience.httpx2.ResilienceTransport`` is the same class for httpx2.
    """

    # The package this transport serves; httpx_resilience.httpx2 rebases the class on httpx2's
    # (see http/_flavour.py), so what differs is read from here, never from `httpx`.
    _flavour = HTTPX

    def __init__(
        self,
        pipeline: Pipeline | Registry | Profile | str | os.PathLike[str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        routes: Mapping[str, str] | None = None,
        retry_non_idempotent: bool = False,
    ) -> None:
        profiles = None
        if isinstance(pipeline, (Registry, Profile, str, os.PathLike)):
            pipeline, profiles = None, pipeline
        registry = registry_of("ResilienceTransport", pipeline, profiles)
        self._profiles = registry
        self._dispatch = Dispatch(
            "ResilienceTransport", pipeline, registry, routes, retry_non_idempotent
        )
        flavour = self._flavour
        if transport is None:
            # Requests beyond the pool's connections wait in a queue of ours (see _pool.py).
            transport = queued(flavour, flavour.AsyncHTTPTransport(), DEFAULT_LIMITS, False)
        elif isinstance(transport, _flavour.ASYNC_TRANSPORTS) and not isinstance(
            transport, flavour.AsyncBaseTransport
        ):
            # It would answer with the other package's responses, which the client refuses.
            raise TypeError(
                f"ResilienceTransport: transport must be a {flavour.name} transport, got "
                f"{transport!r} (a {_package(transport)} one)"
            )
        self._transport = transport

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline requests run through (with profiles: the default profile's)."""
        return self._dispatch.pipeline

    @property
    def profiles(self) -> Registry | None:
        """The profiles requests are routed to, if any."""
        return self._profiles

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through the pipeline and the wrapped transport."""
        if type(request) is not self._flavour.Request:
            self._check_request(request)
        send = functools.partial(self._transport.handle_async_request, request)
        return await self._dispatch.exchange(request, send)

    def _check_request(self, request: httpx.Request) -> None:
        # An httpx2 client given httpx's transport (or the reverse) would fail on the response
        # with a bare AssertionError: say which transport it needs instead.
        if isinstance(request, self._flavour.Request):
            return
        package = _package(request)
        layer = "httpx_resilience" if package == "httpx" else f"httpx_resilience.{package}"
        raise TypeError(
            f"ResilienceTransport: this is the {self._flavour.name} transport, given a "
            f"{package} request; a {package} client needs {layer}.ResilienceTransport"
        )

    async def aclose(self) -> None:
        """Close the wrapped transport, and the connections the pipelines hold."""
        try:
            await self._transport.aclose()
        finally:
            await self._dispatch.aclose()


def _package(obj: object) -> str:
    return type(obj).__module__.partition(".")[0]
