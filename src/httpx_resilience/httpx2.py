"""The HTTP layer for httpx2: ``ResilientClient`` and ``ResilienceTransport`` on httpx2's classes.

`httpx2 <https://pypi.org/project/httpx2/>`_ is Pydantic's continuation of httpx (same API,
``import httpx2``; Python >= 3.11; install it with the ``httpx2`` extra,
``pip install 'httpx-resilience[httpx2]'``). Its classes are not httpx's: an
``httpx2.AsyncClient`` needs an httpx2 transport, and ``except httpx2.TransportError`` does
not catch an ``httpx.TransportError``. So this module has the same classes as
``httpx_resilience``'s HTTP layer, made from the same code, for httpx2::

    import httpx2
    from httpx_resilience.httpx2 import ResilienceTransport, ResilientClient

    client = ResilientClient(base_url="https://api.example")
    sdk_client = httpx2.AsyncClient(transport=ResilienceTransport())

A rejection raised through them is also an ``httpx2.TransportError``
(:class:`TimeoutRejected` also an ``httpx2.TimeoutException``). Everything else (pipelines,
profiles, ``ResponseCache``, ``Alternate``, classifiers) serves both packages as it is: it works
with the flavour of the request in hand. httpx and httpx2 may both be used in one process.

If the application called ``httpx2.alias_httpx()`` before importing this library, ``import
httpx`` *is* httpx2, and the names here are the very classes ``httpx_resilience`` exports.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

import httpx2

from . import errors as _errors
from .http import _errors as _httpx_errors
from .http import _flavour
from .http import client as _client
from .http import transport as _transport
from .pipeline import Pipeline
from .profiles import Profile, Registry

__all__ = [
    "BrokenCircuitError",
    "BulkheadRejected",
    "ConcurrencyLimitRejected",
    "IsolatedCircuitError",
    "PacingRejected",
    "RateLimitRejected",
    "ResilienceTransport",
    "ResilientClient",
    "ThrottleRejected",
    "TimeoutRejected",
]

_FLAVOUR = _flavour.register(httpx2)

# (The `type: ignore`s: without httpx2 installed, a type checker sees its classes as Any.)
if TYPE_CHECKING or _FLAVOUR is not _flavour.HTTPX:

    class TimeoutRejected(_errors.TimeoutRejected, httpx2.TimeoutException):  # type: ignore[misc,unused-ignore]
        """A :class:`~httpx_resilience.TimeoutRejected` raised through the httpx2 layer."""

    class BrokenCircuitError(_errors.BrokenCircuitError, httpx2.TransportError):  # type: ignore[misc,unused-ignore]
        """A :class:`~httpx_resilience.BrokenCircuitError` raised through the httpx2 layer."""

    class IsolatedCircuitError(_errors.IsolatedCircuitError, BrokenCircuitError):  # type: ignore[misc,unused-ignore]
        """An :class:`~httpx_resilience.IsolatedCircuitError` raised through the httpx2
        layer."""

    class BulkheadRejected(_errors.BulkheadRejected, httpx2.TransportError):  # type: ignore[misc,unused-ignore]
        """A :class:`~httpx_resilience.BulkheadRejected` raised through the httpx2 layer."""

    class ConcurrencyLimitRejected(_errors.ConcurrencyLimitRejected, httpx2.TransportError):  # type: ignore[misc,unused-ignore]
        """A :class:`~httpx_resilience.ConcurrencyLimitRejected` raised through the httpx2
        layer."""

    class RateLimitRejected(_errors.RateLimitRejected, httpx2.TransportError):  # type: ignore[misc,unused-ignore]
        """A :class:`~httpx_resilience.RateLimitRejected` raised through the httpx2 layer."""

    class ThrottleRejected(_errors.ThrottleRejected, httpx2.TransportError):  # type: ignore[misc,unused-ignore]
        """A :class:`~httpx_resilience.ThrottleRejected` raised through the httpx2 layer."""

    class PacingRejected(_errors.PacingRejected, httpx2.TransportError):  # type: ignore[misc,unused-ignore]
        """A :class:`~httpx_resilience.PacingRejected` raised through the httpx2 layer."""

    _httpx_errors.declare(
        _FLAVOUR,
        {
            _errors.TimeoutRejected: TimeoutRejected,
            _errors.BrokenCircuitError: BrokenCircuitError,
            _errors.IsolatedCircuitError: IsolatedCircuitError,
            _errors.BulkheadRejected: BulkheadRejected,
            _errors.ConcurrencyLimitRejected: ConcurrencyLimitRejected,
            _errors.RateLimitRejected: RateLimitRejected,
            _errors.ThrottleRejected: ThrottleRejected,
            _errors.PacingRejected: PacingRejected,
        },
    )
else:
    # httpx2.alias_httpx() came first: httpx is httpx2, and its classes are these.
    from .http._errors import (
        BrokenCircuitError,
        BulkheadRejected,
        ConcurrencyLimitRejected,
        IsolatedCircuitError,
        PacingRejected,
        RateLimitRejected,
        ThrottleRejected,
        TimeoutRejected,
    )

if TYPE_CHECKING:
    # What a type checker sees: httpx2's classes (the runtime ones below are made from the
    # httpx layer's code, which a checker reads as httpx's).
    import ssl
    from collections.abc import Callable

    from httpx2._client import EventHook
    from httpx2._types import (
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
        """The keyword arguments of ``httpx2.AsyncClient``, each with its type."""

        auth: AuthTypes | None
        params: QueryParamTypes | None
        headers: HeaderTypes | None
        cookies: CookieTypes | None
        verify: ssl.SSLContext | str | bool
        cert: CertTypes | None
        http1: bool
        http2: bool
        proxy: ProxyTypes | None
        mounts: Mapping[str, httpx2.AsyncBaseTransport | None] | None
        timeout: TimeoutTypes
        follow_redirects: bool
        limits: httpx2.Limits
        max_redirects: int
        event_hooks: Mapping[str, list[EventHook]] | None
        base_url: httpx2.URL | str
        transport: httpx2.AsyncBaseTransport | None
        trust_env: bool
        default_encoding: str | Callable[[bytes], str | None]

    class ResilientClient(httpx2.AsyncClient):  # type: ignore[misc,unused-ignore]
        """An ``httpx2.AsyncClient`` that runs every request through a pipeline: see
        :class:`httpx_resilience.ResilientClient`."""

        def __init__(
            self,
            *,
            pipeline: Pipeline | None = None,
            profiles: Registry | Profile | str | os.PathLike[str] | None = None,
            routes: Mapping[str, str] | None = None,
            retry_non_idempotent: bool = False,
            **httpx_kwargs: Unpack[AsyncClientArguments],
        ) -> None: ...

        @property
        def pipeline(self) -> Pipeline:
            """The pipeline requests run through (with profiles: the default profile's)."""

        @property
        def profiles(self) -> Registry | None:
            """The profiles requests are routed to, if any."""

    class ResilienceTransport(httpx2.AsyncBaseTransport):  # type: ignore[misc,unused-ignore]
        """An ``httpx2.AsyncBaseTransport`` that runs every request through a pipeline: see
        :class:`httpx_resilience.ResilienceTransport`."""

        def __init__(
            self,
            pipeline: Pipeline | Registry | Profile | str | os.PathLike[str] | None = None,
            transport: httpx2.AsyncBaseTransport | None = None,
            *,
            routes: Mapping[str, str] | None = None,
            retry_non_idempotent: bool = False,
        ) -> None: ...

        @property
        def pipeline(self) -> Pipeline:
            """The pipeline requests run through (with profiles: the default profile's)."""

        @property
        def profiles(self) -> Registry | None:
            """The profiles requests are routed to, if any."""

elif _FLAVOUR is _flavour.HTTPX:
    ResilientClient = _client.ResilientClient
    ResilienceTransport = _transport.ResilienceTransport
else:
    ResilientClient = _flavour.rebase(
        _client.ResilientClient, httpx2.AsyncClient, _FLAVOUR, __name__
    )
    ResilienceTransport = _flavour.rebase(
        _transport.ResilienceTransport, httpx2.AsyncBaseTransport, _FLAVOUR, __name__
    )
