"""Alternate: send a failed request to another provider or a mirror instead.

Used as ``Fallback(alternate=...)``. The request is re-targeted (scheme, host and port of the
alternate; path, query and headers kept, but ``Host``) and sent through the alternate's own
transport and, if given, its own pipeline (its own breaker, limits and timeouts). Its response is
read in full before it is returned. If the alternate fails too, the fallback goes on to its next
source, or to the original failure.

The alternate is reached directly, not through the client: the client's cookies and redirect
handling do not apply to it. On another origin it receives none of the primary's credentials
(the identity headers a :class:`~httpx_resilience.ResponseCache` keys on, and URL userinfo), as
httpx drops ``Authorization`` on a redirect to another origin, unless ``forward_credentials``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import anyio
import httpx

from ..context import Context
from ..outcome import Outcome
from ..pipeline import Pipeline
from ..policies import fallback as _fallback
from . import _flavour
from ._exchange import never_sent, start_exchange
from ._identity import identity_headers as _identity_headers
from ._identity import same_origin

__all__ = ["Alternate"]


class Alternate:
    """Another place to send a request when the primary fails.

    Args:
        base_url: Scheme, host and port to send to (``"https://mirror.example:8443"``); the
            request's own when omitted (to go through another transport only).
        transport: The transport to send with (default: a new :class:`httpx.AsyncHTTPTransport`
            of the alternate's own, whose connections :meth:`aclose` closes once no request is
            using them; a client or transport closes the alternates of its pipeline when it is
            closed, and the alternate opens new connections when it is needed again).
        pipeline: The alternate's own :class:`~httpx_resilience.Pipeline`, if any.
        forward_credentials: Send the primary's credentials to an alternate on another origin
            too (scheme, host and port). By default they are removed: the identity headers
            (:data:`~httpx_resilience.http.cache.IDENTITY_HEADERS` and ``identity_headers``)
            and the URL's userinfo.
        identity_headers: Request headers that carry credentials besides
            :data:`~httpx_resilience.http.cache.IDENTITY_HEADERS` (``["X-Tenant"]``).

        send_non_idempotent: Also re-send requests that are not idempotent (POST, PATCH without
            an ``Idempotency-Key``) after a failure that may have reached the primary. By
            default such a request goes to the alternate only if every try was rejected before
            it was sent (an open circuit, a full bulkhead, a rate limit): a payment that timed
            out at one provider must not be charged again at another.

    Only requests whose body can be sent again are re-sent (a streamed upload is not).
    """

    name = "alternate"

    def __init__(
        self,
        base_url: str | httpx.URL | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        pipeline: Pipeline | None = None,
        send_non_idempotent: bool = False,
        forward_credentials: bool = False,
        identity_headers: Iterable[str] = (),
    ) -> None:
        if base_url is None and transport is None:
            raise ValueError("Alternate: give a base_url, a transport, or both")
        self._base: httpx.URL | None = None
        if base_url is not None:
            base = httpx.URL(base_url)
            if base.scheme not in ("http", "https") or not base.host:
                raise ValueError(
                    f"Alternate: base_url must be an absolute http(s) URL, got {base_url!r}"
                )
            self._base = base
        if pipeline is not None and not isinstance(pipeline, Pipeline):
            raise ValueError(f"Alternate: pipeline must be a Pipeline, got {pipeline!r}")
        self._own_transport = transport is None
        self._transport = transport
        # Without a transport given: one of its own per flavour of the requests it sends (httpx,
        # httpx2), made when first needed.
        self._own: dict[_flavour.Flavour, httpx.AsyncBaseTransport] = {}
        self._pipeline = pipeline
        self._send_non_idempotent = bool(send_non_idempotent)
        self._forward_credentials = bool(forward_credentials)
        self._identity = frozenset(
            name.encode() for name in _identity_headers("Alternate", identity_headers)
        )
        # Requests under way on the transport, and whether aclose() came while there were any:
        # a pipeline is shared by every client built on it, and one client closing must not cut
        # another's fallback off mid-request.
        self._in_flight = 0
        self._close_pending = False

    def __repr__(self) -> str:
        return f"Alternate(base_url={str(self._base) if self._base else None!r})"

    def observe(self, result: Any, context: Context) -> Any:
        """Nothing to learn from successes."""
        return result

    def retarget(self, request: httpx.Request) -> httpx.Request:
        """``request`` as sent to the alternate."""
        url = request.url
        if self._base is not None:
            url = url.copy_with(
                scheme=self._base.scheme, host=self._base.host, port=self._base.port
            )
        strip = not self._forward_credentials and not same_origin(request.url, url)
        if strip and url.userinfo:
            url = url.copy_with(username=None, password=None)
        # The primary's Host goes; the alternate's comes first, as httpx itself would put it.
        headers = [(b"Host", url.netloc)]
        headers += [
            (k, v)
            for k, v in request.headers.raw
            if k.lower() != b"host" and not (strip and k.lower() in self._identity)
        ]
        return type(request)(
            request.method,
            url,
            headers=headers,
            stream=request.stream,
            extensions=request.extensions,
        )

    async def answer(self, outcome: Outcome[Any], context: Context) -> Outcome[Any] | None:
        """The alternate's response, or ``None`` if it failed as well (or cannot be asked)."""
        request = context.request
        if request is None or not isinstance(request.stream, _flavour.BYTE_STREAMS):
            return None
        if not (context.replayable or self._send_non_idempotent or never_sent(outcome, context)):
            return None
        retargeted = self.retarget(request)
        flavour = _flavour.of(request)
        transport = self._transport
        if transport is None:
            transport = self._own.get(flavour)
            if transport is None:
                transport = self._own[flavour] = flavour.AsyncHTTPTransport()
        send = functools.partial(transport.handle_async_request, retargeted)
        self._in_flight += 1
        try:
            if self._pipeline is None:
                response = await send()
            else:
                inner = start_exchange(retargeted, send, False, None)
                inner.replayable = context.replayable
                response = await self._pipeline.run(inner)
                response.extensions["resilience"] = inner.report
            # Read as sent (still encoded), so that the caller can stream it like any response;
            # from the stream itself, since a transport may return a response read already.
            try:
                stream = response.stream
                assert isinstance(stream, flavour.AsyncByteStream)
                body = b"".join([chunk async for chunk in stream])
            finally:
                await response.aclose()
        except Exception:
            return None
        finally:
            self._in_flight -= 1
            if self._close_pending and not self._in_flight:
                with anyio.CancelScope(shield=True):
                    await self.aclose()
        if context.classifier.failed_result(response):
            return None
        answer = flavour.Response(
            response.status_code,
            headers=response.headers.raw,
            stream=flavour.ByteStream(body),
            request=retargeted,
            extensions={k: v for k, v in response.extensions.items() if k != "network_stream"},
        )
        answer.read()
        return Outcome(result=answer)

    async def aclose(self) -> None:
        """Close the transport's connections, if the alternate made the transport; while
        requests are under way on it, once the last has ended. It reopens when needed."""
        if not self._own_transport:
            return
        if self._in_flight:
            self._close_pending = True
            return
        self._close_pending = False
        own, self._own = self._own, {}
        for transport in own.values():
            await transport.aclose()


def _adapt(alternate: Any) -> Alternate | None:
    if isinstance(alternate, (str, _flavour.URLS)):
        return Alternate(alternate)
    if isinstance(alternate, _flavour.ASYNC_TRANSPORTS):
        return Alternate(transport=alternate)
    return None


_fallback._alternate_adapters.append(_adapt)
