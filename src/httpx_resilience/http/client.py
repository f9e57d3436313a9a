"""ResilientClient: an :class:`httpx.AsyncClient` whose every request runs through a pipeline.

For a request that is not streamed, the pipeline covers the whole exchange, response body
included, so a connection reset or a read timeout in the middle of the body is a failure the
pipeline can retry. A streamed request (``client.stream(...)``, ``send(..., stream=True)``) is
covered up to the response headers, as with :class:`~httpx_resilience.ResilienceTransport`:
its body is read by the caller, after the pipeline has returned.

Response hooks run inside the pipeline, on each try, so that ``raise_for_status()`` in a hook
(httpx's own recipe) is a failure the pipeline sees: its :class:`httpx.HTTPStatusError` counts
as the status it carries. An answer from a fallback goes through the response hooks too.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

import httpx

from ..pipeline import Pipeline
from ..profiles import Profile, Registry
from ._exchange import Dispatch
from ._flavour import HTTPX
from ._identity import REQUEST_AUTH
from ._pool import DEFAULT_LIMITS, queued
from ._profiles import registry_of

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable
    from types import TracebackType

    from httpx._client import EventHook, UseClientDefault
    from httpx._types import (
        AuthTypes,
        CertTypes,
        CookieTypes,
        HeaderTypes,
        ProxyTypes,
        QueryParamTypes,
        TimeoutTypes,
    )
    from typing_extensions import TypedDict, Unpack

    class AsyncClientArguments(TypedDict, total=False):
        """The keyword arguments of :class:`httpx.AsyncClient`, each with its type, so that
        a type checker flags a misspelt or mistyped one given to ``ResilientClient``."""

        auth: AuthTypes | None
        params: QueryParamTypes | None
        headers: HeaderTypes | None
        cookies: CookieTypes | None
        verify: ssl.SSLContext | str | bool
        cert: CertTypes | None
        http1: bool
        http2: bool
        proxy: ProxyTypes | None
        mounts: Mapping[str, httpx.AsyncBaseTransport | None] | None
        timeout: TimeoutTypes
        follow_redirects: bool
        limits: httpx.Limits
        max_redirects: int
        event_hooks: Mapping[str, list[EventHook]] | None
        base_url: httpx.URL | str
        transport: httpx.AsyncBaseTransport | None
        trust_env: bool
        default_encoding: str | Callable[[bytes], str]


__all__ = ["ResilientClient"]


class ResilientClient(httpx.AsyncClient):
    """An :class:`httpx.AsyncClient` that runs every request through a pipeline.

    Args:
        pipeline: The pipeline (default: :meth:`Pipeline.standard()
            <httpx_resilience.Pipeline.standard>`, one per client).
        profiles: Named profiles instead of one pipeline: a
            :class:`~httpx_resilience.Registry`, or the path of a TOML file to load one from.
            Each request runs through the pipeline of its profile: the one its
            ``extensions={"resilience.profile": name}`` names, else the first matching route,
            else ``"default"``. One :class:`~httpx_resilience.Profile` serves every request
            (``Profile.model_api()`` for the client of an LLM SDK).
        routes: Routes tried before the registry's own (``{"api.payments.example":
            "payments", "*.internal.example": "internal", "https://search.example/v2/":
            "search"}``).
        retry_non_idempotent: Retry POST and PATCH requests even without an ``Idempotency-Key``
            header. Only for endpoints you know to be safe to repeat.
        **httpx_kwargs: Everything :class:`httpx.AsyncClient` takes (``base_url``, ``timeout``,
            ``transport``, ``limits``, ``event_hooks``...), each type-checked as httpx's own.

    Every response carries the :class:`~httpx_resilience.ExecutionReport` in
    ``response.extensions["resilience"]``.

    With httpx (not httpx2) over HTTP/1.1 and the connection pool it builds itself (no
    ``transport=``), requests beyond the pool's ``limits.max_connections`` wait in a
    first-in-first-out queue of this client rather than inside httpx's pool, whose handling of
    a long wait list costs O(waiters x connections) per request (encode/httpx#3215); the wait
    still honours the pool timeout, with :class:`httpx.PoolTimeout`.

    ``httpx_resilience.httpx2.ResilientClient`` is the same class for httpx2.
    """

    # The package this client serves; httpx_resilience.httpx2 rebases the class on httpx2's
    # (see http/_flavour.py), so what differs is read from here, never from `httpx`, and the
    # base class is called by name rather than through super().
    _flavour = HTTPX

    def __init__(
        self,
        *,
        pipeline: Pipeline | None = None,
        profiles: Registry | Profile | str | os.PathLike[str] | None = None,
        routes: Mapping[str, str] | None = None,
        retry_non_idempotent: bool = False,
        **httpx_kwargs: Unpack[AsyncClientArguments],
    ) -> None:
        registry = registry_of("ResilientClient", pipeline, profiles)
        self._profiles = registry
        self._dispatch = Dispatch(
            "ResilientClient", pipeline, registry, routes, retry_non_idempotent
        )
        self._flavour.AsyncClient.__init__(self, **httpx_kwargs)
        if httpx_kwargs.get("transport") is None:
            # The pool httpx built from `limits`: requests beyond it wait in a queue of ours.
            self._transport = queued(
                self._flavour,
                self._transport,
                httpx_kwargs.get("limits", DEFAULT_LIMITS),
                httpx_kwargs.get("http2", False),
            )

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline requests run through (with profiles: the default profile's)."""
        return self._dispatch.pipeline

    @property
    def profiles(self) -> Registry | None:
        """The profiles requests are routed to, if any."""
        return self._profiles

    async def aclose(self) -> None:
        """Close the client, and the connections its pipelines hold (see
        :meth:`Pipeline.aclose <httpx_resilience.Pipeline.aclose>`)."""
        try:
            await self._flavour.AsyncClient.aclose(self)
        finally:
            await self._dispatch.aclose()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        # httpx's own __aexit__ closes the transports without calling aclose().
        try:
            await self._flavour.AsyncClient.__aexit__(self, exc_type, exc_value, traceback)
        finally:
            await self._dispatch.aclose()

    async def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        auth: AuthTypes | UseClientDefault | None = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: bool | UseClientDefault = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        """Send ``request`` through the pipeline (see :meth:`httpx.AsyncClient.send`)."""
        flavour = self._flavour
        default = flavour.USE_CLIENT_DEFAULT
        if auth is not default or self._auth is not None:
            # httpx adds the credentials inside send(), so a request refused before it is sent
            # never carries them: a response cache learns them here (see _identity.as_sent).
            resolved = self._build_request_auth(request, auth)
            if type(resolved) is not flavour.Auth:  # not the no-op "no auth"
                REQUEST_AUTH[request] = resolved
        # A partial, not a closure: each try then costs no frame of ours around httpx's send.
        send = flavour.AsyncClient.send
        if stream is False and auth is follow_redirects is default:
            exchange = functools.partial(send, self, request)  # no keywords: cheaper to build
        else:
            exchange = functools.partial(
                send, self, request, stream=stream, auth=auth, follow_redirects=follow_redirects
            )
        response = await self._dispatch.exchange(request, exchange)
        if response.extensions["resilience"].fallback is not None:
            await self._answered(response, stream=stream)
        return response

    async def _answered(self, response: httpx.Response, *, stream: bool) -> None:
        """What httpx's send does for a response it returns, for a fallback's answer, which
        did not come through it: the response hooks (the failed try's ran inside the
        pipeline), then, unless streamed, the body read and the response closed."""
        try:
            for hook in self.event_hooks["response"]:
                await hook(response)
            if not stream:
                await response.aread()
                await response.aclose()
        except BaseException:
            await response.aclose()
            raise
