"""Alternate: send a failed request to another provider or a mirror instead.

Used as ``Fallback(alternate=...)``. The request is re-targeted (scheme, host and port of the
alternate; path, query and headers kept, but ``Host``) and sent through the alternate's own
transport and, if given, its own pipeline (its own breaker, limits and timeouts). Its response is
read in full before it is returned. If the alternate fails too, the fallback goes on to its next
source, or to the original failure.

The alternate is reached directly, not through the client: the client's event hooks, cookies and
redirect handling do not apply to it.
"""

from __future__ import annotations

import functools
from typing import Any

import httpx

from ..context import Context
from ..outcome import Outcome
from ..pipeline import Pipeline
from ..policies import fallback as _fallback
from ._exchange import never_sent, start_exchange

__all__ = ["Alternate"]


class Alternate:
    """Another place to send a request when the primary fails.

    Args:
        base_url: Scheme, host and port to send to (``"https://mirror.example:8443"``); the
            request's own when omitted (to go through another transport only).
        transport: The transport to send with (default: a new :class:`httpx.AsyncHTTPTransport`
            of the alternate's own, whose connections :meth:`aclose` closes; a client or
            transport closes the alternates of its pipeline when it is closed).
        pipeline: The alternate's own :class:`~httpx_resilience.Pipeline`, if any.

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
        self._transport = transport if transport is not None else httpx.AsyncHTTPTransport()
        self._pipeline = pipeline
        self._send_non_idempotent = bool(send_non_idempotent)

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
        # The primary's Host goes; the alternate's comes first, as httpx itself would put it.
        headers = [(b"Host", url.netloc)]
        headers += [(k, v) for k, v in request.headers.raw if k.lower() != b"host"]
        return httpx.Request(
            request.method,
            url,
            headers=headers,
            stream=request.stream,
            extensions=request.extensions,
        )

    async def answer(self, outcome: Outcome[Any], context: Context) -> Outcome[Any] | None:
        """The alternate's response, or ``None`` if it failed as well (or cannot be asked)."""
        request = context.request
        if request is None or not isinstance(request.stream, httpx.ByteStream):
            return None
        if not (context.replayable or self._send_non_idempotent or never_sent(outcome, context)):
            return None
        retargeted = self.retarget(request)
        send = functools.partial(self._transport.handle_async_request, retargeted)
        try:
            if self._pipeline is None:
                response = await send()
            else:
                inner = start_exchange(self._pipeline, retargeted, send, False, None)
                inner.replayable = context.replayable
                response = await self._pipeline._chain(inner)
                response.extensions["resilience"] = inner._report
            await response.aread()
        except Exception:
            return None
        if context.classifier.failed_result(response):
            await response.aclose()
            return None
        return Outcome(result=response)

    async def aclose(self) -> None:
        """Close the transport, if the alternate made its own."""
        if self._own_transport:
            await self._transport.aclose()


def _adapt(alternate: Any) -> Alternate | None:
    if isinstance(alternate, (str, httpx.URL)):
        return Alternate(alternate)
    if isinstance(alternate, httpx.AsyncBaseTransport):
        return Alternate(transport=alternate)
    return None


_fallback._alternate_adapters.append(_adapt)
